"""Hard (argmax) against soft (softmax) lookup: outputs, gradients and the zero-temperature limit.

Argmax attention returns the value of the best-matching key: ``v_{argmax_j qᵀk_j}``. On the
example of seed 003 problem 2 the scores are ``[3, 11, 5, 2]`` and the output is
``v₂ = [1, 4, 3]``. The one-hot weights are a step function of q and K, constant wherever they
are defined, so no gradient reaches the query or the keys: autograd finds no path at all
(seed 000 Ex 1, seed 003 P2 b). Only the chosen value receives a gradient. Softmax attention
``softmax(qKᵀ/τ)·V`` is smooth, so q and K receive non-zero gradients, and as the temperature
τ → 0 its weights tend to the one-hot vector and its output to the hard one — with gradients
that vanish in the same limit (the saturation of ``softmax-saturation``).

The loss is ``L = Σ output`` (upstream gradient of ones); gradient norms are Frobenius norms,
reported as 0 where autograd finds no path from L to the tensor.
"""

from __future__ import annotations

import torch

from attnlab.functional import argmax_attention, scaled_dot_product_attention

from .registry import ExperimentResult, Progress, check_positive_ints, register

COLUMNS = [
    "case",
    "method",
    "temperature",
    "weights",
    "output",
    "distance_to_hard",
    "grad_q",
    "grad_k",
    "grad_v",
    "grad_reaches_q_k",
]
SEED_003_P2 = {
    "q": [[1.0, 1.0, 2.0]],
    "k": [[1.0, 2.0, 0.0], [0.0, 3.0, 4.0], [5.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    "v": [[2.0, 0.0, 1.0], [1.0, 4.0, 3.0], [0.0, -1.0, 4.0], [1.0, 0.0, -1.0]],
}


def _lookup(q, k, v, temperature: float | None):
    """Output, weights and the gradient norms of ``Σ output`` w.r.t. q, K and V."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    if temperature is None:
        output, weights = argmax_attention(q, k, v, return_weights=True)
    else:
        output, weights = scaled_dot_product_attention(
            q, k, v, scale=1.0 / temperature, return_weights=True
        )
    grads = torch.autograd.grad(output.sum(), (q, k, v), allow_unused=True)
    norms = [0.0 if g is None else float(g.norm()) for g in grads]
    return output.detach(), weights.detach(), norms, grads[0] is not None and grads[1] is not None


def _case_rows(case: str, q, k, v, temperatures) -> list[dict]:
    hard, hard_weights, norms, connected = _lookup(q, k, v, None)
    rows = [_row(case, "argmax", 0.0, hard_weights, hard, hard, norms, connected)]
    for t in temperatures:
        out, weights, norms, connected = _lookup(q, k, v, t)
        rows.append(_row(case, "softmax", t, weights, out, hard, norms, connected))
    return rows


def _row(case, method, temperature, weights, output, hard, norms, connected) -> dict:
    return {
        "case": case,
        "method": method,
        "temperature": temperature,
        "weights": weights[0].tolist(),
        "output": output[0].tolist(),
        "distance_to_hard": float((output - hard).abs().max()),
        "grad_q": norms[0],
        "grad_k": norms[1],
        "grad_v": norms[2],
        "grad_reaches_q_k": connected,
    }


def _figure(fig, result: ExperimentResult) -> None:
    left, right = fig.subplots(1, 2)
    floor = 1e-17  # an exact 0 cannot sit on a log axis; it is drawn at the floor
    for case in dict.fromkeys(r["case"] for r in result.rows):
        soft = [r for r in result.rows if r["case"] == case and r["method"] == "softmax"]
        t = [r["temperature"] for r in soft]
        left.loglog(t, [max(r["distance_to_hard"], floor) for r in soft], "o-", label=case)
        right.loglog(t, [max(r["grad_q"], floor) for r in soft], "o-", label=case)
    left.set(xlabel="temperature τ", ylabel="max |soft − hard|", title="softmax → argmax as τ → 0")
    right.set(
        xlabel="temperature τ",
        ylabel="‖∂L/∂q‖ (argmax: 0, no path)",
        title="gradient reaching the query",
    )
    left.legend(fontsize=7)
    right.legend(fontsize=7)


@register(
    "argmax-vs-softmax",
    title="hard (argmax) vs soft (softmax) lookup: outputs and gradients",
    question="seed 000 Ex 1, 003 P2: argmax attention returns v₂ = [1, 4, 3] and has no gradient",
    description="argmax vs softmax attention: outputs, gradients to q and K, temperature → 0",
    help={
        "temperatures": "softmax temperatures τ (scores divided by τ)",
        "random_cases": "random cases besides the seed example",
        "keys": "keys per random case",
        "dim": "width of queries, keys and values in random cases",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    temperatures: tuple[float, ...] = (4.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.01),
    random_cases: int = 3,
    keys: int = 4,
    dim: int = 3,
) -> ExperimentResult:
    if any(not t > 0 for t in temperatures):
        raise ValueError(f"temperatures: expected positive numbers, got {temperatures}")
    check_positive_ints("random_cases", (random_cases,), minimum=0)
    check_positive_ints("keys", (keys,), minimum=2)
    check_positive_ints("dim", (dim,))
    temperatures = tuple(sorted(temperatures, reverse=True))
    example = {name: torch.tensor(x, dtype=torch.float64) for name, x in SEED_003_P2.items()}
    progress("seed 003 problem 2")
    rows = _case_rows("seed 003 P2", example["q"], example["k"], example["v"], temperatures)
    rng = torch.Generator().manual_seed(seed)
    for i in range(random_cases):
        progress(f"random case {i + 1}")
        q, k, v = (torch.randn(n, dim, generator=rng, dtype=torch.float64) for n in (1, keys, keys))
        rows += _case_rows(f"random {i + 1}", q, k, v, temperatures)

    hard = [r for r in rows if r["method"] == "argmax"]
    soft = [r for r in rows if r["method"] == "softmax"]
    warmest = [r for r in soft if r["temperature"] == temperatures[0]]
    coldest = [r for r in soft if r["temperature"] == temperatures[-1]]
    summary = {
        "seed_scores": (example["q"] @ example["k"].T)[0].tolist(),
        "seed_hard_output": hard[0]["output"],
        "hard_grad_q_k_max": max(max(r["grad_q"], r["grad_k"]) for r in hard),
        "hard_grad_v_min": min(r["grad_v"] for r in hard),
        "soft_grad_q_min_warmest": min(r["grad_q"] for r in warmest),
        "soft_grad_k_min_warmest": min(r["grad_k"] for r in warmest),
        "distance_to_hard_max_coldest": max(r["distance_to_hard"] for r in coldest),
        "distance_to_hard_max_warmest": max(r["distance_to_hard"] for r in warmest),
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary)
