"""``attnlab verify``: check attnlab against independent references on fresh random inputs."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from attnlab.experiments import run_verification


def register(sub) -> None:
    parser = sub.add_parser(
        "verify",
        help="check attnlab's attention against torch, autograd and the worked exercises",
        description="Compare attnlab's attention functions and NumPy reference with "
        "torch.nn.functional.scaled_dot_product_attention, torch autograd, "
        "torch.nn.MultiheadAttention, finite differences and the seed sheets' hand-worked "
        "answers, on fresh random inputs. Exits 1 if any check fails.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument(
        "--cases", type=int, default=50, help="random cases per comparison (default 50)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    console = Console(stderr=True)
    with console.status("verifying") as status:
        checks = run_verification(
            seed=args.seed, cases=args.cases, progress=lambda label: status.update(label)
        )
    failed = [check for check in checks if not check.passed]
    if args.json:
        print(json.dumps([check.as_dict() for check in checks], indent=2))
    else:
        table = Table(title=f"attnlab verify (seed {args.seed})")
        for column in ("check", "reference", "cases", "max |error|", "tolerance", ""):
            table.add_column(
                column, justify="right" if column.startswith(("c", "m", "t")) else "left"
            )
        for check in checks:
            table.add_row(
                check.name,
                check.reference,
                str(check.cases),
                f"{check.max_abs_error:.2e}",
                f"{check.tolerance:.0e}",
                "[green]ok[/green]" if check.passed else "[red]FAILED[/red]",
            )
        Console(width=max(Console().width, 120)).print(table)
        verdict = "all checks passed" if not failed else f"{len(failed)} check(s) FAILED"
        print(f"{len(checks)} checks: {verdict}", file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0
