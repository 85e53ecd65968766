"""Peak memory of naive, fused (torch SDPA) and tiled (flash) attention as T doubles.

Each point runs in a fresh subprocess: it builds the inputs, then measures the peak RSS growth
of one forward (under ``torch.inference_mode()``) or one forward + backward call with
``attnlab.bench.peak_rss_delta``, so nothing freed by an earlier point hides in the allocator.
The naive path materialises the (T, T) scores and weights (``softmax(q·kᵀ·s)·v``), so its memory
grows as T²; the tiled one (``attnlab.functional.flash_attention``) holds one
``(block_q, block_k)`` tile per head and O(T) vectors, so it grows at most as T. The growth
exponent is the slope of a least-squares line through log(peak) against log(T), over all points
and over the three longest (where the O(T) buffers outgrow the tiled path's fixed tile). A naive
point whose predicted size does not fit in the available memory is skipped and reported.

    .venv/bin/python benchmarks/flash_memory.py [--seq 1024 2048 4096 8192 16384] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

METHODS = ("naive", "sdpa", "flash")
PASSES = ("forward", "forward+backward")
# (T, T) float32 matrices alive at the peak of the naive path, per head: the forward holds the
# scores and the weights; the backward adds the weights' gradient and the softmax's.
NAIVE_MATRICES = {"forward": 2, "forward+backward": 4}
FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "flash_memory.png")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument("--heads", type=int, default=8, help="number of heads (default 8)")
    p.add_argument("--head-dim", type=int, default=64, help="head dim (default 64)")
    p.add_argument("--figure", default=FIGURE, help=f"PNG to write (default {FIGURE})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--point", nargs=3, metavar=("METHOD", "PASSES", "T"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_point(method: str, passes: str, seq: int, heads: int, head_dim: int) -> dict:
    """Inside the subprocess: peak RSS growth of one call, in bytes."""
    import torch
    import torch.nn.functional as F

    from attnlab.bench import peak_rss_delta
    from attnlab.functional.flash import flash_attention

    def naive(q, k, v):
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (1, H, T, T)
        return scores.softmax(dim=-1) @ v

    fn = {"naive": naive, "sdpa": F.scaled_dot_product_attention, "flash": flash_attention}
    gen = torch.Generator().manual_seed(0)
    shape = (1, heads, seq, head_dim)
    q, k, v = (torch.randn(shape, generator=gen).requires_grad_() for _ in range(3))
    grad = torch.randn(shape, generator=gen)

    def call():
        if passes == "forward":
            with torch.inference_mode():
                return fn[method](q, k, v)
        return torch.autograd.grad(fn[method](q, k, v), (q, k, v), grad)

    # One small call first, so that thread pools and the matmul library's buffers, allocated
    # once per process, are not counted as the memory of attention.
    small = [x[:, :, :128].detach().requires_grad_() for x in (q, k, v)]
    torch.autograd.grad(fn[method](*small), small, grad[:, :, :128])
    _, peak = peak_rss_delta(call)
    return {"peak_bytes": peak}


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable line")


def measure(args) -> list[dict]:
    rows = []
    for passes in PASSES:
        for method in METHODS:
            for seq in args.seq:
                row = {"method": method, "passes": passes, "seq": seq, "peak_bytes": None}
                if method == "naive":
                    need = NAIVE_MATRICES[passes] * args.heads * seq * seq * 4
                    if need > 0.6 * available_bytes():  # leave room for other processes
                        row["skipped"] = (
                            f"needs ~{need / 2**30:.0f} GiB, more than 60% of the "
                            f"{available_bytes() / 2**30:.0f} GiB available: not run"
                        )
                        rows.append(row)
                        continue
                command = [sys.executable, __file__, "--point", method, passes, str(seq)]
                command += ["--heads", str(args.heads), "--head-dim", str(args.head_dim)]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    row["skipped"] = f"failed (exit {done.returncode}): {done.stderr[-200:]}"
                else:
                    row |= json.loads(done.stdout)
                rows.append(row)
    return rows


def growth_exponent(rows: list[dict]) -> float | None:
    """Slope of the least-squares line through (log T, log peak)."""
    points = [(math.log(r["seq"]), math.log(r["peak_bytes"])) for r in rows if r["peak_bytes"]]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sum((x - mx) ** 2 for x, _ in points)


def fits(rows: list[dict], last: int | None = None) -> dict[tuple[str, str], float | None]:
    """Growth exponent per (method, pass), over all measured points or the ``last`` longest."""
    out = {}
    for m in METHODS:
        for p in PASSES:
            points = [r for r in rows if r["method"] == m and r["passes"] == p and r["peak_bytes"]]
            out[(m, p)] = growth_exponent(points[-last:] if last else points)
    return out


def plot(rows: list[dict], exponents, path: str, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, passes in zip(axes, PASSES, strict=True):
        for method, marker in zip(METHODS, "os^", strict=True):
            pts = [r for r in rows if r["method"] == method and r["passes"] == passes]
            pts = [r for r in pts if r["peak_bytes"]]
            slope = exponents[(method, passes)]
            label = f"{method} (slope {slope:.2f})" if slope is not None else method
            ax.loglog(
                [r["seq"] for r in pts],
                [r["peak_bytes"] / 2**20 for r in pts],
                marker=marker,
                label=label,
                base=2,
            )
        ax.set_title(f"{passes}, H={args.heads}, D={args.head_dim}, float32")
        ax.set_xlabel("sequence length T")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("peak RSS growth (MiB)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(rows, exponents, upper, args) -> None:
    from rich.console import Console
    from rich.table import Table

    from attnlab.bench import load_average

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
                cells.append(f"{r['peak_bytes'] / 2**20:.1f}" if r["peak_bytes"] else "—")
            slopes = [exponents[(method, passes)], upper[(method, passes)]]
            slopes = ["—" if x is None else f"{x:.2f}" for x in slopes]
            table.add_row(passes, method, *cells, *slopes)
    console.print(table)
    for r in rows:
        if "skipped" in r:
            console.print(f"{r['method']} {r['passes']} T={r['seq']}: {r['skipped']}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.point:
        method, passes, seq = args.point
        print(json.dumps(run_point(method, passes, int(seq), args.heads, args.head_dim)))
        return
    rows = measure(args)
    exponents, upper = fits(rows), fits(rows, last=3)
    plot(rows, exponents, args.figure, args)
    if args.json:
        slopes = [
            {"method": m, "passes": p, "exponent": e, "exponent_longest_3": upper[(m, p)]}
            for (m, p), e in exponents.items()
        ]
        print(json.dumps({"rows": rows, "exponents": slopes, "figure": args.figure}, indent=2))
    else:
        print_table(rows, exponents, upper, args)
        print(f"figure: {os.path.relpath(args.figure)}")


if __name__ == "__main__":
    main()
