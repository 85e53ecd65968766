"""``attnlab lab``: train a small GPT and write the complete attention lab report."""

from __future__ import annotations

import argparse

from rich.console import Console

EXAMPLE = """examples:
  attnlab lab --out lab                 (about six minutes on two cores)
  attnlab lab --out lab                 (again: reuses lab/model, redoes the report)
  attnlab lab --quick --out /tmp/lab    (about a minute: a tiny model, small measurements)
  attnlab lab --text-file my.txt --steps 1000 --out lab-mine
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def register(sub) -> None:
    parser = sub.add_parser(
        "lab",
        help="train a small GPT and write the attention lab report (DIR/index.html)",
        description="Train a character-level GPT on Shakespeare (or --text-file), then write "
        "DIR/index.html, a self-contained report: loss curves and samples before and after "
        "training, heatmaps, an interactive head view and head-type scores of the trained and "
        "the randomly initialised model, the heads of the pretrained MiniLM and SmolLM2 when "
        "installed, the theory experiments, live measurements (KV cache, flash, linear "
        "attention) and an analysis generated from the numbers in DIR/report.json. The "
        "checkpoint goes to DIR/model; a later run with the same DIR reuses it.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="lab", help="output directory (default: lab)")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny model and small measurements (~1 minute)"
    )
    parser.add_argument("--text-file", help="UTF-8 text to train on (default: Shakespeare)")
    parser.add_argument("--steps", type=_positive, help="training steps (default 3000; quick 120)")
    parser.add_argument(
        "--retrain", action="store_true", help="train again even if DIR/model holds a checkpoint"
    )
    parser.add_argument("--seed", type=int, help="training and sampling seed (default 1337)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(run=run)


def run(args) -> int:
    from attnlab.lab import default_config, quick_config, run_lab
    from attnlab.lab.report import command_line

    base = quick_config() if args.quick else default_config()
    config = base.with_options(steps=args.steps, seed=args.seed, text_file=args.text_file)
    report = run_lab(
        config,
        args.out,
        retrain=args.retrain,
        console=Console(stderr=True),
        quiet=args.quiet,
        command=command_line(args.argv),
    )
    t = report["training"]
    print(
        f"wrote {report['files']['page']} in {report['timings']['total']:.0f} s; "
        f"validation loss {t['final']['val_loss']:.4f}; {t['message']}"
    )
    return 0
