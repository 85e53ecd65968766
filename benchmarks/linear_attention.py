"""Linear attention against torch's fused softmax attention: time, memory and the crossover length;
and FAVOR+'s error against exact softmax attention as its number of features grows.

Timing: ``torch.nn.functional.scaled_dot_product_attention`` (the baseline) and attnlab's
``linear_attention`` with the ``elu``, ``poly2`` and ``favor+`` (256 features) maps, plain and
causal (and ``linear_attend``, the unchecked path a module calls, with ``elu``), forward under
``torch.inference_mode()``, batch 1, 8 heads, head_dim 64, float32, on the same inputs and
interleaved call by call at each length. Targets at T = 16384: elu ≥ 100× faster
than SDPA (non-causal) and ≥ 20× faster than causal SDPA in its causal form; FAVOR+ faster than
SDPA from T = 4096 on. Each row carries its FLOPs and bytes (closed forms below) and the roofline
time max(FLOPs / matmul peak, bytes / bandwidth) against the machine line of the same run.

    .venv/bin/python benchmarks/linear_attention.py [--lengths 512 1024 …] [--json]

``favor_error_vs_features`` and ``linear_vs_softmax_timing`` are plain functions returning rows
(lists of dicts), for use as experiments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from attnlab.bench import format_machine_line, load_average, machine_line, peak_rss_delta
from attnlab.functional.feature_maps import FavorPlusFeatureMap, feature_map
from attnlab.functional.linear import CHUNK, kernel_attention, linear_attend, linear_attention

LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
# "elu, unchecked" is linear_attend, the path a module calls: no finiteness check of Q, K, V.
METHODS = ("sdpa", "elu", "elu, unchecked", "poly2", "favor+")
# Speedup over SDPA wanted at T = 16384, non-causal and causal.
TARGETS = {(m, c): 20.0 if c else 100.0 for m in ("elu", "elu, unchecked") for c in (False, True)}
TARGET_SEQ, FAVOR_FROM = 16384, 4096
BYTES = 4  # float32


def favor_error_vs_features(
    n_features=(16, 32, 64, 128, 256, 512, 1024),
    *,
    input_std=(0.25, 0.5, 1.0),
    seq: int = 256,
    head_dim: int = 64,
    heads: int = 4,
    draws: int = 8,
    seed: int = 0,
) -> list[dict]:
    """FAVOR+ mean relative error ``‖out − exact‖ / ‖exact‖`` against softmax attention.

    Queries and keys are N(0, s²) for each ``s`` in ``input_std`` (scores ``qᵀk/√d`` then have
    std s²; s = 1 is seed 003 problem 1's unit-variance case), values N(0, 1); each r is averaged
    over ``draws`` feature draws, orthogonal and i.i.d. Each row also holds ``slope``, the
    least-squares slope of log error against log r over its group (−0.5: error ∝ 1/√r). The
    estimator's variance grows like exp(‖q + k‖²/√d) (Choromanski et al., 2021, Lemma 2), so
    the 1/√r regime starts at larger r for larger inputs.
    """
    rows = []
    for s in input_std:
        g = torch.Generator().manual_seed(seed)
        shape = (1, heads, seq, head_dim)
        q, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
        q, k = q * s, k * s
        exact = kernel_attention(q, k, v, "softmax")
        for orthogonal in (True, False):
            group = []
            for r in n_features:
                errors = []
                for draw in range(draws):
                    fm = FavorPlusFeatureMap(r, orthogonal=orthogonal, seed=seed + 1000 * draw + r)
                    approx = linear_attention(q, k, v, fm)
                    errors.append(float((approx - exact).norm() / exact.norm()))
                mean = statistics.fmean(errors)
                group.append(
                    {
                        "input_std": s,
                        "orthogonal": orthogonal,
                        "n_features": r,
                        "mean_rel_error": mean,
                        "std_rel_error": statistics.stdev(errors) if draws > 1 else 0.0,
                        "error_x_sqrt_r": mean * math.sqrt(r),
                    }
                )
            xs = [math.log(row["n_features"]) for row in group]
            ys = [math.log(row["mean_rel_error"]) for row in group]
            slope = statistics.linear_regression(xs, ys).slope
            rows += [{**row, "slope": slope} for row in group]
    return rows


def _feature_dim(method: str, head_dim: int, n_features: int) -> int:
    return {"elu": head_dim, "poly2": 1 + head_dim + head_dim * (head_dim + 1) // 2}.get(
        method, n_features
    )


def cost(method: str, seq: int, causal: bool, *, head_dim=64, n_features=256, heads=8, batch=1):
    """``(matmul FLOPs, bytes moved)`` of one forward call, for all batch × heads.

    FLOPs: matrix products only (as ``FlopCounterMode`` counts them). SDPA: ``4·T²·d``, causal
    ``2·T·(T+1)·d`` (the pairs j ≤ i). Linear, with ``r`` features and ``d_value = d``: not
    causal, ``φ(K)ᵀV`` and ``φ(Q)[S | z]``, ``2·T·r·(2d + 1)``; causal, per chunk of C tokens
    its sums ``φ(K_c)ᵀ[V_c, 1]``, ``φ(Q_c)`` times the state before it, the masked
    ``φ(Q_c)φ(K_c)ᵀ`` and its product with ``[V_c, 1]``: ``4·T·r·(d+1) + 2·T·C·(r + d + 1)``.
    FAVOR+ adds its projections, ``2 · 2·T·d·r``.

    Bytes: a model of the passes the implementation makes over tensors of ``T`` rows, each
    read or written once per pass (caches ignored), float32. SDPA reads Q, K, V and writes the
    output (its tiles stay in cache). Linear: the boundary check reads Q, K, V; each feature map
    reads its input and writes and rewrites features (elu: 3 passes over ``T·r``; FAVOR+: 5–6;
    poly2: the ``(d+1)²`` outer product and its gather); then the sums, the states and the
    output with its normaliser column, and the division.
    """
    T, d, n = seq, head_dim, batch * heads
    if method == "sdpa":
        flops = (2 * T * (T + 1) if causal else 4 * T * T) * d
        return n * flops, n * 4 * T * d * BYTES
    checked = method != "elu, unchecked"
    method = method.removesuffix(", unchecked")
    r = _feature_dim(method, d, n_features)
    dv1 = d + 1
    chunk = min(T, CHUNK)
    flops = 2 * T * r * (2 * d + 1)
    if causal:
        flops = 4 * T * r * dv1 + 2 * T * chunk * (r + dv1)
    if method == "favor+":
        flops += 4 * T * d * r
    features = {  # queries + keys
        "elu": 2 * (T * d + 3 * T * r),
        "favor+": (T * d + 6 * T * r) + (2 * T * d + 5 * T * r),
        "poly2": 2 * (T * d + 3 * T * dv1 + 2 * T * dv1 * dv1 + 3 * T * r),
    }[method]
    elements = 3 * T * d * checked + features  # the finiteness check, then the features
    if causal:
        states = T // chunk * r * dv1  # one (r, d + 1) state per chunk
        elements += T * d + T * dv1  # [V, 1]
        elements += T * r + T * dv1 + states  # each chunk's sums
        elements += 2 * states  # the exclusive prefix sums
        elements += T * r + states + T * dv1  # φ(Q_c) · state before the chunk
        elements += 2 * T * r + 3 * T * chunk  # masked φ(Q_c)φ(K_c)ᵀ
        elements += T * chunk + 2 * T * dv1 + 3 * T * dv1  # its product with [V_c, 1], the sum
    else:
        elements += 3 * T * r + T * d + T * dv1  # S, z, φ(Q)[S | z]
    elements += T + T * dv1 + T * d  # the normaliser check and the division
    return n * flops, n * elements * BYTES


def _maps(head_dim: int, n_features: int, seed: int) -> dict:
    favor = FavorPlusFeatureMap(n_features, head_dim=head_dim, seed=seed)
    return {"elu": feature_map("elu"), "poly2": feature_map("poly2"), "favor+": favor}


def _call(method, q, k, v, causal, maps):
    if method == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if method == "elu, unchecked":
        return lambda: linear_attend(q, k, v, maps["elu"], causal=causal)
    return lambda: linear_attention(q, k, v, maps[method], causal=causal)


@dataclass
class _Plan:
    fn: object
    warm: bool
    repeats: int
    times: list = field(default_factory=list)
    peak: int = 0


def linear_vs_softmax_timing(
    lengths=LENGTHS,
    *,
    methods=METHODS,
    causal=(False, True),
    batch: int = 1,
    heads: int = 8,
    head_dim: int = 64,
    n_features: int = 256,
    repeats: int = 5,
    sdpa_budget_s: float = 40.0,
    seed: int = 0,
    progress=None,
) -> list[dict]:
    """Median forward time and peak RSS growth of each method at each length, interleaved.

    At each length every (method, causal) pair runs once per round (one untimed warm-up round,
    then ``repeats`` timed ones), so load from elsewhere hits all alike. SDPA's repeats shrink
    at long lengths to fit ``sdpa_budget_s`` per form (at least 2), estimated from the previous
    length's time × 4; where that estimate exceeds 5 s it gets no warm-up call (its kernels are
    warm from the shorter lengths). Rows: ``seq, method, causal, ms, sdpa_ms, speedup`` (SDPA's
    time over the method's, same causal form), ``peak_mib`` (largest RSS growth during a call,
    :func:`attnlab.bench.peak_rss_delta`), ``repeats``, ``gflop`` and ``gbytes`` (:func:`cost`),
    and ``others_cpu``, the share of the machine's CPU time that other processes took while this
    length ran (from /proc/stat): above a few percent, the times were disturbed.
    """
    g = torch.Generator().manual_seed(seed)
    maps = _maps(head_dim, n_features, seed)
    rows, sdpa_seconds = [], {}
    with torch.inference_mode():
        for T in lengths:
            q, k, v = (torch.randn(batch, heads, T, head_dim, generator=g) for _ in range(3))
            plan, ticks, wall = {}, _cpu_ticks(), time.perf_counter()
            for method in methods:
                for c in causal:
                    n, warm = repeats, True
                    if method == "sdpa" and c in sdpa_seconds:
                        estimate = 4 * sdpa_seconds[c]
                        n = max(2, min(repeats, int(sdpa_budget_s / estimate)))
                        warm = estimate <= 5
                    plan[(method, c)] = _Plan(_call(method, q, k, v, c, maps), warm, n)
            for round_ in range(-1, repeats):  # round −1 warms up
                for entry in plan.values():
                    if (round_ < 0 and not entry.warm) or len(entry.times) >= entry.repeats:
                        continue
                    clock = []
                    _, grown = peak_rss_delta(lambda e=entry, c=clock: _timed(e.fn, c))
                    entry.peak = max(entry.peak, grown)
                    if round_ >= 0:
                        entry.times.append(clock[0])
            others = _others_share(ticks, _cpu_ticks(), time.perf_counter() - wall)
            for (method, c), entry in plan.items():
                seconds = statistics.median(entry.times)
                if method == "sdpa":
                    sdpa_seconds[c] = seconds
                flops, nbytes = cost(
                    method, T, c, head_dim=head_dim, n_features=n_features, heads=heads, batch=batch
                )
                rows.append(
                    {
                        "seq": T,
                        "method": method,
                        "causal": c,
                        "ms": seconds * 1e3,
                        "peak_mib": entry.peak / 2**20,
                        "repeats": len(entry.times),
                        "gflop": flops / 1e9,
                        "gbytes": nbytes / 1e9,
                        "others_cpu": others,
                    }
                )
            for r in rows:
                if r["seq"] == T and r["causal"] in sdpa_seconds and "sdpa" in methods:
                    r["sdpa_ms"] = sdpa_seconds[r["causal"]] * 1e3
                    r["speedup"] = r["sdpa_ms"] / r["ms"]
            if progress is not None:
                progress(T)
            del q, k, v
    return rows


def _cpu_ticks() -> tuple[int, int]:
    """(busy ticks of the whole machine, ticks of this process) from /proc/stat and os.times."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    own = os.times()
    return sum(ticks) - ticks[3] - ticks[4], round(
        (own.user + own.system) * os.sysconf("SC_CLK_TCK")
    )


def _others_share(before, after, seconds: float) -> float:
    """Share of the machine's CPU time that other processes used between two _cpu_ticks()."""
    busy, own = after[0] - before[0], after[1] - before[1]
    capacity = seconds * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    return max(0.0, busy - own) / capacity


def _timed(fn, clock: list) -> None:
    start = time.perf_counter()
    fn()
    clock.append(time.perf_counter() - start)


def add_roofline(rows: list[dict], machine: dict) -> None:
    """``roofline_ms`` = max(FLOPs / matmul peak, bytes / bandwidth), and its share of the time."""
    for r in rows:
        compute = r["gflop"] / machine["matmul_gflops"]
        memory = r["gbytes"] / machine["bandwidth_gbs"]
        r["roofline_ms"] = 1e3 * max(compute, memory)
        r["bound"] = "compute" if compute >= memory else "memory"
        r["roofline_share"] = r["roofline_ms"] / r["ms"]


def crossover_length(rows: list[dict], method: str, causal: bool) -> int | None:
    """The shortest measured length from which ``method`` beats SDPA at every longer length."""
    mine = sorted(
        (r["seq"], r["speedup"]) for r in rows if r["method"] == method and r["causal"] == causal
    )
    best = None
    for seq, speedup in reversed(mine):
        if speedup <= 1.0:
            break
        best = seq
    return best


def check_flop_closed_forms(head_dim=64, n_features=256, seq=1024) -> list[str]:
    """Compare the closed-form matmul FLOPs with ``FlopCounterMode`` on real linear calls."""
    from torch.utils.flop_counter import FlopCounterMode

    q, k, v = (torch.randn(1, 8, seq, head_dim) for _ in range(3))
    maps = _maps(head_dim, n_features, 0)
    lines = []
    for method in ("elu", "poly2", "favor+"):
        for c in (False, True):
            counter = FlopCounterMode(display=False)
            with torch.inference_mode(), counter:
                _call(method, q, k, v, c, maps)()
            closed, _ = cost(method, seq, c, head_dim=head_dim, n_features=n_features)
            counted = counter.get_total_flops()
            lines.append(f"{method} causal={c}: closed form {closed:.4g}, counted {counted:.4g}")
    return lines


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
    console.print(
        f"B=1 H={args.heads} D={args.head_dim} float32, forward, inference_mode; linear = "
        f"linear_attention ('elu, unchecked': linear_attend), FAVOR+ r={args.n_features}; "
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
            f"{r['speedup']:.3g}",
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
    flop_check = check_flop_closed_forms(args.head_dim, args.n_features)
    rows = linear_vs_softmax_timing(
        args.lengths,
        methods=tuple(m for m in METHODS if m in args.methods),
        heads=args.heads,
        head_dim=args.head_dim,
        n_features=args.n_features,
        repeats=args.repeats,
        sdpa_budget_s=args.sdpa_budget,
        progress=None if args.json else lambda T: print(f"  T={T} done", flush=True),
    )
    load_after = load_average()
    add_roofline(rows, machine)
    favor_rows = [] if args.no_favor_error else favor_error_vs_features(head_dim=args.head_dim)
    if args.json:
        out = {
            "machine": machine,
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
