"""``attnlab attend``: attention over small matrices, for checking exercises by hand."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from attnlab.functional import argmax_attention, attention_scores, scaled_dot_product_attention

EXAMPLE = """examples:
  attnlab attend --q '[[1,2],[3,1]]' --k '[[2,1],[1,1],[0,1]]' --v '[[1,2,-2],[1,1,2],[0,1,-1]]'
  attnlab attend --q '[1,2,1]' --k '[[1,2,3],[1,2,1],[0,1,-1]]' --no-scale
  attnlab attend --file problem.json --hard --json

A single vector for --q is one query. Without --v the keys are also the values.
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "attend",
        help="attention over small matrices given as JSON: scores, weights and outputs",
        description="Scaled dot-product attention over small matrices, for hand-worked "
        "exercises. Prints the score matrix, the weights and the context vectors.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--q", help="queries as a JSON nested list [[...], ...] or one vector")
    parser.add_argument("--k", help="keys as a JSON nested list, one row per key")
    parser.add_argument("--v", help="values as a JSON nested list (default: the keys)")
    parser.add_argument(
        "--file", type=Path, help='a JSON file {"q": ..., "k": ..., "v": ...} instead of flags'
    )
    parser.add_argument("--causal", action="store_true", help="query i sees keys j ≤ i only")
    parser.add_argument(
        "--no-scale", action="store_true", help="plain dot products (no 1/√d_k factor)"
    )
    parser.add_argument("--scale", type=float, help="an explicit factor on the scores")
    parser.add_argument(
        "--hard", action="store_true", help="argmax attention: one-hot weights on the best key"
    )
    parser.add_argument("--digits", type=int, default=4, help="decimals printed (default 4)")
    parser.add_argument(
        "--json", action="store_true", help='print {"scores", "weights", "output"} as JSON'
    )
    parser.set_defaults(run=run)


def _matrix(name: str, value) -> torch.Tensor:
    """A JSON value → a float64 ``(rows, cols)`` tensor; one vector is one row."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"--{name}: not valid JSON ({error.msg}): {value!r}") from None
    try:
        tensor = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"--{name}: expected a list of numbers or a list of equal-length rows, got {value!r}"
        ) from None
    if tensor.dim() == 1:
        tensor = tensor[None, :]
    if tensor.dim() != 2 or tensor.numel() == 0:
        raise ValueError(
            f"--{name}: expected a vector or a matrix (rows of numbers), got shape "
            f"{tuple(tensor.shape)}"
        )
    return tensor


def _inputs(args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    given = {"q": args.q, "k": args.k, "v": args.v}
    if args.file is not None:
        if any(value is not None for value in given.values()):
            raise ValueError("--file: give the matrices either in a file or as --q/--k/--v")
        try:
            data = json.loads(Path(args.file).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"--file: {args.file} is not valid JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(
                f'--file: expected a JSON object {{"q": ..., "k": ...}}, in {args.file}'
            )
        unknown = set(data) - {"q", "k", "v"}
        if unknown:
            raise ValueError(f"--file: unexpected keys {sorted(unknown)}; expected q, k and v")
        given = {name: data.get(name) for name in given}
    for name in ("q", "k"):
        if given[name] is None:
            raise ValueError(f"--{name}: required (or --file)")
    q, k = _matrix("q", given["q"]), _matrix("k", given["k"])
    v = k if given["v"] is None else _matrix("v", given["v"])
    return q, k, v


def compute(args) -> dict[str, list]:
    q, k, v = _inputs(args)
    if args.no_scale and args.scale is not None:
        raise ValueError("--scale: give either --scale or --no-scale")
    scale = 1.0 if args.no_scale else args.scale
    if args.hard and scale is None:
        scale = 1.0  # argmax attention compares plain dot products
    scores = attention_scores(q, k, is_causal=args.causal, scale=scale)
    if args.hard:
        output, weights = argmax_attention(q, k, v, is_causal=args.causal, return_weights=True)
    else:
        output, weights = scaled_dot_product_attention(
            q, k, v, is_causal=args.causal, scale=scale, return_weights=True
        )
    return {
        "scale": scale if scale is not None else q.shape[-1] ** -0.5,
        "scores": scores.tolist(),
        "weights": weights.tolist(),
        "output": output.tolist(),
    }


def _json_safe(rows: list[list[float]]) -> list[list[float | None]]:
    """Masked scores are −inf, which JSON cannot hold: they are written as null."""
    return [[None if math.isinf(x) else x for x in row] for row in rows]


def _format(rows: list[list[float]], digits: int) -> str:
    cells = [[f"{x:.{digits}f}" if math.isfinite(x) else "-inf" for x in row] for row in rows]
    width = max(len(cell) for row in cells for cell in row)
    return "\n".join("  [" + "  ".join(c.rjust(width) for c in row) + "]" for row in cells)


def run(args) -> int:
    if args.digits < 0 or args.digits > 15:
        raise ValueError(f"--digits: expected 0 to 15, got {args.digits}")
    result = compute(args)
    if args.json:
        result["scores"] = _json_safe(result["scores"])
        print(json.dumps(result))
        return 0
    kind = "argmax (hard) attention" if args.hard else "softmax attention"
    print(f"{kind}, scores scaled by {result['scale']:.{args.digits}g}")
    print("scores (query · key · scale, one row per query):")
    print(_format(result["scores"], args.digits))
    print("weights (each row sums to 1):")
    print(_format(result["weights"], args.digits))
    print("output (weighted sum of the values, one row per query):")
    print(_format(result["output"], args.digits))
    return 0
