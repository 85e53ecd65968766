"""Multi-head attention and a Pre-LN Transformer block built on :mod:`attnlab.ref.autograd`
(seed 000 exercise 20): the forward pass is written once, and the gradients of every
parameter come from the autograd, not from a hand-written backward pass.

The parameters are a dict of :class:`~attnlab.ref.autograd.Tensor` named as in the state dict
of :class:`attnlab.nn.MultiHeadAttention` and :class:`attnlab.nn.Block` (``q_proj.weight``,
``attn.q_proj.weight``, ``norm1.weight``, ``ffn.up.weight`` …), so
``parameters(module.state_dict())`` gives the same model, and the tests compare output and
gradients with PyTorch's autograd on that module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .autograd import Tensor, as_tensor, gelu, layer_norm, linear, softmax

MHA_NAMES = tuple(
    f"{p}.{w}" for p in ("q_proj", "k_proj", "v_proj", "out_proj") for w in ("weight", "bias")
)
BLOCK_NAMES = (
    *(f"attn.{n}" for n in MHA_NAMES),
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
    "ffn.up.weight",
    "ffn.up.bias",
    "ffn.down.weight",
    "ffn.down.bias",
)


def _check(params: Mapping[str, Tensor], names: tuple[str, ...], prefix: str = "") -> None:
    missing = [prefix + n for n in names if prefix + n not in params]
    if missing:
        raise ValueError(f"params: missing {', '.join(missing)}")
    for n in names:
        if not isinstance(params[prefix + n], Tensor):
            raise TypeError(f"params[{prefix + n!r}]: expected a Tensor, got "
                            f"{type(params[prefix + n]).__name__}")  # fmt: skip


def multi_head_attention(
    x: Tensor, params: Mapping[str, Tensor], n_heads: int, *, causal: bool = False, prefix=""
) -> Tensor:
    """Multi-head self-attention on ``x`` ``(batch, seq, d_model)`` → same shape.

    ``Q = x W_qᵀ + b_q`` (and K, V alike), split into ``n_heads`` heads of ``d_model / n_heads``
    by a reshape, ``softmax(Q Kᵀ / √d_k + mask) V`` per head, heads merged and projected by
    ``out_proj`` (Vaswani et al., 2017, Section 3.2.2).
    """
    _check(params, MHA_NAMES, prefix)
    x = as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected (batch, seq, d_model), got shape {x.shape}")
    batch, seq, d_model = x.shape
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"n_heads: expected a positive integer, got {n_heads!r}")
    if d_model % n_heads:
        raise ValueError(f"n_heads: expected a divisor of d_model={d_model}, got {n_heads}")
    d_k = d_model // n_heads

    def heads(name: str) -> Tensor:
        projected = linear(x, params[f"{prefix}{name}.weight"], params[f"{prefix}{name}.bias"])
        return projected.reshape(batch, seq, n_heads, d_k).swapaxes(1, 2)  # (B, h, T, d_k)

    q, k, v = heads("q_proj"), heads("k_proj"), heads("v_proj")
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(d_k))  # (B, h, T, T)
    if causal:
        scores = scores.masked_fill(np.triu(np.ones((seq, seq), dtype=bool), k=1), -np.inf)
    out = softmax(scores) @ v  # (B, h, T, d_k)
    merged = out.swapaxes(1, 2).reshape(batch, seq, d_model)
    return linear(merged, params[f"{prefix}out_proj.weight"], params[f"{prefix}out_proj.bias"])


def pre_ln_block(
    x: Tensor, params: Mapping[str, Tensor], n_heads: int, *, causal: bool = True
) -> Tensor:
    """A Pre-LN Transformer block (Xiong et al., 2020): ``x + MHA(LN₁(x))``, then
    ``+ FFN(LN₂(·))`` with ``FFN(h) = GELU(h W_upᵀ + b) W_downᵀ + b``."""
    _check(params, BLOCK_NAMES)
    x = as_tensor(x)
    normed = layer_norm(x, params["norm1.weight"], params["norm1.bias"])
    x = x + multi_head_attention(normed, params, n_heads, causal=causal, prefix="attn.")
    hidden = gelu(linear(layer_norm(x, params["norm2.weight"], params["norm2.bias"]),
                         params["ffn.up.weight"], params["ffn.up.bias"]))  # fmt: skip
    return x + linear(hidden, params["ffn.down.weight"], params["ffn.down.bias"])


__all__ = ["BLOCK_NAMES", "MHA_NAMES", "multi_head_attention", "pre_ln_block"]
