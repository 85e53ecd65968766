"""Peak memory of naive, fused (torch SDPA) and tiled (flash) attention as T doubles.

Naive attention materialises the ``(T, T)`` scores and weights of every head
(``softmax(q·kᵀ·s)·v``), so its memory grows as T² (seed 004 exercise 13.9); its backward adds
the gradients of both. FlashAttention (exercise 13.10; :func:`attnlab.functional.flash_attention`)
walks over ``(block_q, block_k)`` tiles with an online softmax and keeps, per head, one tile and
O(T) vectors (the output and its log-sum-exp), so it is exact and its memory grows at most as T.
``torch.nn.functional.scaled_dot_product_attention`` (torch's fused CPU kernel) is the third
line.

The points are measured in child processes by :func:`measure_points`: it builds the inputs,
makes one small call of each method (so that thread pools and the matmul library's buffers,
allocated once per process, are not counted as attention's memory), then measures the peak RSS
growth of one forward (under ``torch.inference_mode()``) or one forward + backward call with
:func:`attnlab.bench.peak_rss_delta`. ``isolation`` says how the points share processes:

* ``"process"`` (the default, and the reference): every point runs in a fresh subprocess, so
  nothing freed by an earlier point can hide in the allocator. Each one starts a Python process
  that imports torch (about 1.5 s before any attention runs).
* ``"child"``: all points run in ONE child process started with a fixed glibc malloc mmap
  threshold (``MALLOC_MMAP_THRESHOLD_=65536``, ``MALLOC_TRIM_THRESHOLD_=0``). glibc otherwise
  raises its threshold after each large free and serves the next allocation from memory it kept
  resident, which would hide part of the next point's growth. With the threshold fixed, every
  buffer above 64 KiB is mapped on allocation and returned on free, so ``peak_rss_delta`` sees
  each call's own peak; what stays shared is the small-object heap (below 64 KiB per block),
  which is noise next to the MiB the attention buffers take. It pays torch's import once, and
  since naive and flash forward run on the same inputs in that process, it also records the
  largest difference between their outputs (``max_abs_diff``; None with ``"process"``, where
  no two points share a process). The lab report uses it.

The growth exponent is the slope of a least-squares line through log(peak) against log(T), over
all points and over the three longest (where the O(T) buffers outgrow the tiled path's fixed
tile). A naive point whose ``(T, T)`` matrices would take more than 60% of the available memory
is not run; its row says so. Batch 1, float32, inputs drawn from ``seed`` (the same inputs for
every method at a given T; the peaks do not depend on their values). ``methods`` and ``passes``
leave some out.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

from .fitting import loglog_slope
from .registry import ExperimentResult, Progress, check_positive_ints, register

METHODS = ("naive", "sdpa", "flash")
PASSES = ("forward", "forward+backward")
ISOLATIONS = ("process", "child")
# (T, T) float32 matrices alive at the peak of the naive path, per head: the forward holds the
# scores and the weights; the backward adds the weights' gradient and the softmax's.
NAIVE_MATRICES = {"forward": 2, "forward+backward": 4}
# Share of the available memory a naive point may need; the rest is left to other processes.
NAIVE_SHARE = 0.6
LENGTHS = (1024, 2048, 4096, 8192, 16384)
COLUMNS = ["passes", "method", "seq", "peak_bytes", "peak_mib", "skipped"]
# The child: `python -c CHILD REQUEST` prints {"peaks": [...], "max_abs_diff": ...} for the JSON
# REQUEST {"points": [[METHOD, PASSES, T], ...], "heads": …, "head_dim": …, "seed": …}. Not
# `-m attnlab.experiments.flash_memory`: that would run this module a second time as __main__
# after the package has imported (and registered) it.
CHILD = "from attnlab.experiments.flash_memory import child_main; child_main()"
# isolation="child": every buffer above 64 KiB is mapped on allocation and unmapped on free.
FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
# Seconds a child may run per point before it is stopped and its points marked failed.
SECONDS_PER_POINT = 300


def naive_attention(q, k, v):
    """``softmax(q·kᵀ/√d)·v`` with the ``(…, T, T)`` scores and weights materialised."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (1, H, T, T)
    return scores.softmax(dim=-1) @ v


def measure_points(points, heads: int, head_dim: int, seed: int = 0) -> dict:
    """In this process: ``{"peaks": [...], "max_abs_diff": …}``, the peak RSS growth of one call
    per ``(method, passes, seq)`` point, in order, and the largest ``|flash − naive|`` over the
    forward outputs of the lengths where both ran here (None if none)."""
    import torch
    import torch.nn.functional as F

    from attnlab.bench import peak_rss_delta
    from attnlab.functional.flash import flash_attention

    fns = {"naive": naive_attention, "sdpa": F.scaled_dot_product_attention}
    fns["flash"] = flash_attention

    def inputs(seq):
        gen = torch.Generator().manual_seed(seed)
        shape = (1, heads, seq, head_dim)
        q, k, v = (torch.randn(shape, generator=gen).requires_grad_() for _ in range(3))
        return q, k, v, torch.randn(shape, generator=gen)

    def call(fn, passes, q, k, v, grad):
        if passes == "forward":
            with torch.inference_mode():
                return fn(q, k, v)
        return torch.autograd.grad(fn(q, k, v), (q, k, v), grad)

    # One small call of each method first, so that thread pools and the matmul library's
    # buffers, allocated once per process, are not counted as the memory of attention.
    for method in dict.fromkeys(m for m, _, _ in points):
        call(fns[method], "forward+backward", *inputs(128))
    peaks, outputs, diff, built = [], {}, None, None
    for method, passes, seq in points:
        if built != seq:
            tensors = inputs(seq)
            built, outputs = seq, {}
        out, peak = peak_rss_delta(functools.partial(call, fns[method], passes, *tensors))
        peaks.append(peak)
        if passes == "forward" and method in ("naive", "flash"):
            outputs[method] = out
        del out
        if len(outputs) == 2:
            error = (outputs.pop("naive") - outputs.pop("flash")).abs().max().item()
            diff = error if diff is None else max(diff, error)
    return {"peaks": peaks, "max_abs_diff": diff}


def child_main(argv: list[str] | None = None) -> None:
    """Entry point of the child process: one JSON request → one JSON line."""
    (request,) = sys.argv[1:] if argv is None else argv
    request = json.loads(request)
    points = [tuple(p) for p in request["points"]]
    if any(m not in METHODS or p not in PASSES for m, p, _ in points):
        raise SystemExit(f"expected points of {METHODS} and {PASSES}, got {points}")
    result = measure_points(points, request["heads"], request["head_dim"], request["seed"])
    print(json.dumps(result))


def available_bytes() -> int:
    """``MemAvailable`` from /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable line")


def naive_bytes(passes: str, seq: int, heads: int) -> int:
    """The ``(T, T)`` float32 matrices the naive path holds at its peak, in bytes."""
    return NAIVE_MATRICES[passes] * heads * seq * seq * 4


def run_child(points, heads: int, head_dim: int, seed: int, *, fixed_mmap: bool) -> dict:
    """:func:`measure_points` in a new Python process; ``{"error": …}`` if it failed."""
    request = {"points": points, "heads": heads, "head_dim": head_dim, "seed": seed}
    env = {**os.environ, **FIXED_MMAP_THRESHOLD} if fixed_mmap else None
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(request)],
            capture_output=True,
            text=True,
            env=env,
            timeout=SECONDS_PER_POINT * len(points),
        )
    except subprocess.TimeoutExpired as e:
        return {"error": f"failed (stopped after {e.timeout:.0f} s)"}
    if done.returncode != 0:
        return {"error": f"failed (exit {done.returncode}): {done.stderr[-200:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    lengths,
    heads: int,
    head_dim: int,
    *,
    methods=METHODS,
    passes=PASSES,
    isolation: str = "process",
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[list[dict], float | None]:
    """One row per (pass, method, length), and the ``max_abs_diff`` of :func:`measure_points`
    (None unless ``isolation="child"`` ran naive and flash forward at the same length).

    Rows: ``passes, method, seq, peak_bytes, peak_mib, skipped`` (None, or why the point was
    not run or failed; its peak is then None).
    """
    rows, todo = [], []
    for pass_ in passes:
        for method in methods:
            for seq in lengths:
                row = {"passes": pass_, "method": method, "seq": seq}
                row |= {"peak_bytes": None, "peak_mib": None, "skipped": None}
                rows.append(row)
                if method == "naive":
                    need, available = naive_bytes(pass_, seq, heads), available_bytes()
                    if need > NAIVE_SHARE * available:
                        row["skipped"] = (
                            f"needs ~{need / 2**30:.1f} GiB, more than {NAIVE_SHARE:.0%} of the "
                            f"{available / 2**30:.1f} GiB available: not run"
                        )
                        continue
                todo.append(row)
    if isolation == "process":  # one fresh process per point, in the order of the rows
        batches = [[row] for row in todo]
    else:  # one child; the methods of one length next to each other, on the same inputs
        grid = ((p, t, m) for p in passes for t in lengths for m in methods)
        order = {key: i for i, key in enumerate(grid)}
        batches = [sorted(todo, key=lambda r: order[r["passes"], r["seq"], r["method"]])]
    diff = None
    for batch in filter(None, batches):
        if progress is not None:
            r = batch[0]
            first = f"{r['passes']}, {r['method']}, T = {r['seq']}"
            progress(first if len(batch) == 1 else f"{len(batch)} points in one child process")
        points = [[r["method"], r["passes"], r["seq"]] for r in batch]
        done = run_child(points, heads, head_dim, seed, fixed_mmap=isolation == "child")
        for row, peak in zip(batch, done.get("peaks") or [None] * len(batch), strict=True):
            if peak is None:
                row["skipped"] = done["error"]
            else:
                row["peak_bytes"], row["peak_mib"] = peak, peak / 2**20
        diff = done.get("max_abs_diff", diff)
    return rows, diff


def growth_exponents(rows: list[dict], last: int | None = None) -> dict[tuple[str, str], float]:
    """Fitted log-log slope of peak against T per (method, pass), over every measured point or
    the ``last`` longest; None with fewer than two points (a peak of 0 is not a point)."""
    out = {}
    for method in _methods(rows):
        for passes in PASSES:
            points = [
                r
                for r in rows
                if r["method"] == method and r["passes"] == passes and r["peak_bytes"]
            ]
            points = points[-last:] if last else points
            out[(method, passes)] = (
                loglog_slope([r["seq"] for r in points], [r["peak_bytes"] for r in points])
                if len(points) >= 2
                else None
            )
    return out


def _methods(rows: list[dict]) -> list[str]:
    """The methods the rows hold, in the order of METHODS."""
    return [m for m in METHODS if any(r["method"] == m for r in rows)]


def _peak(rows, method: str, passes: str, seq: int) -> int | None:
    return next(
        (
            r["peak_bytes"]
            for r in rows
            if (r["method"], r["passes"], r["seq"]) == (method, passes, seq)
        ),
        None,
    )


def summarise(rows: list[dict]) -> dict:
    """The exponents per (method, pass), all points and the longest 3; flash / naive forward +
    backward at the longest length where both were measured; flash's growth 4096 → 16384."""
    summary = {}
    for last, prefix in ((None, "exponent"), (3, "exponent_longest_3")):
        for (method, passes), slope in growth_exponents(rows, last).items():
            summary[f"{prefix}_{method}_{passes}"] = slope
    both = [
        r["seq"]
        for r in rows
        if r["method"] == "naive"
        and r["passes"] == "forward+backward"
        and r["peak_bytes"]
        and _peak(rows, "flash", "forward+backward", r["seq"])
    ]
    common = max(both, default=None)
    summary["longest_common_seq"] = common
    summary["flash_over_naive_forward+backward"] = (
        _peak(rows, "flash", "forward+backward", common)
        / _peak(rows, "naive", "forward+backward", common)
        if common
        else None
    )
    for passes in PASSES:
        low, high = _peak(rows, "flash", passes, 4096), _peak(rows, "flash", passes, 16384)
        summary[f"flash_growth_4096_to_16384_{passes}"] = high / low if low and high else None
    summary["skipped_points"] = sum(r["skipped"] is not None for r in rows)
    return summary


def _figure(fig, result: ExperimentResult) -> None:
    shown = [p for p in PASSES if any(r["passes"] == p for r in result.rows)]
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    params = result.params
    for ax, passes in zip(axes, shown, strict=True):
        for method in _methods(result.rows):
            marker = {"naive": "o", "sdpa": "s", "flash": "^"}[method]
            points = [
                r
                for r in result.rows
                if r["method"] == method and r["passes"] == passes and r["peak_bytes"]
            ]
            slope = result.summary.get(f"exponent_{method}_{passes}")
            label = f"{method} (slope {slope:.2f})" if slope is not None else method
            ax.loglog(
                [r["seq"] for r in points],
                [r["peak_mib"] for r in points],
                marker=marker,
                label=label,
                base=2,
            )
        ax.set_title(f"{passes}, H={params['heads']}, D={params['head_dim']}, float32")
        ax.set_xlabel("sequence length T")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("peak RSS growth (MiB)")


@register(
    "flash-memory",
    title="peak memory of naive, SDPA and flash attention vs T, forward and forward + backward",
    question="seed 004 13.9/13.10: why naive attention needs O(T²) memory and how "
    "FlashAttention stays exact in O(T)",
    description="peak RSS growth of naive vs SDPA vs tiled attention per T, log-log exponents",
    help={
        "lengths": "sequence lengths T (ascending)",
        "methods": "comma-separated, of naive, sdpa and flash",
        "passes": "comma-separated, of forward and forward+backward",
        "heads": "attention heads",
        "head_dim": "width of each head",
        "isolation": "process: one fresh subprocess per point (the reference); child: all "
        "points in one child with a fixed malloc mmap threshold (faster; also records "
        "max_abs_diff, flash against naive forward)",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    lengths: tuple[int, ...] = LENGTHS,
    methods: str = ",".join(METHODS),
    passes: str = ",".join(PASSES),
    heads: int = 8,
    head_dim: int = 64,
    isolation: str = "process",
) -> ExperimentResult:
    check_positive_ints("lengths", lengths)
    if len(lengths) < 2 or list(lengths) != sorted(set(lengths)):
        raise ValueError(f"lengths: expected two or more increasing lengths, got {lengths}")
    chosen = _choose("methods", methods, METHODS)
    chosen_passes = _choose("passes", passes, PASSES)
    check_positive_ints("heads", (heads,))
    check_positive_ints("head_dim", (head_dim,))
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation: expected one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    rows, diff = measure(
        lengths,
        heads,
        head_dim,
        methods=chosen,
        passes=chosen_passes,
        isolation=isolation,
        seed=seed,
        progress=progress,
    )
    summary = summarise(rows) | {"max_abs_diff": diff}
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary)


def _choose(name: str, text: str, choices: tuple[str, ...]) -> list[str]:
    """The comma-separated ``text`` as a list in the order of ``choices``; a ValueError names
    ``name`` if it is empty, repeats itself or holds something else."""
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    if not chosen or any(c not in choices for c in chosen) or len(set(chosen)) < len(chosen):
        raise ValueError(f"{name}: expected some of {', '.join(choices)}, got {text!r}")
    return [c for c in choices if c in chosen]
