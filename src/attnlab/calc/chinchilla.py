"""Compute-optimal model size and data (Hoffmann et al., 2022, "Chinchilla").

Two answers for a compute budget ``C`` (FLOPs), both under ``C = 6·N·D``:

* the rule of thumb, about 20 training tokens per parameter: ``D = 20·N``, hence
  ``N = sqrt(C / 120)``;
* the minimum of the paper's parametric loss fit (section 3.3, Approach 3)
  ``L(N, D) = E + A / N^α + B / D^β`` with ``E = 1.69, A = 406.4, B = 410.7, α = 0.34,
  β = 0.28``. Setting ``dL/dN = 0`` along ``D = C/(6N)`` gives ``α·A/N^α = β·B/D^β``, so
  ``N_opt = G·(C/6)^(β/(α+β))`` and ``D_opt = G⁻¹·(C/6)^(α/(α+β))`` with
  ``G = (α·A / (β·B))^(1/(α+β))``, the paper's efficient frontier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .figures import Figures, check_positive_number, figure

# Hoffmann et al. (2022), section 3.3: the fitted constants of L(N, D).
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
TOKENS_PER_PARAM = 20.0


def hoffmann_loss(params: float, tokens: float) -> float:
    """``L(N, D) = E + A/N^α + B/D^β``: the fitted pretraining loss (nats per token)."""
    n = check_positive_number("params", params)
    d = check_positive_number("tokens", tokens)
    return E + A / n**ALPHA + B / d**BETA


@dataclass(frozen=True)
class ChinchillaOptimum(Figures):
    """Compute-optimal parameters and tokens for a compute budget, by the rule and by the fit."""

    compute: float
    tokens_per_param: float
    optimal_params: float = figure("sqrt(C / (6 · tokens_per_param))  (D = 20·N rule)")
    optimal_tokens: float = figure("tokens_per_param · N")
    loss_at_rule: float = figure("E + A/N^α + B/D^β at the rule's (N, D)", "loss")
    fit_optimal_params: float = figure("G·(C/6)^(β/(α+β)), G = (αA/(βB))^(1/(α+β))")
    fit_optimal_tokens: float = figure("(C/6)^(α/(α+β)) / G")
    fit_tokens_per_param: float = figure("D_opt / N_opt", "ratio")
    loss_at_fit: float = figure("E + A/N^α + B/D^β at the fit's minimum", "loss")


def chinchilla(compute: float, tokens_per_param: float = TOKENS_PER_PARAM) -> ChinchillaOptimum:
    """The compute-optimal ``(N, D)`` for ``compute`` FLOPs (exercise 13.18).

    ``chinchilla(1e22)``: the rule gives ``N ≈ 9.13e9`` parameters on ``D ≈ 1.83e11`` tokens;
    the parametric fit prefers a smaller model on more data, ``N ≈ 5.2e9``, ``D ≈ 3.2e11``.
    """
    c = check_positive_number("compute", compute)
    r = check_positive_number("tokens_per_param", tokens_per_param)
    n_rule = math.sqrt(c / (6 * r))
    d_rule = r * n_rule
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    n_fit = g * (c / 6) ** (BETA / (ALPHA + BETA))
    d_fit = (c / 6) ** (ALPHA / (ALPHA + BETA)) / g
    return ChinchillaOptimum(
        compute=c,
        tokens_per_param=r,
        optimal_params=n_rule,
        optimal_tokens=d_rule,
        loss_at_rule=hoffmann_loss(n_rule, d_rule),
        fit_optimal_params=n_fit,
        fit_optimal_tokens=d_fit,
        fit_tokens_per_param=d_fit / n_fit,
        loss_at_fit=hoffmann_loss(n_fit, d_fit),
    )
