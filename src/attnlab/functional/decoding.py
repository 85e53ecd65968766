"""One incremental decoding step of multi-head and multi-query attention, written in einsums.

This is seed 003, problem 4 (after the incremental listings of Shazeer, 2019, "Fast Transformer
Decoding: One Write-Head is All You Need"): each call takes one new token per sequence, projects it,
appends its key and value to the cache and attends over everything cached. The letters follow
the homework: ``b`` batch, ``d`` model width, ``h`` heads, ``n`` cached tokens, ``k`` query/key
width per head (the sheet also writes ``q`` for the query width; they are equal), ``v`` value
width per head. The sheet's logits carry no scale (it can be folded into ``W_q``); here they are
scaled by ``1/√k`` as in :class:`attnlab.nn.MultiHeadAttention`, so a step reproduces the
module's causal output row by row.

Per step, with ``k = v = d/h``:

============  =====================  ================================================
layout        compute                memory read (weights + tokens + cache)
============  =====================  ================================================
MHA           O(b·d² + b·n·d)        O(d² + b·d + b·n·d)    cache ``[b, h, n, k]``
MQA           O(b·d² + b·n·d)        O(d² + b·d + b·n·d/h)  cache ``[b, n, k]``
============  =====================  ================================================

MQA does the same arithmetic but reads an ``h`` times smaller cache, which dominates for long
contexts: the step becomes less memory bound.
"""

from __future__ import annotations

import torch

from .validation import FLOAT_DTYPES

__all__ = ["mha_decode_step", "mqa_decode_step", "weights_from_module"]


def _check_shapes(x, *specs: tuple[str, torch.Tensor, str]) -> dict[str, int]:
    """Check ``x`` ``[b, d]`` and each ``(name, tensor, letters)`` against the sizes seen so far.

    Every letter names one size (``b``, ``d``, ``h``, ``n``, ``k``, ``v``); the first tensor that
    has it fixes it. Returns the sizes by letter.
    """
    sizes: dict[str, int] = {}
    for name, tensor, letters in (("x", x, "bd"), *specs):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {tensor.dtype}")
        if tensor.dtype != x.dtype:
            raise TypeError(f"{name}: expected dtype {x.dtype} like x, got {tensor.dtype}")
        if tensor.device != x.device:
            raise ValueError(f"{name}: expected device {x.device} like x, got {tensor.device}")
        given = tuple(tensor.shape)
        if len(given) != len(letters) or any(
            sizes.get(letter, size) != size for letter, size in zip(letters, given, strict=True)
        ):
            shown = ", ".join(str(sizes.get(letter, letter)) for letter in letters)
            raise ValueError(
                f"{name}: expected shape [{', '.join(letters)}] = ({shown}), got {given}"
            )
        sizes.update(zip(letters, given, strict=True))
    return sizes


def mha_decode_step(
    x: torch.Tensor,
    prev_K: torch.Tensor,
    prev_V: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    W_v: torch.Tensor,
    W_o: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoding step of multi-head attention: every head has its own keys and values.

    Args:
        x: the new token of each sequence, ``[b, d]``.
        prev_K: cached keys ``[b, h, n, k]`` (``n`` may be 0 for the first token).
        prev_V: cached values ``[b, h, n, v]``.
        W_q, W_k: query and key projections ``[h, d, k]``.
        W_v: value projection ``[h, d, v]``.
        W_o: output projection ``[h, v, d]``.

    Returns:
        ``(y, new_K, new_V)``: the output ``[b, d]`` and the caches grown by one token,
        ``[b, h, n + 1, k]`` and ``[b, h, n + 1, v]``.

    Cost per step: compute O(b·d² + b·n·d), memory O(d² + b·d + b·n·d) of which the cache is
    O(b·n·d) (``h·k = d``).
    """
    sizes = _check_shapes(
        x,
        ("W_q", W_q, "hdk"),
        ("W_k", W_k, "hdk"),
        ("W_v", W_v, "hdv"),
        ("W_o", W_o, "hvd"),
        ("prev_K", prev_K, "bhnk"),
        ("prev_V", prev_V, "bhnv"),
    )

    q = torch.einsum("bd,hdk->bhk", x, W_q)
    k = torch.einsum("bd,hdk->bhk", x, W_k)
    v = torch.einsum("bd,hdv->bhv", x, W_v)
    new_K = torch.cat([prev_K, k.unsqueeze(2)], dim=2)  # [b, h, n + 1, k]
    new_V = torch.cat([prev_V, v.unsqueeze(2)], dim=2)  # [b, h, n + 1, v]
    logits = torch.einsum("bhk,bhnk->bhn", q, new_K) * sizes["k"] ** -0.5
    weights = torch.softmax(logits, dim=-1)
    o = torch.einsum("bhn,bhnv->bhv", weights, new_V)
    y = torch.einsum("bhv,hvd->bd", o, W_o)
    return y, new_K, new_V


def mqa_decode_step(
    x: torch.Tensor,
    prev_K: torch.Tensor,
    prev_V: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    W_v: torch.Tensor,
    W_o: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoding step of multi-query attention: all heads share one key and one value.

    Args:
        x: the new token of each sequence, ``[b, d]``.
        prev_K: cached keys ``[b, n, k]``, shared by every head (``n`` may be 0).
        prev_V: cached values ``[b, n, v]``.
        W_q: query projection ``[h, d, k]`` (queries stay per head).
        W_k: key projection ``[d, k]``.
        W_v: value projection ``[d, v]``.
        W_o: output projection ``[h, v, d]``.

    Returns:
        ``(y, new_K, new_V)``: the output ``[b, d]`` and the caches grown by one token,
        ``[b, n + 1, k]`` and ``[b, n + 1, v]``.

    Cost per step: compute O(b·d² + b·n·d) as for MHA, but memory O(d² + b·d + b·n·d/h): the
    cache is O(b·n·k), ``h`` times smaller.
    """
    sizes = _check_shapes(
        x,
        ("W_q", W_q, "hdk"),
        ("W_k", W_k, "dk"),
        ("W_v", W_v, "dv"),
        ("W_o", W_o, "hvd"),
        ("prev_K", prev_K, "bnk"),
        ("prev_V", prev_V, "bnv"),
    )

    q = torch.einsum("bd,hdk->bhk", x, W_q)
    k = torch.einsum("bd,dk->bk", x, W_k)
    v = torch.einsum("bd,dv->bv", x, W_v)
    new_K = torch.cat([prev_K, k.unsqueeze(1)], dim=1)  # [b, n + 1, k]
    new_V = torch.cat([prev_V, v.unsqueeze(1)], dim=1)  # [b, n + 1, v]
    logits = torch.einsum("bhk,bnk->bhn", q, new_K) * sizes["k"] ** -0.5
    weights = torch.softmax(logits, dim=-1)
    o = torch.einsum("bhn,bnv->bhv", weights, new_V)
    y = torch.einsum("bhv,hvd->bd", o, W_o)
    return y, new_K, new_V


_MODULE_ATTRIBUTES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "out_proj",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "value_head_dim",
    "d_model",
    "d_context",
    "positions",
)


def weights_from_module(mha) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_q, W_k, W_v, W_o)`` of an :class:`attnlab.nn.MultiHeadAttention` in einsum layouts.

    ``nn.Linear`` stores ``weight`` as ``(out, in)`` and computes ``x @ weight.T``; the
    projections' head features are head-major (head ``i`` owns features
    ``i·head_dim:(i+1)·head_dim``), so ``W_q[i, :, j] = q_proj.weight[i·head_dim + j, :]``.

    The module must be self-attention without biases or positions (the decoding step has
    neither). With ``n_kv_heads == n_heads`` the layouts are those of :func:`mha_decode_step`
    (``[h, d, k]``, ``[h, d, k]``, ``[h, d, v]``, ``[h, v, d]``); with ``n_kv_heads == 1``
    those of :func:`mqa_decode_step` (``W_k`` ``[d, k]``, ``W_v`` ``[d, v]``); a one-head
    module gets the MHA layout. The tensors are copies that keep the autograd link to the
    module's parameters.
    """
    # Checked by its attributes: functional sits below nn and does not import it.
    missing = [name for name in _MODULE_ATTRIBUTES if not hasattr(mha, name)]
    if missing:
        raise TypeError(
            f"mha: expected an attnlab.nn.MultiHeadAttention, got {type(mha).__name__} "
            f"without {', '.join(missing)}"
        )
    with_bias = [
        name
        for name in ("q_proj", "k_proj", "v_proj", "out_proj")
        if getattr(mha, name).bias is not None
    ]
    if with_bias:
        raise ValueError(
            f"mha: the decoding step has no biases, got a module with biases in "
            f"{', '.join(with_bias)}; build it with bias=False"
        )
    if mha.positions is not None:
        raise ValueError(
            f"mha: the decoding step has no positions, got positions={mha.positions!r}"
        )
    if mha.d_context != mha.d_model:
        raise ValueError(
            f"mha: the decoding step is self-attention, got a cross-attention module with "
            f"d_context={mha.d_context} != d_model={mha.d_model}"
        )
    h, hd, vd, d = mha.n_heads, mha.head_dim, mha.value_head_dim, mha.d_model
    if mha.n_kv_heads not in (h, 1):
        raise ValueError(
            f"mha: expected n_kv_heads equal to n_heads={h} (MHA) or 1 (MQA), got "
            f"n_kv_heads={mha.n_kv_heads} (grouped-query attention has no einsum step here)"
        )

    def per_head(weight: torch.Tensor, width: int) -> torch.Tensor:
        # (heads·width, d) → (heads, d, width)
        return weight.view(-1, width, d).transpose(1, 2).contiguous()

    W_q = per_head(mha.q_proj.weight, hd)  # [h, d, k]
    W_o = mha.out_proj.weight.t().reshape(h, vd, d).contiguous()  # [h, v, d]
    if mha.n_kv_heads == h:
        W_k = per_head(mha.k_proj.weight, hd)  # [h, d, k]
        W_v = per_head(mha.v_proj.weight, vd)  # [h, d, v]
    else:
        W_k = mha.k_proj.weight.t().contiguous()  # [d, k]
        W_v = mha.v_proj.weight.t().contiguous()  # [d, v]
    return W_q, W_k, W_v, W_o
