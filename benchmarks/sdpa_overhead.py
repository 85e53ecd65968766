"""What attnlab's scaled_dot_product_attention costs over calling torch's directly.

Without ``return_weights`` attnlab checks its inputs and dispatches to
``torch.nn.functional.scaled_dot_product_attention``; the target is a ratio attnlab/torch of at
most 1.05 at T=1024. With ``return_weights=True`` it takes the explicit path, which materialises
the (T, T) scores and weights: those rows show what that costs (no target).

Forward only, under ``torch.inference_mode()``; each pair of functions runs interleaved on the
same inputs (``attnlab.bench.compare``).

    .venv/bin/python benchmarks/sdpa_overhead.py [--seq 1024] [--json]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from attnlab.bench import compare, format_machine_line, load_average, machine_line
from attnlab.functional import scaled_dot_product_attention

TARGET = 1.05
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq", type=int, default=1024, help="sequence length T (default 1024)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--heads", type=int, default=8, help="number of heads (default 8)")
    p.add_argument("--head-dim", type=int, default=64, help="head dim (default 64)")
    p.add_argument("--repeats", type=int, default=30, help="timed pairs per row (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed pairs per row (default 3)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p.parse_args(argv)


def attention_flops(batch: int, heads: int, seq: int, head_dim: int, causal: bool) -> float:
    """Matmul FLOPs of Q·Kᵀ and weights·V; causal counts only the pairs j ≤ i."""
    pairs = seq * (seq + 1) / 2 if causal else seq * seq
    return 4 * batch * heads * pairs * head_dim


def measure(args: argparse.Namespace) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, args.heads, args.seq, args.head_dim)
    q, k, v = (torch.randn(shape, generator=gen, dtype=DTYPES[args.dtype]) for _ in range(3))
    rows = []
    with torch.inference_mode():
        for weights in (False, True):
            for causal in (False, True):

                def ours(causal=causal, weights=weights):
                    return scaled_dot_product_attention(
                        q, k, v, is_causal=causal, return_weights=weights
                    )

                def theirs(causal=causal):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                r = compare(ours, theirs, repeats=args.repeats, warmup=args.warmup)
                flops = attention_flops(args.batch, args.heads, args.seq, args.head_dim, causal)
                rows.append(
                    {
                        "path": "return_weights=True" if weights else "dispatch",
                        "causal": causal,
                        "torch_ms": r["baseline_s"] * 1e3,
                        "attnlab_ms": r["candidate_s"] * 1e3,
                        "ratio": r["ratio"],
                        "pair_ratio": r["pair_ratio"],
                        "torch_gflops": flops / r["baseline_s"] / 1e9,
                        "target": None if weights else TARGET,
                    }
                )
    return rows


def print_tables(machine: dict, load_before, load_after, rows: list[dict], args) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)  # a pipe or file would otherwise get 80 columns and wrapped cells
    console.print(format_machine_line(machine), soft_wrap=True)
    console.print(
        f"B={args.batch} H={args.heads} T={args.seq} D={args.head_dim} {args.dtype}, "
        f"forward, inference_mode, median of {args.repeats} interleaved pairs"
    )
    console.print(f"load average before: {fmt_load(load_before)}; after: {fmt_load(load_after)}")
    table = Table()
    for col in ("path", "is_causal", "torch ms", "attnlab ms", "ratio", "pair ratio"):
        table.add_column(col, justify="left" if col == "path" else "right")
    table.add_column("torch GFLOP/s", justify="right")
    table.add_column(f"≤ {TARGET}", justify="center")
    for r in rows:
        met = "—" if r["target"] is None else ("yes" if r["ratio"] <= r["target"] else "NO")
        share = r["torch_gflops"] / machine["matmul_gflops"]
        table.add_row(
            r["path"],
            str(r["causal"]),
            f"{r['torch_ms']:.3f}",
            f"{r['attnlab_ms']:.3f}",
            f"{r['ratio']:.3f}",
            f"{r['pair_ratio']:.3f}",
            f"{r['torch_gflops']:.0f} ({share:.0%} of peak)",
            met,
        )
    console.print(table)


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(argv=None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    machine = machine_line()
    rows = measure(args)
    load_after = load_average()
    if args.json:
        config = {k: getattr(args, k) for k in ("batch", "heads", "seq", "head_dim", "dtype")}
        out = {
            "machine": machine,
            "config": {**config, "repeats": args.repeats},
            "load_before": load_before,
            "load_after": load_after,
            "rows": rows,
        }
        print(json.dumps(out, indent=2))
    else:
        print_tables(machine, load_before, load_after, rows, args)


if __name__ == "__main__":
    main()
