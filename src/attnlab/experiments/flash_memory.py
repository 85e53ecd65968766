"""Peak memory of naive, fused (torch SDPA) and tiled (flash) attention as T doubles.

Naive attention materialises the ``(T, T)`` scores and weights of every head
(``softmax(q·kᵀ·s)·v``), so its memory grows as T² (seed 004 exercise 13.9); its backward adds
the gradients of both. FlashAttention (exercise 13.10; :func:`attnlab.functional.flash_attention`)
walks over ``(block_q, block_k)`` tiles with an online softmax and keeps, per head, one tile and
O(T) vectors (the output and its log-sum-exp), so it is exact and its memory grows at most as T.
``torch.nn.functional.scaled_dot_product_attention`` (torch's fused CPU kernel) is the third
line.

Each point runs in a fresh subprocess (:func:`measure_point`): it builds the inputs, makes one
small call (so that thread pools and the matmul library's buffers, allocated once per process,
are not counted as attention's memory), then measures the peak RSS growth of one forward (under
``torch.inference_mode()``) or one forward + backward call with
:func:`attnlab.bench.peak_rss_delta`, so nothing freed by an earlier point hides in the
allocator. The growth exponent is the slope of a least-squares line through log(peak) against
log(T), over all points and over the three longest (where the O(T) buffers outgrow the tiled
path's fixed tile). A naive point whose ``(T, T)`` matrices would take more than 60% of the
available memory is not run; its row says so. Batch 1, float32, inputs drawn from ``seed``
(the peaks do not depend on their values). Every point starts a Python process that imports
torch (about 1.5 s before any attention runs); ``methods`` leaves some of the three out.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .fitting import loglog_slope
from .registry import ExperimentResult, Progress, check_positive_ints, register

METHODS = ("naive", "sdpa", "flash")
PASSES = ("forward", "forward+backward")
# (T, T) float32 matrices alive at the peak of the naive path, per head: the forward holds the
# scores and the weights; the backward adds the weights' gradient and the softmax's.
NAIVE_MATRICES = {"forward": 2, "forward+backward": 4}
# Share of the available memory a naive point may need; the rest is left to other processes.
NAIVE_SHARE = 0.6
LENGTHS = (1024, 2048, 4096, 8192, 16384)
COLUMNS = ["passes", "method", "seq", "peak_bytes", "peak_mib", "skipped"]
# The child: `python -c CHILD METHOD PASSES T HEADS HEAD_DIM SEED` prints {"peak_bytes": …}. Not
# `-m attnlab.experiments.flash_memory`: that would run this module a second time as __main__
# after the package has imported (and registered) it.
CHILD = "from attnlab.experiments.flash_memory import child_main; child_main()"


def naive_attention(q, k, v):
    """``softmax(q·kᵀ/√d)·v`` with the ``(…, T, T)`` scores and weights materialised."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (1, H, T, T)
    return scores.softmax(dim=-1) @ v


def measure_point(
    method: str, passes: str, seq: int, heads: int, head_dim: int, seed: int = 0
) -> dict:
    """In a fresh process: ``{"peak_bytes": …}``, the peak RSS growth of one call."""
    import torch
    import torch.nn.functional as F

    from attnlab.bench import peak_rss_delta
    from attnlab.functional.flash import flash_attention

    fn = {"naive": naive_attention, "sdpa": F.scaled_dot_product_attention}
    fn = {**fn, "flash": flash_attention}[method]
    gen = torch.Generator().manual_seed(seed)
    shape = (1, heads, seq, head_dim)
    q, k, v = (torch.randn(shape, generator=gen).requires_grad_() for _ in range(3))
    grad = torch.randn(shape, generator=gen)

    def call():
        if passes == "forward":
            with torch.inference_mode():
                return fn(q, k, v)
        return torch.autograd.grad(fn(q, k, v), (q, k, v), grad)

    # One small call first, so that thread pools and the matmul library's buffers, allocated
    # once per process, are not counted as the memory of attention.
    small = [x[:, :, :128].detach().requires_grad_() for x in (q, k, v)]
    torch.autograd.grad(fn(*small), small, grad[:, :, :128])
    _, peak = peak_rss_delta(call)
    return {"peak_bytes": peak}


def child_main(argv: list[str] | None = None) -> None:
    """Entry point of the subprocess: ``METHOD PASSES T HEADS HEAD_DIM SEED`` → one JSON line."""
    method, passes, *sizes = sys.argv[1:] if argv is None else argv
    if method not in METHODS or passes not in PASSES or len(sizes) != 4:
        raise SystemExit(f"expected METHOD PASSES T HEADS HEAD_DIM SEED, got {method} {passes}")
    print(json.dumps(measure_point(method, passes, *(int(x) for x in sizes))))


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


def measure(
    lengths,
    heads: int,
    head_dim: int,
    *,
    methods=METHODS,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[dict]:
    """One row per (pass, method, length), each measured in its own subprocess.

    Rows: ``passes, method, seq, peak_bytes, peak_mib, skipped`` (None, or why the point was
    not run or failed; its peak is then None).
    """
    rows = []
    for passes in PASSES:
        for method in methods:
            for seq in lengths:
                row = {"passes": passes, "method": method, "seq": seq}
                row |= {"peak_bytes": None, "peak_mib": None, "skipped": None}
                rows.append(row)
                if method == "naive":
                    need, available = naive_bytes(passes, seq, heads), available_bytes()
                    if need > NAIVE_SHARE * available:
                        row["skipped"] = (
                            f"needs ~{need / 2**30:.1f} GiB, more than {NAIVE_SHARE:.0%} of the "
                            f"{available / 2**30:.1f} GiB available: not run"
                        )
                        continue
                if progress is not None:
                    progress(f"{passes}, {method}, T = {seq}")
                command = [sys.executable, "-c", CHILD, method, passes, str(seq)]
                command += [str(heads), str(head_dim), str(seed)]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    row["skipped"] = f"failed (exit {done.returncode}): {done.stderr[-200:]}"
                    continue
                row["peak_bytes"] = json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]
                row["peak_mib"] = row["peak_bytes"] / 2**20
    return rows


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
    axes = fig.subplots(1, 2, sharey=True)
    params = result.params
    for ax, passes in zip(axes, PASSES, strict=True):
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
        "lengths": "sequence lengths T (ascending), one subprocess per point",
        "methods": "comma-separated, of naive, sdpa and flash",
        "heads": "attention heads",
        "head_dim": "width of each head",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    lengths: tuple[int, ...] = LENGTHS,
    methods: str = ",".join(METHODS),
    heads: int = 8,
    head_dim: int = 64,
) -> ExperimentResult:
    check_positive_ints("lengths", lengths)
    if len(lengths) < 2 or list(lengths) != sorted(set(lengths)):
        raise ValueError(f"lengths: expected two or more increasing lengths, got {lengths}")
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    if not chosen or any(m not in METHODS for m in chosen) or len(set(chosen)) < len(chosen):
        raise ValueError(f"methods: expected some of {', '.join(METHODS)}, got {methods!r}")
    check_positive_ints("heads", (heads,))
    check_positive_ints("head_dim", (head_dim,))
    chosen = [m for m in METHODS if m in chosen]
    rows = measure(lengths, heads, head_dim, methods=chosen, seed=seed, progress=progress)
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summarise(rows))
