"""Measured cost of naive attention against sequence length: the log-log slope is about 2.

Naive attention materialises the ``(T, T)`` score and weight matrices of every head, so its
work is ``2·H·T²·(d_k + d_v)`` matmul FLOPs plus ``O(H·T²)`` for the softmax, and its time
grows like T² once T is large enough that fixed per-call overheads no longer matter (seed 000
Ex 9 and Ex 19; seed 004 exercise 13.9). The experiment times the explicit path of
:func:`attnlab.functional.scaled_dot_product_attention` (``return_weights=True``) with
:func:`attnlab.bench.median_time`, every length once per round, and keeps each length's median
over the rounds; it fits the slope of ``log time`` against ``log T`` by least squares over the
upper half of the lengths, where the T² term dominates. The slope of the
exact FLOP count (:func:`attnlab.calc.attention_ops`) is printed beside it: exactly 2, the
value the measurement should approach.

Times depend on the machine and its load; read the ratios and the slope, not the seconds. The
``ns_per_score`` column (time per entry of the score matrices) is flat exactly where the cost is
T². Where it is not, the memory system is the reason: the ``(T, T)`` matrices outgrow the
caches, and past a size set by the C allocator (32 MiB per tensor for glibc) every call maps
fresh pages and pays a page fault on each of them, which is costly on virtual machines. Within
one regime the cost per entry is constant again; fitting over lengths whose matrices all exceed
that size (e.g. ``--heads 8 --lengths 1024,2048``) gives a slope near 2 even on such machines.
"""

from __future__ import annotations

import statistics

import torch

from attnlab.bench import median_time
from attnlab.calc import attention_ops
from attnlab.functional import scaled_dot_product_attention

from .fitting import loglog_line, loglog_slope
from .registry import ExperimentResult, Progress, check_positive_ints, register

COLUMNS = [
    "seq_len",
    "time_ms",
    "ratio_to_previous",
    "ns_per_score",
    "matmul_flops",
    "gflop_per_s",
]


def _upper_half(values: list) -> list:
    """The last ⌈n/2⌉ entries, at least two: the large-T end where T² dominates."""
    return values[-max(2, (len(values) + 1) // 2) :]


def _measure(seed, progress, lengths, batch, heads, head_dim, repeats, warmup) -> list[dict]:
    """One row per length: the median forward time and the exact matmul FLOPs.

    The lengths are timed in interleaved rounds (every length once per round, as
    :func:`attnlab.bench.compare` interleaves its two sides), so that a burst of load from
    elsewhere lands on all lengths alike instead of on whichever was being timed.
    """
    rng = torch.Generator().manual_seed(seed)
    calls = {}
    for t in lengths:
        q, k, v = (torch.randn(batch, heads, t, head_dim, generator=rng) for _ in "qkv")
        calls[t] = lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v, return_weights=True)
    times: dict[int, list[float]] = {t: [] for t in lengths}
    with torch.inference_mode():
        for t, forward in calls.items():
            progress(f"warming up T = {t}")
            for _ in range(warmup):
                forward()
        for round_ in range(repeats):
            progress(f"round {round_ + 1}/{repeats}")
            for t, forward in calls.items():
                times[t].append(median_time(forward, repeats=1, warmup=0))
    rows = []
    for t in lengths:
        seconds = statistics.median(times[t])
        flops = attention_ops(t, t, head_dim, n_heads=batch * heads).matmul_flops
        rows.append(
            {
                "seq_len": t,
                "time_ms": seconds * 1e3,
                "ratio_to_previous": seconds * 1e3 / rows[-1]["time_ms"] if rows else None,
                "ns_per_score": seconds * 1e9 / (batch * heads * t * t),
                "matmul_flops": flops,
                "gflop_per_s": flops / seconds / 1e9,
            }
        )
    return rows


def _figure(fig, result: ExperimentResult) -> None:
    import numpy as np

    ax, per_score = fig.subplots(1, 2)
    t = np.array([r["seq_len"] for r in result.rows], float)
    seconds = np.array([r["time_ms"] for r in result.rows]) / 1e3
    ax.loglog(t, seconds, "o", label="measured (median)")
    fit_t = np.array(_upper_half(list(t)))
    slope, intercept = loglog_line(fit_t, _upper_half(list(seconds)))
    ax.loglog(fit_t, np.exp(intercept) * fit_t**slope, "-", label=f"fit, slope {slope:.2f}")
    ax.loglog(t, seconds[-1] * (t / t[-1]) ** 2, ":", color="grey", label="slope 2")
    ax.set(xlabel="sequence length T", ylabel="forward time (s)", title="naive attention")
    ax.legend(fontsize=8)
    per_score.semilogx(t, [r["ns_per_score"] for r in result.rows], "o-")
    per_score.set_ylim(bottom=0)
    per_score.set(
        xlabel="sequence length T",
        ylabel="ns per score entry",
        title="time / (batch·heads·T²): flat where the cost is T²",
    )
    for axis in (ax, per_score):
        axis.set_xticks(t, [str(int(x)) for x in t], minor=False)
        axis.minorticks_off()


@register(
    "quadratic-scaling",
    title="forward time of naive attention vs T, with the fitted log-log slope",
    question="seed 000 Ex 19 (and Ex 9), 004 13.9: attention costs O(T²)",
    description="time naive (materialising) attention for growing T and fit the log-log slope",
    help={
        "lengths": "sequence lengths T (ascending)",
        "batch": "sequences per call",
        "heads": "attention heads",
        "head_dim": "width of each head",
        "repeats": "timed rounds, each calling every length once (the median is kept)",
        "warmup": "untimed calls per length before timing",
        "threads": "torch threads while timing (0 keeps the current setting)",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    lengths: tuple[int, ...] = (128, 256, 512, 1024, 2048),
    batch: int = 1,
    heads: int = 4,
    head_dim: int = 64,
    repeats: int = 5,
    warmup: int = 1,
    threads: int = 1,
) -> ExperimentResult:
    check_positive_ints("lengths", lengths)
    if len(lengths) < 2 or list(lengths) != sorted(set(lengths)):
        raise ValueError(f"lengths: expected two or more increasing lengths, got {lengths}")
    for name, value in (("batch", batch), ("heads", heads), ("head_dim", head_dim)):
        check_positive_ints(name, (value,))
    check_positive_ints("repeats", (repeats,))
    check_positive_ints("warmup", (warmup,), minimum=0)
    check_positive_ints("threads", (threads,), minimum=0)
    # Intra-op threads wait for each other at every op; on a shared machine a busy core makes
    # small-T calls stall for milliseconds and flattens the slope. One thread measures the work.
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        rows = _measure(seed, progress, lengths, batch, heads, head_dim, repeats, warmup)
    finally:
        torch.set_num_threads(previous_threads)

    t = [r["seq_len"] for r in rows]
    ms = [r["time_ms"] for r in rows]
    summary = {
        "fitted_slope_upper_half": loglog_slope(_upper_half(t), _upper_half(ms)),
        "fitted_slope_all": loglog_slope(t, ms),
        "flop_slope": loglog_slope(t, [r["matmul_flops"] for r in rows]),
        "fit_lengths": _upper_half(t),
        "time_ratio_last_to_first": ms[-1] / ms[0],
        "length_ratio_squared": (t[-1] / t[0]) ** 2,
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary)
