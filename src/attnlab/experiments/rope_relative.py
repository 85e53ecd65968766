"""RoPE scores depend on the relative position n − m only, in both pairing conventions.

RoPE turns each pair of query and key dims by the angle ``pos·θ_i``: ``q ↦ R_m q`` at position
m, ``k ↦ R_n k`` at position n (Su et al., RoFormer, 2021, eq. 14–16). Rotations compose and
invert by transposition, ``R_mᵀ R_n = R_{n−m}``, so the score

    ⟨R_m q, R_n k⟩ = qᵀ R_mᵀ R_n k = qᵀ R_{n−m} k

is a function of n − m alone (seed 004 exercise 13.27). The experiment takes one random q and
k, rotates them with :func:`attnlab.functional.apply_rope` at positions (m, n) and at the
shifted positions (m + s, n + s), and measures the difference of the two scores; it also checks
the score against ``qᵀ R_{n−m} k`` computed at positions (0, n − m) where n ≥ m. Both layouts of
the pairs are measured: interleaved ``(2i, 2i+1)`` (RoFormer, GPT-J) and split halves
``(i, i + d/2)`` (GPT-NeoX, Llama). The scores themselves vary with n − m, so the equality is
not the trivial one of a constant.
"""

from __future__ import annotations

import torch

from attnlab.functional import apply_rope

from .registry import ExperimentResult, Progress, check_positive, check_positive_ints, register

COLUMNS = ["convention", "m", "n", "n_minus_m", "shift", "score", "shifted_score", "abs_difference"]
CONVENTIONS = {"interleaved": True, "half": False}


def _score(q, k, m: int, n: int, interleaved: bool, base: float) -> float:
    """``⟨R_m q, R_n k⟩`` for one query and one key ``(head_dim,)``, float64."""
    turned_q = apply_rope(q[None, :], offset=m, base=base, interleaved=interleaved)[0]
    turned_k = apply_rope(k[None, :], offset=n, base=base, interleaved=interleaved)[0]
    return float(turned_q @ turned_k)


def _figure(fig, result: ExperimentResult) -> None:
    left, right = fig.subplots(1, 2)
    for convention, marker in (("interleaved", "o"), ("half", "x")):
        rows = [r for r in result.rows if r["convention"] == convention]
        left.plot(
            [r["score"] for r in rows], [r["shifted_score"] for r in rows], marker, label=convention
        )
        right.plot(
            [r["n_minus_m"] for r in rows], [r["score"] for r in rows], marker, label=convention
        )
    low = min(min(r["score"], r["shifted_score"]) for r in result.rows)
    high = max(max(r["score"], r["shifted_score"]) for r in result.rows)
    left.plot([low, high], [low, high], color="grey", lw=1)
    left.set(xlabel="⟨R_m q, R_n k⟩", ylabel="⟨R_{m+s} q, R_{n+s} k⟩", title="shifted = unshifted")
    right.set(xlabel="n − m", ylabel="score", title="the score is a function of n − m")
    left.legend(fontsize=8)
    right.legend(fontsize=8)


@register(
    "rope-relative",
    title="⟨R_m q, R_n k⟩ = ⟨R_{m+s} q, R_{n+s} k⟩: RoPE scores see n − m only",
    question="seed 004 13.27: the RoPE score depends only on the relative position n − m",
    description="RoPE scores at (m, n) and (m+s, n+s) are equal, interleaved and half layouts",
    help={
        "head_dim": "width of q and k (even)",
        "start": "position m of the query before shifting",
        "distances": "relative positions n − m (n = m + distance must be ≥ 0)",
        "shifts": "shifts s applied to both positions",
        "base": "RoPE frequency base (10000 in RoFormer)",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    head_dim: int = 8,
    start: int = 10,
    distances: tuple[int, ...] = (-7, -1, 0, 1, 3, 25),
    shifts: tuple[int, ...] = (1, 17, 1000),
    base: float = 10000.0,
) -> ExperimentResult:
    check_positive_ints("head_dim", (head_dim,), minimum=2)
    if head_dim % 2:
        raise ValueError(f"head_dim: expected an even width (dims turn in pairs), got {head_dim}")
    check_positive_ints("start", (start,), minimum=0)
    check_positive_ints("shifts", shifts, minimum=0)
    check_positive("base", base)
    if any(start + d < 0 for d in distances):
        raise ValueError(
            f"distances: expected start + distance ≥ 0 (positions are not negative), got start "
            f"{start} and distances {distances}"
        )
    rng = torch.Generator().manual_seed(seed)
    q = torch.randn(head_dim, generator=rng, dtype=torch.float64)
    k = torch.randn(head_dim, generator=rng, dtype=torch.float64)
    rows, against_origin = [], 0.0
    for convention, interleaved in CONVENTIONS.items():
        progress(convention)
        for distance in distances:
            m, n = start, start + distance
            score = _score(q, k, m, n, interleaved, base)
            if distance >= 0:  # qᵀ R_{n−m} k: the query unrotated, the key at n − m
                origin = _score(q, k, 0, distance, interleaved, base)
                against_origin = max(against_origin, abs(score - origin))
            for shift in shifts:
                shifted = _score(q, k, m + shift, n + shift, interleaved, base)
                rows.append(
                    {
                        "convention": convention,
                        "m": m,
                        "n": n,
                        "n_minus_m": distance,
                        "shift": shift,
                        "score": score,
                        "shifted_score": shifted,
                        "abs_difference": abs(score - shifted),
                    }
                )
    scores = [r["score"] for r in rows if r["shift"] == shifts[0]]
    summary = {
        "max_abs_difference": max(r["abs_difference"] for r in rows),
        "max_abs_difference_interleaved": max(
            r["abs_difference"] for r in rows if r["convention"] == "interleaved"
        ),
        "max_abs_difference_half": max(
            r["abs_difference"] for r in rows if r["convention"] == "half"
        ),
        "max_difference_to_q_R_k": against_origin,
        "score_range_over_distances": max(scores) - min(scores),
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary)
