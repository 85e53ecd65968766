"""Softmax saturation without the 1/√d scale: entropy, largest weight and gradient size vs d.

With ``q, k_j ~ N(0, I_d)`` the scores ``s_j = qᵀk_j`` have standard deviation √d (see
``dot-product-variance``). As d grows, the gap between the largest score and the rest grows
like √d, so ``softmax(s)`` tends to the one-hot vector at the argmax (seed 004 exercise 13.28):
its entropy falls to 0 and its largest weight rises to 1. The softmax Jacobian

    J = ∂p/∂s = diag(p) − p pᵀ,   ‖J‖_F² = Σ p_i² − 2 Σ p_i³ + (Σ p_i²)²

vanishes at a one-hot p, so almost no gradient reaches the scores and learning stalls
(seed 000 Ex 3, seed 001 exercise 5.2). Scaling by 1/√d keeps the scores at unit variance and
every one of these figures flat in d. Besides ``‖J‖_F`` from the formula above, the gradient
of a random projection ``uᵀp`` with respect to the scores is taken by autograd, an independent
measurement of the same effect.
"""

from __future__ import annotations

import math

import torch

from .fitting import loglog_slope
from .registry import ExperimentResult, Progress, check_positive_ints, register

COLUMNS = ["d", "scale", "score_std", "entropy", "max_weight", "jacobian_norm", "grad_norm"]


def _jacobian(p: torch.Tensor) -> torch.Tensor:
    """``diag(p) − p pᵀ`` for each row of ``p`` ``(..., keys)`` → ``(..., keys, keys)``."""
    return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]


def _measure(scores: torch.Tensor, u: torch.Tensor) -> dict[str, float]:
    """Figures of ``softmax(scores)`` averaged over trials; ``scores`` is ``(trials, keys)``."""
    scores = scores.detach().requires_grad_()
    p = torch.softmax(scores, dim=-1)
    # Trials are independent, so one backward pass of Σ_trials uᵀp gives every trial's gradient.
    (grad,) = torch.autograd.grad((u * p).sum(), scores)
    p = p.detach()
    log_p = torch.log_softmax(scores.detach(), dim=-1)
    entropy = -(p * log_p).sum(-1)  # p·log p is 0·(finite) where p underflows, never NaN
    # The matrix, not the closed form Σp² − 2Σp³ + (Σp²)²: near one-hot that sum is 1 − 2 + 1
    # and cancels to rounding noise, while the entries of J stay accurate.
    jacobian = torch.linalg.matrix_norm(_jacobian(p))  # Frobenius, (trials,)
    return {
        "score_std": float(scores.detach().std()),
        "entropy": float(entropy.mean()),
        "max_weight": float(p.max(-1).values.mean()),
        "jacobian_norm": float(jacobian.mean()),
        "grad_norm": float(grad.norm(dim=-1).mean()),
    }


def _jacobian_check(scores: torch.Tensor) -> float:
    """Largest entry-wise gap between ``diag(p) − ppᵀ`` and autograd's Jacobian of softmax."""
    worst = 0.0
    for row in scores[:4]:
        full = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, -1), row)
        worst = max(worst, float((full - _jacobian(torch.softmax(row, -1))).abs().max()))
    return worst


def _figure(fig, result: ExperimentResult) -> None:
    left, middle, right = fig.subplots(1, 3)
    for scale, marker in (("1", "o-"), ("1/√d", "s-")):
        rows = [r for r in result.rows if r["scale"] == scale]
        d = [r["d"] for r in rows]
        left.semilogx(d, [r["entropy"] for r in rows], marker, label=f"scale {scale}")
        middle.semilogx(d, [r["max_weight"] for r in rows], marker, label=f"scale {scale}")
        right.loglog(d, [r["grad_norm"] for r in rows], marker, label=f"scale {scale}")
    left.axhline(result.summary["uniform_entropy"], color="grey", lw=1, label="uniform")
    left.set(xlabel="d", ylabel="entropy (nats)", title="entropy of softmax")
    middle.set(xlabel="d", ylabel="largest weight", title="largest weight")
    right.set(xlabel="d", ylabel="‖∂(uᵀp)/∂s‖", title="gradient reaching the scores")
    for ax in (left, middle, right):
        ax.legend(fontsize=8)


@register(
    "softmax-saturation",
    title="softmax(qᵀk) vs softmax(qᵀk/√d): entropy, largest weight, gradient",
    question="seed 000 Ex 3, 004 13.28, 001 5.2: without √d the softmax turns one-hot",
    description="entropy, max weight and gradient norm of softmax over d, scaled and unscaled",
    help={
        "dims": "widths d of queries and keys",
        "keys": "keys per query (the softmax length)",
        "trials": "random (query, keys) draws per d",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    dims: tuple[int, ...] = (4, 16, 64, 256, 1024),
    keys: int = 64,
    trials: int = 200,
) -> ExperimentResult:
    check_positive_ints("dims", dims)
    check_positive_ints("keys", (keys,), minimum=2)
    check_positive_ints("trials", (trials,), minimum=2)
    rng = torch.Generator().manual_seed(seed)
    rows = []
    jacobian_error = 0.0
    for d in dims:
        progress(f"d = {d}")
        q = torch.randn(trials, 1, d, generator=rng, dtype=torch.float64)
        k = torch.randn(trials, keys, d, generator=rng, dtype=torch.float64)
        u = torch.randn(trials, keys, generator=rng, dtype=torch.float64)
        raw = (q @ k.transpose(-2, -1)).squeeze(-2)  # (trials, keys)
        for scale, factor in (("1", 1.0), ("1/√d", d**-0.5)):
            rows.append({"d": d, "scale": scale, **_measure(raw * factor, u)})
            jacobian_error = max(jacobian_error, _jacobian_check(raw * factor))

    def pick(scale: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["scale"] == scale]

    scaled_entropy = pick("1/√d", "entropy")
    summary = {
        "uniform_entropy": math.log(keys),
        "unscaled_entropy_first": pick("1", "entropy")[0],
        "unscaled_entropy_last": pick("1", "entropy")[-1],
        "scaled_entropy_range": max(scaled_entropy) - min(scaled_entropy),
        "unscaled_max_weight_last": pick("1", "max_weight")[-1],
        "unscaled_grad_ratio_last_to_first": pick("1", "grad_norm")[-1] / pick("1", "grad_norm")[0],
        "scaled_grad_ratio_last_to_first": pick("1/√d", "grad_norm")[-1]
        / pick("1/√d", "grad_norm")[0],
        "jacobian_vs_autograd_max_error": jacobian_error,
    }
    if len(set(dims)) > 1 and min(pick("1", "grad_norm")) > 0:
        summary["unscaled_grad_slope"] = loglog_slope(dims, pick("1", "grad_norm"))
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary)
