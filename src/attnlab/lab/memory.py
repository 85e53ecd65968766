"""The lab's flash-memory section: the ``flash-memory`` experiment
(:mod:`attnlab.experiments.flash_memory`), forward passes of naive and flash attention, all
points in one child process (``isolation="child"``), turned into the report's figure and
numbers."""

from __future__ import annotations

from attnlab.experiments import run_experiment

from .figures import Figures, loglog_figure

METHODS = ("naive", "flash")


def flash_memory(config, figures: Figures) -> dict:
    """Run the experiment at the lab's sizes; the peaks, exponents and output difference."""
    lengths = list(config.flash_lengths)
    result = run_experiment(
        "flash-memory",
        seed=config.seed,
        lengths=lengths,
        methods=",".join(METHODS),
        passes="forward",
        heads=config.flash_heads,
        head_dim=config.head_dim,
        isolation="child",
    )
    failed = next((r for r in result.rows if r["skipped"] is not None), None)
    if failed is not None:
        raise RuntimeError(f"the memory measurement failed: {failed['skipped']}")
    peaks = {m: [r["peak_bytes"] for r in result.rows if r["method"] == m] for m in METHODS}
    path = figures.path("flash-memory")
    loglog_figure(
        {m: (lengths, [p / 2**20 for p in peaks[m]]) for m in METHODS},
        path,
        xlabel="sequence length T",
        ylabel="peak memory of one forward (MiB)",
        title=f"naive vs tiled attention, {config.flash_heads} heads × head_dim {config.head_dim}",
    )
    return {
        "available": True,
        "heads": config.flash_heads,
        "head_dim": config.head_dim,
        "lengths": lengths,
        "peak_mib": {m: [p / 2**20 for p in peaks[m]] for m in METHODS},
        "naive_exponent": result.summary["exponent_naive_forward"],
        "flash_exponent": result.summary["exponent_flash_forward"],
        "longest": lengths[-1],
        "naive_mib_longest": peaks["naive"][-1] / 2**20,
        "flash_mib_longest": peaks["flash"][-1] / 2**20,
        "saving_longest": peaks["naive"][-1] / max(peaks["flash"][-1], 1),
        "max_abs_difference": result.summary["max_abs_diff"],
        "figure": figures.relative(path.stem),
    }
