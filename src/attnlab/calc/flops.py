"""Floating-point operations of a decoder-only Transformer: per token, per part, for training.

Convention (Kaplan et al., 2020, Table 1; Hoffmann et al., 2022, Appendix F): a multiply-add
is 2 FLOPs, only matrix products are counted, and a query is compared with every key of a
``context``-long window (what a dense kernel computes; a causal kernel that skips masked
scores does about half the attention work). Norms, softmax, activations and embedding lookups
are left out: ``O(d + h·ctx)`` per token and layer, small next to the ``d²`` and ``d·ctx``
products.
``torch.utils.flop_counter.FlopCounterMode`` counts the same way, which is how this is tested.

Rules of thumb (exercise 13.29): the forward pass costs ``2·N`` per token, one multiply-add per
weight, plus the attention term ``2·L·ctx·d``; the backward pass twice the forward (gradients
for activations and for weights), so training costs ``6·N·D`` for ``D`` tokens; recomputing
activations in backward (checkpointing) adds one more forward: ``8·N·D``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import Architecture
from .figures import Figures, Part, check_positive_int, figure
from .params import count_params

TRAINING_FACTOR = 3  # forward + backward (2 × forward)
CHECKPOINTED_FACTOR = 4  # + one recomputed forward


def training_flops(params: int, tokens: int) -> int:
    """``6·N·D``: training compute of ``N`` parameters on ``D`` tokens (Kaplan et al., 2020)."""
    return 6 * check_positive_int("params", params) * check_positive_int("tokens", tokens)


@dataclass(frozen=True)
class FlopCount(Figures):
    """Forward FLOPs per token (with a per-part breakdown) and training compute."""

    params: int
    tokens: int
    context: int | None
    flops_per_token: int = figure("forward pass, one token: sum of the breakdown", "flops")
    forward_flops: int = figure("flops_per_token · D (inference over D tokens)", "flops")
    training_flops_per_token: int = figure("3 · flops_per_token (backward = 2 × forward)", "flops")
    training_flops: int = figure("3 · flops_per_token · D", "flops")
    training_flops_checkpointed: int = figure(
        "4 · flops_per_token · D (forward recomputed in backward)", "flops"
    )
    rule_flops_per_token: int = figure("2·N + 2·L·ctx·d (Kaplan et al., 2020)", "flops")
    rule_training_flops: int = figure("6·N·D", "flops")
    rule_relative_error: float = figure("(6·N·D − training_flops) / training_flops", "fraction")
    parts: tuple[Part, ...] = ()


def flops(
    architecture: Architecture | None = None, tokens: int = 1, *, context: int | None = None
) -> FlopCount:
    """FLOPs of an :class:`Architecture`, per part of one forward pass per token.

    Args:
        architecture: the model (default GPT-2 small).
        tokens: tokens processed ``D`` (training set size for ``training_flops``).
        context: keys each query attends to (default ``architecture.context``).

    Per token and layer: the query/key/value projections ``2·d·(h + 2·n_kv)·d_head``, the
    scores ``Q·Kᵀ`` ``2·h·d_head·ctx``, the weighted values ``A·V`` ``2·h·d_head·ctx``, the
    output projection ``2·h·d_head·d``, the feed-forward ``2·m·d·d_ff`` (``m`` = 2 for GELU, 3
    for SwiGLU); once per token the unembedding ``2·d·V``.
    """
    a = Architecture() if architecture is None else architecture
    tokens = check_positive_int("tokens", tokens)
    ctx = a.context if context is None else check_positive_int("context", context)
    L, d = a.n_layers, a.d_model
    qkv = 2 * L * d * (a.d_attention + 2 * a.d_kv)
    per_matmul = 2 * L * a.d_attention * ctx  # Q·Kᵀ, and again A·V (values as wide as keys)
    parts = (
        Part("qkv_projections", qkv, "2·L·d·(h + 2·n_kv)·d_head", "flops"),
        Part("attention_scores", per_matmul, "2·L·h·d_head·ctx  (Q·Kᵀ)", "flops"),
        Part("weighted_values", per_matmul, "2·L·h·d_head·ctx  (A·V)", "flops"),
        Part("output_projection", 2 * L * a.d_attention * d, "2·L·h·d_head·d", "flops"),
        Part("ffn", 2 * L * a.ffn_matrices * d * a.d_ff, "2·L·m·d·d_ff, m = 2 or 3", "flops"),
        Part("unembedding", 2 * d * a.vocab_size, "2·d·V", "flops"),
    )
    n = count_params(a).total_params
    return _flop_count(n, tokens, ctx, sum(p.value for p in parts), 2 * L * ctx * d, parts)


def flops_from_params(
    params: int,
    tokens: int = 1,
    *,
    n_layers: int | None = None,
    d_model: int | None = None,
    context: int | None = None,
) -> FlopCount:
    """FLOPs from the parameter count alone: ``2·N`` per token forward, ``6·N·D`` to train.

    With ``n_layers``, ``d_model`` and ``context`` all given the forward pass also gets the
    attention term ``2·L·ctx·d`` (Kaplan et al., 2020, Table 1: ``C_forward = 2N + 2·L·ctx·d``);
    otherwise that term is left out (it is small when ``ctx ≪ 12·d``).
    """
    params = check_positive_int("params", params)
    tokens = check_positive_int("tokens", tokens)
    given = {"n_layers": n_layers, "d_model": d_model, "context": context}
    shape = {k: check_positive_int(k, v) for k, v in given.items() if v is not None}
    attention = 0
    if len(shape) == 3:
        attention = 2 * shape["n_layers"] * shape["context"] * shape["d_model"]
    parts = (
        Part("weights", 2 * params, "2·N (one multiply-add per weight)", "flops"),
        Part("attention", attention, "2·L·ctx·d (0 unless L, d and ctx are given)", "flops"),
    )
    return _flop_count(
        params, tokens, shape.get("context"), 2 * params + attention, attention, parts
    )


def _flop_count(n, tokens, ctx, per_token, attention_term, parts) -> FlopCount:
    training = TRAINING_FACTOR * per_token * tokens
    rule_training = 6 * n * tokens
    return FlopCount(
        params=n,
        tokens=tokens,
        context=ctx,
        flops_per_token=per_token,
        forward_flops=per_token * tokens,
        training_flops_per_token=TRAINING_FACTOR * per_token,
        training_flops=training,
        training_flops_checkpointed=CHECKPOINTED_FACTOR * per_token * tokens,
        rule_flops_per_token=2 * n + attention_term,
        rule_training_flops=rule_training,
        rule_relative_error=(rule_training - training) / training,
        parts=parts,
    )
