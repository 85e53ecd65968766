"""Peak memory of naive, fused (torch SDPA) and tiled (flash) attention as T doubles.

The measurement is the ``flash-memory`` experiment (:mod:`attnlab.experiments.flash_memory`,
also ``attnlab experiment flash-memory``): each point runs in a fresh subprocess, which builds
the inputs, then measures the peak RSS growth of one forward (under ``torch.inference_mode()``)
or one forward + backward call with ``attnlab.bench.peak_rss_delta``, so nothing freed by an
earlier point hides in the allocator. The naive path materialises the (T, T) scores and weights
(``softmax(q·kᵀ·s)·v``), so its memory grows as T²; the tiled one
(``attnlab.functional.flash_attention``) holds one ``(block_q, block_k)`` tile per head and O(T)
vectors, so it grows at most as T. The growth exponent is the slope of a least-squares line
through log(peak) against log(T), over all points and over the three longest (where the O(T)
buffers outgrow the tiled path's fixed tile). A naive point whose predicted size does not fit in
the available memory is skipped and reported. This script prints the table and writes the figure.

    .venv/bin/python benchmarks/flash_memory.py [--seq 1024 2048 4096 8192 16384] [--json]
"""

from __future__ import annotations

import argparse
import json
import os

from attnlab.experiments import run_experiment
from attnlab.experiments.flash_memory import LENGTHS, METHODS, PASSES, growth_exponents

FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "flash_memory.png")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq", type=int, nargs="+", default=list(LENGTHS))
    p.add_argument("--heads", type=int, default=8, help="number of heads (default 8)")
    p.add_argument("--head-dim", type=int, default=64, help="head dim (default 64)")
    p.add_argument("--figure", default=FIGURE, help=f"PNG to write (default {FIGURE})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p.parse_args(argv)


def print_table(result, args) -> None:
    from rich.console import Console
    from rich.table import Table

    from attnlab.bench import load_average

    rows = result.rows
    exponents, upper = growth_exponents(rows), growth_exponents(rows, last=3)
    console = Console(width=120)
    console.print(
        f"B=1 H={args.heads} D={args.head_dim} float32; peak RSS growth per call, MiB "
        f"(one subprocess per point); load average {' '.join(f'{x:.2f}' for x in load_average())}"
    )
    table = Table()
    table.add_column("pass", justify="left")
    table.add_column("method", justify="left")
    for seq in args.seq:
        table.add_column(f"T={seq}", justify="right")
    table.add_column("growth exponent", justify="right")
    table.add_column("… longest 3", justify="right")
    for passes in PASSES:
        for method in METHODS:
            cells = []
            for seq in args.seq:
                r = next(
                    r for r in rows if (r["method"], r["passes"], r["seq"]) == (method, passes, seq)
                )
                cells.append(f"{r['peak_mib']:.1f}" if r["peak_bytes"] else "—")
            slopes = [exponents[(method, passes)], upper[(method, passes)]]
            slopes = ["—" if x is None else f"{x:.2f}" for x in slopes]
            table.add_row(passes, method, *cells, *slopes)
    console.print(table)
    for r in rows:
        if r["skipped"]:
            console.print(f"{r['method']} {r['passes']} T={r['seq']}: {r['skipped']}")


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run_experiment(
        "flash-memory", lengths=tuple(args.seq), heads=args.heads, head_dim=args.head_dim
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.figure)), exist_ok=True)
    result.plot(args.figure)
    if args.json:
        exponents, upper = growth_exponents(result.rows), growth_exponents(result.rows, last=3)
        slopes = [
            {"method": m, "passes": p, "exponent": e, "exponent_longest_3": upper[(m, p)]}
            for (m, p), e in exponents.items()
        ]
        out = {"rows": result.rows, "exponents": slopes, "summary": result.summary}
        print(json.dumps({**out, "figure": args.figure}, indent=2))
    else:
        print_table(result, args)
        print(f"figure: {os.path.relpath(args.figure)}")


if __name__ == "__main__":
    main()
