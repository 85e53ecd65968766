"""``attnlab viz``: capture a model's attention on a text and write its pictures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLE = """examples:
  attnlab viz --model minilm --text "The bank by the river was muddy." --out figures/
  attnlab viz --model smollm2 --text "Once upon a time" --out figures/ --layer 3 --head 5
  attnlab viz --checkpoint runs/tiny --text "To be, or not to be" --out figures/

Writes OUT/head.png (one head), OUT/layer.png (every head of that layer) and
OUT/head_view.html (every layer and head, interactive, works offline).
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "viz",
        help="attention pictures for a text: one head, one layer, and an interactive view",
        description="Run a model on a text, capture its attention weights and write a PNG of "
        "one head, a PNG grid of that head's layer and a self-contained interactive HTML view.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", help='"minilm" (BERT encoder), "smollm2" (causal LM) or a checkpoint folder'
    )
    parser.add_argument("--checkpoint", type=Path, help="an attnlab training checkpoint folder")
    parser.add_argument("--text", required=True, help="the text to run the model on")
    parser.add_argument("--out", type=Path, required=True, help="folder for the three files")
    parser.add_argument(
        "--layer",
        type=int,
        default=0,
        help="layer for head.png and layer.png (default 0; −1: last)",
    )
    parser.add_argument("--head", type=int, default=0, help="head for head.png (default 0)")
    parser.add_argument("--json", action="store_true", help="print the written paths as JSON")
    parser.set_defaults(run=run)


def write_views(record, out: str | Path, *, layer: int = 0, head: int = 0) -> dict[str, Path]:
    """Write ``head.png``, ``layer.png`` and ``head_view.html`` for a record-like object.

    ``record`` needs ``.tokens`` and ``.weights`` ``(layers, heads, seq, seq)``; ``.causal``
    and ``.model_name`` are used when present.
    """
    # Imported on use: matplotlib costs half a second that other commands need not pay.
    from attnlab.viz import plot_head, plot_layer_grid, write_head_view
    from attnlab.viz.arrays import check_index, unpack_record

    tokens, weights, causal, name = unpack_record(record)
    layers, heads = weights.shape[:2]
    layer = check_index("--layer", layer, layers)
    head = check_index("--head", head, heads)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    label = f"{name}: " if name else ""
    return {
        "head": plot_head(
            weights[layer, head],
            tokens,
            path=out / "head.png",
            title=f"{label}layer {layer}, head {head}",
            causal_mask_upper=causal,
        ),
        "layer": plot_layer_grid(
            weights[layer],
            tokens,
            out / "layer.png",
            title=f"{label}layer {layer}, all {heads} heads",
            causal_mask_upper=causal,
        ),
        "head_view": write_head_view(
            out / "head_view.html", tokens, weights, causal=causal, model_name=name
        ),
    }


def run(args) -> int:
    if (args.model is None) == (args.checkpoint is None):
        raise ValueError("--model / --checkpoint: give exactly one of them")
    if not args.text.strip():
        raise ValueError("--text: expected some text, got an empty string")
    if args.checkpoint is not None and not args.checkpoint.is_dir():
        raise FileNotFoundError(f"--checkpoint: no such folder: {args.checkpoint}")
    # Imported here so that `attnlab --help` and the other commands never load a model stack.
    from attnlab.inspect import capture

    source = str(args.checkpoint) if args.checkpoint is not None else args.model
    record = capture(source, args.text)
    paths = write_views(record, args.out, layer=args.layer, head=args.head)
    if args.json:
        print(json.dumps({name: str(path) for name, path in paths.items()}))
    else:
        for name, path in paths.items():
            print(f"{name:>9}: {path}")
    return 0
