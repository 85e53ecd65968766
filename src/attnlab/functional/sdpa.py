"""Scaled dot-product attention with the semantics of
``torch.nn.functional.scaled_dot_product_attention``, plus the weights when asked for.

Two paths compute the same function. When the weights are not needed, the call goes to torch's
fused kernel, so attnlab costs nothing extra. Otherwise the explicit path below materialises
the ``(seq_q, seq_k)`` scores and weights: that path is the one to read, and it is what the
``"naive"`` backend of the modules runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .masks import causal_mask
from .validation import check_mask, check_probability, check_qkv, check_scale


def _validate(query, key, value, attn_mask, is_causal, scale, enable_gqa) -> None:
    check_qkv(query, key, value, enable_gqa=enable_gqa)
    check_scale(scale)
    if attn_mask is not None:
        if is_causal:
            raise ValueError(
                "attn_mask: expected None when is_causal=True (as in torch); to combine a "
                "causal mask with another, pass causal_mask(...) & other_mask as attn_mask"
            )
        check_mask(attn_mask, query, key)


def _expand_kv_heads(x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Repeat key/value heads so that query head h uses key/value head ``h // group``."""
    if x.dim() < 3 or x.shape[-3] == query.shape[-3]:
        return x
    return x.repeat_interleave(query.shape[-3] // x.shape[-3], dim=-3)


def _scores(query, key, attn_mask, is_causal, scale, enable_gqa) -> torch.Tensor:
    if enable_gqa:
        key = _expand_kv_heads(key, query)
    if scale is None:
        scale = query.shape[-1] ** -0.5
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., heads, seq_q, seq_k)
    if is_causal:
        attn_mask = causal_mask(query.shape[-2], key.shape[-2], device=query.device)
    if attn_mask is None:
        return scores
    if attn_mask.dtype == torch.bool:
        return scores.masked_fill(~attn_mask, float("-inf"))
    return scores + attn_mask


def attention_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """The pre-softmax scores ``query · keyᵀ · scale + mask``, shape ``(..., heads, seq_q, seq_k)``.

    Positions a query may not attend to hold −inf. Arguments as in
    :func:`scaled_dot_product_attention`.
    """
    _validate(query, key, key, attn_mask, is_causal, scale, enable_gqa)
    return _scores(query, key, attn_mask, is_causal, scale, enable_gqa)


def masked_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim in which a row that is −inf everywhere gives zeros.

    The plain softmax of such a row is 0/0 = NaN, and NaN would also leak into the gradients.
    Those rows are set to 0 before the softmax and their weights to 0 after it, so both the
    weights and the gradients flowing back through them are exactly zero.
    """
    empty = torch.isneginf(scores).all(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1)
    return weights.masked_fill(empty, 0.0)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    return_weights: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax(query · keyᵀ · scale + mask) · value`` (Vaswani et al., 2017, eq. 1).

    Args:
        query: ``(..., heads, seq_q, head_dim)``.
        key: ``(..., kv_heads, seq_k, head_dim)``; ``kv_heads == heads`` unless ``enable_gqa``.
        value: ``(..., kv_heads, seq_k, d_value)``.
        attn_mask: bool (True = may attend) or a float mask of the query's dtype that is added
            to the scores; any shape that broadcasts to ``(..., heads, seq_q, seq_k)``.
        dropout_p: probability of dropping an attention weight (applied whenever > 0, as in
            torch; pass 0 at evaluation). Kept weights are scaled by ``1/(1 − p)``.
        is_causal: query i attends to keys ``j ≤ i`` (top-left alignment, as torch). For the
            bottom-right alignment that decoding with a cache needs, pass
            ``causal_mask(seq_q, seq_k, align="bottom_right")`` as ``attn_mask`` instead.
        scale: factor on the scores; default ``1/√head_dim``.
        enable_gqa: grouped-query attention; query head h uses key/value head
            ``h // (heads // kv_heads)``.
        return_weights: also return the ``(..., heads, seq_q, seq_k)`` weights actually applied
            to the values (after dropout). Computed on the explicit path.
        generator: random source for dropout, for reproducible runs (explicit path).

    Returns:
        ``(..., heads, seq_q, d_value)``, or ``(output, weights)`` with ``return_weights``.

    A query row that may attend to nothing gets an output of zeros and passes zero gradient,
    never NaN. Inputs are checked at the boundary: integer or non-finite tensors, mismatched
    dims, mask shapes that do not broadcast and head counts that do not divide raise
    ``TypeError``/``ValueError`` naming the argument.
    """
    _validate(query, key, value, attn_mask, is_causal, scale, enable_gqa)
    dropout_p = check_probability("dropout_p", dropout_p)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    return attend(
        query,
        key,
        value,
        attn_mask,
        dropout_p,
        is_causal,
        scale,
        enable_gqa,
        return_weights=return_weights,
        generator=generator,
    )


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    return_weights: bool = False,
    generator: torch.Generator | None = None,
):
    """:func:`scaled_dot_product_attention` without the boundary checks.

    For callers inside attnlab whose inputs are already known to be well formed (the modules
    compute query, key and value themselves); users call the checked function.
    """
    if not return_weights and (dropout_p == 0.0 or generator is None):
        return F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attn_mask,
            dropout_p=dropout_p,
            is_causal=is_causal,
            scale=scale,
            enable_gqa=enable_gqa,
        )

    weights = masked_softmax(_scores(query, key, attn_mask, is_causal, scale, enable_gqa))
    if dropout_p > 0.0:
        keep = (
            torch.rand(
                weights.shape, generator=generator, dtype=weights.dtype, device=weights.device
            )
            >= dropout_p
        )
        weights = weights * keep / (1.0 - dropout_p)
    if enable_gqa:
        value = _expand_kv_heads(value, query)
    output = weights @ value  # (..., heads, seq_q, d_value)
    return (output, weights) if return_weights else output


def argmax_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    enable_gqa: bool = False,
    *,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Hard attention: each query returns the value of its highest-scoring key.

    The weights are one-hot at ``argmax_j (query · key_j + mask)``; the scale is irrelevant
    (a positive factor does not move the argmax). Ties go to the lowest key index. A query
    that may attend to nothing gets zeros. The output is differentiable only with respect to
    ``value``: no gradient reaches the query or the key, which is why trained models use the
    softmax (seed 003 problem 2). Arguments as in :func:`scaled_dot_product_attention`.
    """
    _validate(query, key, value, attn_mask, is_causal, None, enable_gqa)
    with torch.no_grad():
        scores = _scores(query, key, attn_mask, is_causal, 1.0, enable_gqa)
        empty = torch.isneginf(scores).all(dim=-1, keepdim=True)
        index = scores.argmax(dim=-1)  # ties: the first maximum
        weights = F.one_hot(index, scores.shape[-1]).to(value.dtype)
        weights = weights.masked_fill(empty, 0.0)
    if enable_gqa:
        value = _expand_kv_heads(value, query)
    output = weights @ value
    return (output, weights) if return_weights else output
