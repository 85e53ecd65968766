"""``attnlab experiment``: run a registered experiment by name and print its table and summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from attnlab.experiments import Experiment, ExperimentResult, Param, list_experiments

EXAMPLE = """examples:
  attnlab experiment --list
  attnlab experiment dot-product-variance --mean 0.5 --std 2
  attnlab experiment softmax-saturation --json
  attnlab experiment quadratic-scaling --lengths 256,512,1024,2048 --plot scaling.png
  attnlab experiment argmax-vs-softmax --set temperatures=1,0.1,0.01 --seed 3
  attnlab experiment <name> --help          (the parameters of one experiment)

Every parameter is a flag of its experiment and may also be given as --set key=value.
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "experiment",
        help="run an experiment by name: a table of measured results, a summary, a figure",
        description="Run one of attnlab's experiments: each computes a table from real runs "
        "(Monte Carlo draws, autograd, timings), a summary of named figures and, with --plot, "
        "a PNG figure. Each answers an exercise of the seed sheets.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="list the experiments")
    parser.set_defaults(run=_run_list)
    names = parser.add_subparsers(dest="experiment", metavar="<name>")
    for spec in list_experiments():
        _add_experiment(names, spec)


def _add_experiment(names, spec: Experiment) -> None:
    parser = names.add_parser(
        spec.name,
        help=spec.description,
        description=f"{spec.title}. Answers {spec.question}.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    parser.add_argument(
        "--json", action="store_true", help='print {"name", "columns", "rows", "summary", …}'
    )
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write the figure as PNG")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a parameter by name, e.g. --set "
        f"{spec.params[0].name}={spec.params[0].describe_default()} (repeatable)",
    )
    group = parser.add_argument_group("parameters")
    for param in spec.params:
        group.add_argument(
            param.flag,
            dest=f"param_{param.name}",
            type=_flag_type(param),
            metavar=param.kind.upper(),
            help=f"{param.help} (default {param.describe_default()})",
        )
    parser.set_defaults(run=_runner(spec))


def _flag_type(param: Param):
    def parse(text: str):
        try:
            return param.parse(text)
        except ValueError as error:  # argparse reports it in one line, naming the flag
            raise argparse.ArgumentTypeError(str(error).partition(": ")[2]) from None

    parse.__name__ = param.kind
    return parse


def _params(spec: Experiment, args) -> dict:
    """The parameters given as flags and as ``--set key=value``, each at most once."""
    given = {
        p.name: getattr(args, f"param_{p.name}")
        for p in spec.params
        if getattr(args, f"param_{p.name}") is not None
    }
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            param = spec.param(key.strip().replace("-", "_"))
        except ValueError as error:
            raise ValueError(f"--set {error}") from None
        if param.name in given:
            raise ValueError(f"--set: {param.name} is given twice (flag or --set)")
        given[param.name] = param.parse(text)
    return given


def _runner(spec: Experiment):
    def run(args) -> int:
        params = _params(spec, args)
        if args.plot is not None and args.plot.suffix.lower() != ".png":
            raise ValueError(f"--plot: expected a file name ending in .png, got {str(args.plot)!r}")
        status_console = Console(stderr=True)
        with status_console.status(f"{spec.name}: starting") as status:
            result = spec.run(
                seed=args.seed,
                progress=lambda label: status.update(f"{spec.name}: {label}"),
                **params,
            )
        if args.plot is not None:
            path = result.plot(args.plot)
            print(f"figure written to {path}", file=sys.stderr)
        if args.json:
            print(json.dumps(result.to_dict()))
        else:
            _print(result)
        return 0

    return run


def _run_list(args) -> int:
    table = Table(title="attnlab experiments", title_justify="left")
    for column in ("name", "what it computes", "answers"):
        table.add_column(column)
    for spec in list_experiments():
        table.add_row(spec.name, spec.description, spec.question)
    Console(width=max(Console().width, 140)).print(table)
    print("run one with: attnlab experiment <name> [--seed N] [--json] [--plot FILE.png]")
    return 0


def cell(value) -> str:
    """A table cell: 4 significant digits, scientific notation for very small or large."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.3e}" if not 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)


def _brief(value, limit: int = 32) -> str:
    """A detail as text; a long flat list shows its first values and its length (``--json``
    prints it whole)."""
    if (
        isinstance(value, list | tuple)
        and len(value) > limit
        and not any(isinstance(v, list | tuple | dict) for v in value)
    ):
        head = ", ".join(cell(v) for v in value[:8])
        return f"[{head}, … ({len(value)} values; --json has them all)]"
    return cell(value)


def _print(result: ExperimentResult) -> None:
    console = Console(width=max(Console().width, 120))
    table = Table(title=f"{result.name}: {result.title}", title_justify="left")
    for column in result.columns:
        table.add_column(column, justify="left" if column in _text_columns(result) else "right")
    for row in result.rows:
        table.add_row(*(cell(row[c]) for c in result.columns))
    console.print(table)
    summary = Table(title="summary", title_justify="left", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for key, value in result.summary.items():
        summary.add_row(key, cell(value))
    console.print(summary)
    for key, value in result.details.items():
        if isinstance(value, dict):
            console.print(f"{key}:")
            for name, text in value.items():
                console.print(f"  {name}: {_brief(text)}", highlight=False, markup=False)
        else:
            console.print(f"{key}: {_brief(value)}", highlight=False, markup=False)
    console.print(f"answers {result.question}", highlight=False, markup=False)


def _text_columns(result: ExperimentResult) -> set[str]:
    first = result.rows[0] if result.rows else {}
    return {c for c in result.columns if isinstance(first.get(c), str | list)}
