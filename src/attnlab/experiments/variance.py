"""Monte Carlo mean and variance of the dot product ``qᵀk`` against its closed form.

For independent ``q, k ~ N(μ, σ²I_d)`` the products ``q_i k_i`` are independent with

    E[q_i k_i]   = E[q_i] E[k_i] = μ²
    E[(q_i k_i)²] = E[q_i²] E[k_i²] = (σ² + μ²)²
    Var(q_i k_i) = (σ² + μ²)² − μ⁴ = σ⁴ + 2μ²σ²

so, summing d independent terms (seed 003 problem 1; seed 004 exercise 13.3),

    E[qᵀk] = d μ²,     Var(qᵀk) = d (σ⁴ + 2μ²σ²)      (μ = 0, σ = 1:  Var = d, seed 000 Ex 2).

The standard deviation grows like √d; dividing by √d gives ``E = √d μ²`` and
``Var = σ⁴ + 2μ²σ²``, independent of d, which is why attention scales its scores by 1/√d.
The measured variance carries a Monte Carlo standard error ``√((m₄ − m₂²)/n)`` (m₂, m₄ the
sample central moments), reported so that a reader can judge how close "close" is.
"""

from __future__ import annotations

import math

import torch

from .fitting import loglog_slope
from .registry import (
    ExperimentResult,
    Progress,
    check_at_least,
    check_positive,
    check_positive_ints,
    register,
)

COLUMNS = [
    "d",
    "scale",
    "mean",
    "mean_theory",
    "mean_se",
    "var",
    "var_theory",
    "var_ratio",
    "var_ratio_se",
]
CHUNK_ELEMENTS = 1 << 21  # q and k are drawn in chunks of this many numbers (16 MiB each)


def _dot_products(d: int, samples: int, mean: float, std: float, rng) -> torch.Tensor:
    """``samples`` independent draws of ``qᵀk`` for ``q, k ~ N(mean, std²I_d)``, float64."""
    out = []
    per_chunk = max(1, CHUNK_ELEMENTS // d)
    for start in range(0, samples, per_chunk):
        n = min(per_chunk, samples - start)
        q = mean + std * torch.randn(n, d, generator=rng, dtype=torch.float64)
        k = mean + std * torch.randn(n, d, generator=rng, dtype=torch.float64)
        out.append((q * k).sum(-1))  # (n,)
    return torch.cat(out)


def _moments(s: torch.Tensor) -> tuple[float, float, float, float]:
    """Mean, its standard error, variance and the variance's standard error."""
    n = s.numel()
    centred = s - s.mean()
    m2 = float(centred.pow(2).mean())
    m4 = float(centred.pow(4).mean())
    var = m2 * n / (n - 1)  # unbiased
    return float(s.mean()), math.sqrt(var / n), var, math.sqrt(max(m4 - m2 * m2, 0.0) / n)


def _figure(fig, result: ExperimentResult) -> None:
    left, right = fig.subplots(1, 2)
    for scale, marker in (("1", "o"), ("1/√d", "s")):
        rows = [r for r in result.rows if r["scale"] == scale]
        d = [r["d"] for r in rows]
        left.loglog(d, [r["var"] for r in rows], marker, label=f"measured, scale {scale}")
        left.loglog(d, [r["var_theory"] for r in rows], "-", color="grey", lw=1)
    left.set(xlabel="d", ylabel="Var(score)", title="variance; grey: d(σ⁴ + 2μ²σ²)")
    left.legend(fontsize=8)
    # Both scales come from the same draws, so their ratios coincide: one series suffices.
    rows = [r for r in result.rows if r["scale"] == "1"]
    right.errorbar(
        [r["d"] for r in rows],
        [r["var_ratio"] for r in rows],
        yerr=[2 * r["var_ratio_se"] for r in rows],
        fmt="o",
        capsize=3,
    )
    right.axhline(1.0, color="grey", lw=1)
    right.set_xscale("log")
    right.set(
        xlabel="d", ylabel="measured / closed form", title="variance ratio ± 2 standard errors"
    )


@register(
    "dot-product-variance",
    title="E and Var of qᵀk against d·μ² and d·(σ⁴ + 2μ²σ²)",
    question="seed 000 Ex 2, 003 P1, 004 13.3: why Var(q·k) = d and why scale by 1/√d",
    description="Monte Carlo mean and variance of q·k for q, k ~ N(μ, σ²I) vs the closed form",
    help={
        "dims": "widths d of q and k",
        "samples": "Monte Carlo draws of (q, k) per d",
        "mean": "μ, the mean of every component",
        "std": "σ, the standard deviation of every component",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    dims: tuple[int, ...] = (4, 16, 64, 256, 1024),
    samples: int = 20000,
    mean: float = 0.0,
    std: float = 1.0,
) -> ExperimentResult:
    check_positive_ints("dims", dims)
    check_at_least("samples", samples, 10)
    check_positive("std", std)
    if not math.isfinite(mean):
        raise ValueError(f"mean: expected a finite number, got {mean!r}")
    rng = torch.Generator().manual_seed(seed)
    per_term = std**4 + 2 * mean**2 * std**2  # Var(q_i k_i)
    rows = []
    for d in dims:
        progress(f"d = {d}")
        s = _dot_products(d, samples, mean, std, rng)
        for scale, factor in (("1", 1.0), ("1/√d", d**-0.5)):
            m, m_se, var, var_se = _moments(s * factor)
            var_theory = d * per_term * factor**2
            rows.append(
                {
                    "d": d,
                    "scale": scale,
                    "mean": m,
                    "mean_theory": d * mean**2 * factor,
                    "mean_se": m_se,
                    "var": var,
                    "var_theory": var_theory,
                    "var_ratio": var / var_theory,
                    "var_ratio_se": var_se / var_theory,
                }
            )
    summary = {
        "max_var_ratio_error": max(abs(r["var_ratio"] - 1) for r in rows),
        "max_var_error_in_se": max(abs(r["var_ratio"] - 1) / r["var_ratio_se"] for r in rows),
        "max_mean_error_in_se": max(abs(r["mean"] - r["mean_theory"]) / r["mean_se"] for r in rows),
    }
    if len(set(dims)) > 1:
        for scale, key in (("1", "unscaled"), ("1/√d", "scaled")):
            chosen = [r for r in rows if r["scale"] == scale]
            summary[f"{key}_var_slope"] = loglog_slope(
                [r["d"] for r in chosen], [r["var"] for r in chosen]
            )
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary)
