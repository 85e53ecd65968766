"""Linear attention against torch's fused softmax attention: time, memory and the crossover length;
and FAVOR+'s error against exact softmax attention as its number of features grows.

Timing: ``torch.nn.functional.scaled_dot_product_attention`` (the baseline) and attnlab's
``linear_attention`` with the ``elu``, ``poly2`` and ``favor+`` (256 features) maps, plain and
causal (and, with ``elu``, ``linear_attend``, the unchecked path a module calls, and
``linear_attention`` with the compiled kernels off, the PyTorch-only path), forward under
``torch.inference_mode()``, batch 1, 8 heads, head_dim 64, float32, on the same inputs and
interleaved call by call at each length. Targets at T = 16384: elu ≥ 100× faster
than SDPA (non-causal) and ≥ 20× faster than causal SDPA in its causal form; FAVOR+ faster than
SDPA from T = 4096 on. Each row carries its FLOPs and bytes (closed forms below) and the roofline
time max(FLOPs / matmul peak, bytes / bandwidth) against the machine line of the same run.

    .venv/bin/python benchmarks/linear_attention.py [--lengths 512 1024 …] [--json]

The measurements are the package's (:mod:`attnlab.experiments.linear_attention`, also
``attnlab experiment linear-timing`` and ``attnlab experiment favor-error``):
``linear_vs_softmax_timing``, ``favor_error_vs_features`` and the closed-form matmul FLOPs of
:func:`attnlab.calc.linear_attention_ops`. This script adds the bytes model, the roofline, the
targets and the tables.
"""

from __future__ import annotations

import argparse
import functools
import json

from attnlab.bench import format_machine_line, load_average, machine_line
from attnlab.experiments.linear_attention import (
    LENGTHS,
    METHODS,
    check_flop_closed_forms,
    crossover_length,
    favor_error_vs_features,
    feature_maps,
    linear_vs_softmax_timing,
    matmul_flops,
)
from attnlab.functional import compiled

# Speedup over SDPA wanted at T = 16384, non-causal and causal.
TARGETS = {(m, c): 20.0 if c else 100.0 for m in ("elu", "elu, unchecked") for c in (False, True)}
TARGET_SEQ, FAVOR_FROM = 16384, 4096
BYTES = 4  # float32


def cost(method: str, seq: int, causal: bool, *, head_dim=64, n_features=256, heads=8, batch=1):
    """``(matmul FLOPs, compulsory bytes)`` of one forward call, for all batch × heads.

    FLOPs: :func:`attnlab.calc.linear_attention_ops` (matrix products only, as
    ``FlopCounterMode`` counts them; SDPA causal: the pairs j ≤ i), as in the rows' ``gflop``.

    Bytes: the traffic no implementation can avoid, float32: read Q, K and V once and write
    the output once. The checked eager paths (``"elu, eager"``, poly2, FAVOR+) also read Q, K
    and V for their finiteness check; the compiled elu kernel checks them as it reads them.
    Features, sums, states and tiles fit in the caches when computed a block at a time, so a
    fused kernel need not move them through memory. The roofline max(FLOPs / matmul peak,
    bytes / bandwidth) is then what such a kernel could reach on this machine; the measured
    time over it shows what is left: separate passes, and mapping the fresh output's pages.
    """
    T, d, n = seq, head_dim, batch * heads
    maps = _maps(head_dim, n_features)
    flops = matmul_flops(method, seq, causal, head_dim=head_dim, maps=maps, n_heads=n)
    checked_apart = method in ("elu, eager", "poly2", "favor+")
    passes = 4 + (3 if checked_apart else 0)  # Q, K, V, O (+ the check)
    return flops, n * passes * T * d * BYTES


@functools.cache
def _maps(head_dim: int, n_features: int) -> dict:
    return feature_maps(head_dim, n_features, 0)


def add_roofline(rows: list[dict], machine: dict, args) -> None:
    """``gbytes`` (:func:`cost`), ``roofline_ms`` = max(FLOPs / matmul peak, bytes /
    bandwidth), the bound and the roofline's share of the time."""
    for r in rows:
        _, nbytes = cost(
            r["method"],
            r["seq"],
            r["causal"],
            head_dim=args.head_dim,
            n_features=args.n_features,
            heads=args.heads,
        )
        r["gbytes"] = nbytes / 1e9
        compute = r["gflop"] / machine["matmul_gflops"]
        memory = r["gbytes"] / machine["bandwidth_gbs"]
        r["roofline_ms"] = 1e3 * max(compute, memory)
        r["bound"] = "compute" if compute >= memory else "memory"
        r["roofline_share"] = r["roofline_ms"] / r["ms"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--n-features", type=int, default=256, help="FAVOR+ features (default 256)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per row (default 5)")
    p.add_argument("--sdpa-budget", type=float, default=40.0, help="seconds per SDPA row")
    p.add_argument("--no-favor-error", action="store_true", help="skip the FAVOR+ error table")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p.parse_args(argv)


def summary(rows: list[dict]) -> list[dict]:
    """Crossover lengths, the ratios at 16384 and the longest length, and the targets."""
    out = []
    longest = max(r["seq"] for r in rows)
    for method in METHODS[1:]:
        for c in (False, True):
            mine = {r["seq"]: r for r in rows if r["method"] == method and r["causal"] == c}
            if not mine:
                continue
            target, verdict = TARGETS.get((method, c)), None
            at = mine.get(TARGET_SEQ, {}).get("speedup")
            if target is not None and at is not None:
                verdict = f"≥ {target:g}× at T={TARGET_SEQ}: " + (
                    "met" if at >= target else "NOT met"
                )
            long = [r["speedup"] for T, r in mine.items() if T >= FAVOR_FROM]
            if method == "favor+" and long:
                met = min(long) > 1
                verdict = f"faster from T={FAVOR_FROM} on: " + ("met" if met else "NOT met")
            out.append(
                {
                    "method": method,
                    "causal": c,
                    "crossover": crossover_length(rows, method, c),
                    f"speedup_{TARGET_SEQ}": at,
                    f"speedup_{longest}": mine.get(longest, {}).get("speedup"),
                    "target": verdict,
                }
            )
    return out


def print_tables(machine, loads, rows, favor_rows, args) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    console.print(format_machine_line(machine), soft_wrap=True)
    console.print(compiled.status(), soft_wrap=True)
    console.print(
        f"B=1 H={args.heads} D={args.head_dim} float32, forward, inference_mode; linear = "
        f"linear_attention ('elu, unchecked': linear_attend; 'elu, eager': compiled kernels "
        f"off), FAVOR+ r={args.n_features}; "
        f"median of {args.repeats} interleaved calls (SDPA fewer at long T: see 'n')"
    )
    console.print(f"load average before: {fmt_load(loads[0])}; after: {fmt_load(loads[1])}")
    table = Table()
    for col in (
        "T",
        "others",
        "method",
        "causal",
        "ms",
        "n",
        "× vs SDPA",
        "peak MiB",
        "GFLOP",
        "GB",
    ):
        table.add_column(col, justify="right")
    table.add_column("roofline ms (bound)", justify="right")
    table.add_column("share", justify="right")
    for r in rows:
        table.add_row(
            str(r["seq"]),
            f"{r['others_cpu']:.0%}",
            r["method"],
            str(r["causal"]),
            f"{r['ms']:.4g}",
            str(r["repeats"]),
            "—" if r["speedup"] is None else f"{r['speedup']:.3g}",
            f"{r['peak_mib']:.0f}",
            f"{r['gflop']:.3g}",
            f"{r['gbytes']:.3g}",
            f"{r['roofline_ms']:.3g} ({r['bound']})",
            f"{r['roofline_share']:.0%}",
        )
    console.print(table)
    table = Table(title="crossover (shortest T from which linear beats SDPA) and targets")
    for col in summary(rows)[0]:
        table.add_column(col, justify="right")
    for s in summary(rows):
        table.add_row(
            *(
                "—" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)
                for x in s.values()
            )
        )
    console.print(table)
    if favor_rows:
        table = Table(title="FAVOR+ mean relative error vs exact softmax (T=256, d=64, 8 draws)")
        table.add_column("input std (score std)", justify="right")
        table.add_column("orthogonal", justify="right")
        rs = sorted({r["n_features"] for r in favor_rows})
        for r in rs:
            table.add_column(f"r={r}", justify="right")
        table.add_column("log-log slope", justify="right")
        groups = {}
        for row in favor_rows:
            groups.setdefault((row["input_std"], row["orthogonal"]), []).append(row)
        for (s, orthogonal), group in groups.items():
            errors = [f"{row['mean_rel_error']:.3f}" for row in group]
            table.add_row(
                f"{s:g} ({s * s:.3g})", str(orthogonal), *errors, f"{group[0]['slope']:.2f}"
            )
        console.print(table)


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(argv=None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    machine = machine_line()
    flop_check = [
        f"{x['method']} causal={x['causal']}: closed form {x['closed_form']:.4g}, "
        f"counted {x['counted']:.4g}"
        for x in check_flop_closed_forms(
            seq=1024, heads=args.heads, head_dim=args.head_dim, n_features=args.n_features
        )
    ]
    rows = linear_vs_softmax_timing(
        args.lengths,
        methods=tuple(m for m in METHODS if m in args.methods),
        heads=args.heads,
        head_dim=args.head_dim,
        n_features=args.n_features,
        repeats=args.repeats,
        sdpa_budget_s=args.sdpa_budget,
        progress=None if args.json else lambda label: print(f"  {label}", flush=True),
    )
    load_after = load_average()
    add_roofline(rows, machine, args)
    favor_rows = [] if args.no_favor_error else favor_error_vs_features(head_dim=args.head_dim)
    if args.json:
        out = {
            "machine": machine,
            "kernels": compiled.status(),
            "load_before": load_before,
            "load_after": load_after,
            "flop_check": flop_check,
            "rows": rows,
            "summary": summary(rows),
            "favor_error": favor_rows,
        }
        print(json.dumps(out, indent=2))
    else:
        print("\n".join(["matmul FLOPs, closed form vs FlopCounterMode at T=1024:", *flop_check]))
        print_tables(machine, (load_before, load_after), rows, favor_rows, args)


if __name__ == "__main__":
    main()
