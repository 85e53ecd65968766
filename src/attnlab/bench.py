"""Measurement helpers for benchmarks and experiments: times, peak memory and the machine line.

A time means little on its own on a small shared CPU machine, so every figure comes with the
ceilings of the machine it was taken on (:func:`machine_line`) and, where there is a baseline,
as a ratio measured in the same process on interleaved runs (:func:`compare`).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name":
                    model = value
                elif key == "flags":  # follows the model name; the first core's block suffices
                    flags = set(value.split())
                    break
    except OSError:
        pass  # not Linux: fall back to what platform knows, without flags
    return model or platform.processor() or "unknown", flags


def _matmul_gflops(n: int) -> float:
    a = torch.randn(n, n, dtype=torch.float32)
    return 2 * n**3 / median_time(lambda: a @ a, repeats=20, warmup=3) / 1e9


def _copy_gbs(mib: int) -> float:
    x = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    y = torch.empty_like(x)  # the warm-up copy faults its pages in, so they are not timed
    return 2 * x.numel() * 4 / median_time(lambda: y.copy_(x), repeats=7, warmup=1) / 1e9


def machine_line(*, matmul_n: int = 1024, copy_mib: int = 256) -> dict[str, Any]:
    """Describe the machine and measure its two ceilings in this process.

    Returns ``cpu`` (model name), ``avx512f`` (bool), ``torch`` (version), ``threads``
    (``torch.get_num_threads()``), ``matmul_gflops`` (fp32 ``a @ a`` on ``matmul_n``² matrices,
    2n³ FLOPs, median of 20 after 3 warm-ups: the compute ceiling) and ``bandwidth_gbs``
    (``y.copy_(x)`` of ``copy_mib`` MiB, counting the bytes read plus the bytes written, median of
    7 after one warm-up: the memory ceiling). Measured, not looked up: a virtual machine's model
    name often says little (``Intel(R) Xeon(R) Processor``), and a shared host gives less than
    the datasheet.
    """
    model, flags = _cpu_model_and_flags()
    with torch.inference_mode():
        gflops, bandwidth = _matmul_gflops(matmul_n), _copy_gbs(copy_mib)
    return {
        "cpu": model,
        "avx512f": "avx512f" in flags,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_gflops": gflops,
        "bandwidth_gbs": bandwidth,
    }


def format_machine_line(d: dict[str, Any]) -> str:
    """One line for the top of a table, e.g. ``cpu: … | avx512f | torch 2.13.0, 2 threads | …``."""
    isa = "avx512f" if d["avx512f"] else "no avx512f"
    return (
        f"cpu: {d['cpu']} | {isa} | torch {d['torch']}, {d['threads']} threads | "
        f"fp32 matmul {d['matmul_gflops']:.0f} GFLOP/s | copy {d['bandwidth_gbs']:.1f} GB/s"
    )


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls.

    The warm-up calls are discarded: the first call allocates and picks kernels. The median,
    not the mean, because load on a shared machine only ever adds time, in bursts.
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    for _ in range(warmup):
        fn()
    return statistics.median(_timed(fn) for _ in range(repeats))


def compare(
    candidate: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    repeats: int = 20,
    warmup: int = 3,
) -> dict[str, float]:
    """Time ``candidate`` against ``baseline``, interleaved: baseline, candidate, baseline, …

    Interleaving makes a burst of load from elsewhere hit both sides alike. Returns
    ``candidate_s`` and ``baseline_s`` (medians, seconds), ``ratio`` (candidate_s / baseline_s)
    and ``pair_ratio`` (the median of candidate/baseline over each adjacent pair, which cancels
    slow drifts that the ratio of medians does not). A ratio above 1 means the candidate is
    slower.
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    for _ in range(warmup):
        baseline()
        candidate()
    base, cand = [], []
    for _ in range(repeats):
        base.append(_timed(baseline))
        cand.append(_timed(candidate))
    candidate_s, baseline_s = statistics.median(cand), statistics.median(base)
    return {
        "candidate_s": candidate_s,
        "baseline_s": baseline_s,
        "ratio": candidate_s / baseline_s,
        "pair_ratio": statistics.median(c / b for c, b in zip(cand, base, strict=True)),
    }


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # "VmHWM:     1620 kB"
    raise RuntimeError(f"/proc/self/status has no {field} line")


def peak_rss_delta(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` and return ``(its result, peak RSS growth in bytes)`` (Linux only).

    The growth is the resident-set high-water mark during the call minus the RSS just before
    it: the most memory the call ever held at once, including temporaries it freed. Writing 5
    to ``/proc/self/clear_refs`` resets the high-water mark, which ``ru_maxrss`` cannot do.
    Memory that ``fn`` allocates but never touches does not count (it is not resident).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
    except OSError as e:
        raise RuntimeError(
            "peak_rss_delta needs Linux /proc (writable /proc/self/clear_refs and "
            f"/proc/self/status): {e}"
        ) from e
    result = fn()
    return result, max(0, _status_kib("VmHWM") - before) * 1024


def load_average() -> tuple[float, float, float]:
    """System load (runnable processes) averaged over the last 1, 5 and 15 minutes.

    Read it before and after a run: a 1-minute figure well above 0 before, or a rise the run's
    own threads do not explain, means the timings shared the CPUs and should be taken again.
    It lags by tens of seconds, so a short burst of load can pass unseen.
    """
    return os.getloadavg()


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (``/proc/stat``)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # minus idle and iowait


def cpu_busy_fraction(seconds: float = 3.0) -> float:
    """Share of all CPUs' time spent busy, by any process, over the next ``seconds``."""
    busy0, total0 = cpu_ticks()
    time.sleep(seconds)
    busy1, total1 = cpu_ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_idle(limit_s: float, max_busy: float = 0.1, sample_s: float = 3.0) -> float:
    """Wait (up to ``limit_s``) until the CPUs were at most ``max_busy`` busy over
    ``sample_s`` seconds; the last reading. Start timings on an idle machine: a busy neighbour
    stalls a 2-thread torch badly."""
    deadline = time.monotonic() + limit_s
    busy = cpu_busy_fraction(sample_s)
    while busy > max_busy and time.monotonic() < deadline:
        busy = cpu_busy_fraction(sample_s)
    return busy


def others_share(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn()``; its result and the share of all CPUs that other processes used meanwhile
    (the machine's busy time minus this process's own user + system time)."""
    hz = os.sysconf("SC_CLK_TCK")
    (busy0, total0), own0 = cpu_ticks(), sum(os.times()[:2])
    result = fn()
    (busy1, total1), own1 = cpu_ticks(), sum(os.times()[:2])
    others = (busy1 - busy0) / hz - (own1 - own0)
    return result, max(0.0, others / max(1e-9, (total1 - total0) / hz))
