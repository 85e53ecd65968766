"""Peak memory of naive and tiled (flash) attention forward passes as T doubles.

The points run in one child process started with a fixed malloc mmap threshold: glibc
otherwise raises its threshold after each large free and serves the next allocation from memory
it kept resident, which would hide part of the next point's growth. With the threshold fixed,
every large buffer is mapped on allocation and returned on free, so
:func:`attnlab.bench.peak_rss_delta` sees each call's own peak.

    python -m attnlab.lab.memory '{"lengths": [512, 1024], "heads": 8, "head_dim": 64}'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from attnlab.experiments.fitting import loglog_slope

from .figures import Figures, loglog_figure

METHODS = ("naive", "flash")


def measure_points(lengths, heads: int, head_dim: int, seed: int = 0) -> list[dict]:
    """In the child: peak RSS growth (bytes) of one forward of each method at each length,
    and the largest difference between the two outputs."""
    import torch

    from attnlab.bench import peak_rss_delta
    from attnlab.functional.flash import flash_attention

    def naive(q, k, v):
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (1, H, T, T)
        return scores.softmax(dim=-1) @ v

    methods = {"naive": naive, "flash": flash_attention}
    generator = torch.Generator().manual_seed(seed)
    rows = []
    with torch.inference_mode():
        small = [torch.randn(1, heads, 128, head_dim, generator=generator) for _ in range(3)]
        for fn in methods.values():  # thread pools and matmul buffers are not attention's
            fn(*small)
        for seq in lengths:
            q, k, v = (torch.randn(1, heads, seq, head_dim, generator=generator) for _ in range(3))
            outputs = {}
            for name, fn in methods.items():
                outputs[name], peak = peak_rss_delta(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v))
                rows.append({"method": name, "seq": seq, "peak_bytes": peak})
            error = (outputs["naive"] - outputs["flash"]).abs().max().item()
            rows.append({"method": "max_abs_difference", "seq": seq, "value": error})
    return rows


def flash_memory(config, figures: Figures) -> dict:
    """Run :func:`measure_points` in a child process and fit the growth exponents."""
    request = {"lengths": list(config.flash_lengths), "heads": config.flash_heads}
    request["head_dim"] = config.head_dim
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "attnlab.lab.memory", json.dumps(request)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the memory measurement failed: {last}")
    rows = json.loads(done.stdout)
    lengths = list(config.flash_lengths)
    peaks = {
        m: [
            next(r["peak_bytes"] for r in rows if r["method"] == m and r["seq"] == t)
            for t in lengths
        ]
        for m in METHODS
    }
    difference = max(r["value"] for r in rows if r["method"] == "max_abs_difference")
    path = figures.path("flash-memory")
    loglog_figure(
        {m: (lengths, [p / 2**20 for p in peaks[m]]) for m in METHODS},
        path,
        xlabel="sequence length T",
        ylabel="peak memory of one forward (MiB)",
        title=f"naive vs tiled attention, {config.flash_heads} heads × head_dim {config.head_dim}",
    )
    exponents = {
        m: loglog_slope(lengths, peaks[m]) if all(p > 0 for p in peaks[m]) else None
        for m in METHODS
    }
    return {
        "available": True,
        "heads": config.flash_heads,
        "head_dim": config.head_dim,
        "lengths": lengths,
        "peak_mib": {m: [p / 2**20 for p in peaks[m]] for m in METHODS},
        "naive_exponent": exponents["naive"],
        "flash_exponent": exponents["flash"],
        "longest": lengths[-1],
        "naive_mib_longest": peaks["naive"][-1] / 2**20,
        "flash_mib_longest": peaks["flash"][-1] / 2**20,
        "saving_longest": peaks["naive"][-1] / max(peaks["flash"][-1], 1),
        "max_abs_difference": difference,
        "figure": figures.relative(path.stem),
    }


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    print(json.dumps(measure_points(request["lengths"], request["heads"], request["head_dim"])))
