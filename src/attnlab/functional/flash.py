"""Tiled exact attention (FlashAttention-2) in PyTorch: forward and backward in O(seq) memory.

Dao (2023), "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning".
The result equals :func:`attnlab.functional.scaled_dot_product_attention` up to rounding, but
the ``(seq_q, seq_k)`` scores and weights are never held whole: only one
``(block_q, block_k)`` tile per (batch, head) at a time. The forward pass saves the output and
the log-sum-exp of each query's scores, nothing quadratic; the backward pass rebuilds each tile
of weights from them.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from .masks import ALIGNMENTS
from .validation import check_length, check_qkv, check_scale

# Chosen by measurement (benchmarks/flash_attention.py --sweep-blocks, BENCHMARKS.md): larger
# tiles mean fewer, more efficient matmul calls; a tile of 8 heads × 1024 × 256 float32 is 8 MiB,
# and 4× larger tiles lost more than they gained at T = 1024, where their 32 MiB buffer is
# faulted in afresh on every call.
BLOCK_Q = 1024
BLOCK_K = 256

# A tile is exponentiated against the running offset m of earlier tiles without first taking
# its own row maximum, a variant of the conditional rescaling of FlashAttention-4: one pass over
# the tile instead of three (max, subtract, exp). Its row sums bound its largest weight, so a
# tile whose sums stay below e^20 cannot overflow the accumulators; a larger one is redone with
# its exact maximum. Scores whose largest values come in the first block of keys (random
# scores; a model's attention sink at the first token) never trigger the redo.
RESCALE_LIMIT = math.exp(20.0)


def _with_column(x: torch.Tensor, fill: torch.Tensor | float) -> torch.Tensor:
    """``[x, fill]``: append one column, so that a matmul adds or subtracts a per-row term."""
    out = torch.empty((*x.shape[:-1], x.shape[-1] + 1), dtype=x.dtype, device=x.device)
    out[..., :-1] = x
    out[..., -1] = fill
    return out


def _block_mask(rows: int, cols: int, diagonal: int, device) -> torch.Tensor:
    """``(rows, cols)`` bool, True where key c is hidden from query r: ``c > r + diagonal``."""
    r = torch.arange(rows, device=device)[:, None]
    c = torch.arange(cols, device=device)[None, :]
    return c > r + diagonal


def _forward(q, k, v, offset, scale, block_q, block_k):
    """Algorithm 1 of the paper, vectorised over batch and heads.

    Args:
        q: ``(n, groups, seq_q, head_dim)`` where ``n`` is batch × key/value heads and the
            ``groups`` query heads share one key/value head.
        k: ``(n, seq_k, head_dim)``; v: ``(n, seq_k, d_value)``.
        offset: ``None`` for no mask, else query i sees keys ``j ≤ i + offset``.

    Returns:
        ``out`` ``(n, groups, seq_q, d_value)`` and ``lse`` ``(n, groups, seq_q)`` (−inf where a
        query sees no key).
    """
    n, groups, seq_q, head_dim = q.shape
    seq_k, d_value = k.shape[-2], v.shape[-1]
    out = q.new_zeros(n, groups, seq_q, d_value)
    lse = q.new_full((n, groups, seq_q), -math.inf)
    # The extra key column of ones lets the score matmul subtract the running offset m stored in
    # the query's extra column, so S − m costs no pass over the tile. (An extra value column of
    # ones would give rowsum(P) from the P·V matmul too, but a 65-wide output slows that matmul
    # by more than a separate sum costs.)
    k_aug = _with_column(k, 1.0)  # (n, seq_k, head_dim + 1)
    storage = q.new_empty(n * groups * min(block_q, seq_q) * min(block_k, seq_k))
    for i0 in range(0, seq_q, block_q):  # line 3
        rows = min(block_q, seq_q - i0)
        stop = seq_k if offset is None else max(0, min(seq_k, i0 + rows + offset))
        if stop == 0:
            continue  # every query of the block sees no key: output 0, lse −inf
        qi = q[:, :, i0 : i0 + rows].reshape(n, groups * rows, head_dim)  # (n, G·rows, d)
        qi = _with_column(qi * scale, 0.0)  # extra column: −m, the running offset
        acc = ell = None  # Õ (n, G·rows, d_value) and ℓ (n, G·rows)
        for j0 in range(0, stop, block_k):  # line 6; keys from `stop` on are all masked
            cols = min(block_k, stop - j0)
            kj, vj = k_aug[:, j0 : j0 + cols], v[:, j0 : j0 + cols]
            mask = None
            if offset is not None and j0 + cols - 1 > i0 + offset:  # a diagonal block
                mask = _block_mask(rows, cols, i0 + offset - j0, q.device)
            if acc is not None:
                tile = _scores(qi, kj, mask, groups, rows, storage).exp_()  # P̃ = exp(S − m)
                part = tile.sum(dim=-1)  # rowsum(P̃), (n, G·rows)
                if not bool((part > RESCALE_LIMIT).any()):
                    ell += part  # m unchanged, so e^(m_old − m_new) = 1
                    acc.baddbmm_(tile, vj)  # line 10
                    continue
            tile = _scores(qi, kj, mask, groups, rows, storage)  # line 8: S − m_old
            acc, ell = _exact_step(tile, qi, vj, acc, ell)
        filled = ell > 0  # False only for a query that may attend to nothing
        ell = torch.where(filled, ell, 1.0)
        o = acc / ell[..., None]  # line 12
        l_i = torch.where(filled, ell.log() - qi[..., -1], -math.inf)  # line 13: m + log ℓ
        out[:, :, i0 : i0 + rows] = o.view(n, groups, rows, d_value)
        lse[:, :, i0 : i0 + rows] = l_i.view(n, groups, rows)
    return out, lse


def _scores(qi, kj, mask, groups, rows, storage):
    """``qi·kjᵀ`` with masked keys at −inf, written into ``storage``.

    Every tile of a call reuses one flat buffer: a fresh 4 MiB tensor per tile is returned to
    the system when freed and costs ~1000 page faults when touched again, which measured 1.4×
    the time of the whole forward pass at T = 1024.
    """
    n, cols = qi.shape[0], kj.shape[1]
    tile = storage[: n * qi.shape[1] * cols].view(n, qi.shape[1], cols)  # (n, G·rows, cols)
    torch.bmm(qi, kj.transpose(1, 2), out=tile)
    if mask is not None:
        tile.view(n, groups, rows, cols).masked_fill_(mask, -math.inf)
    return tile


def _exact_step(tile, qi, vj, acc, ell):
    """Lines 9–10 with the tile's own row maximum; moves the offset in ``qi[..., -1]``."""
    shift = tile.amax(dim=-1)  # rowmax(S) − m_old
    # First block: m_old is a placeholder 0, so take the block maximum as it is (0 for a row
    # that sees nothing yet). Later blocks: m only grows, old sums are rescaled by ≤ 1.
    first = acc is None
    shift = torch.where(torch.isneginf(shift), 0.0, shift) if first else shift.clamp(min=0.0)
    tile.sub_(shift[..., None]).exp_()
    qi[..., -1] -= shift  # m_new = m_old + shift
    if first:
        return torch.bmm(tile, vj), tile.sum(dim=-1)
    correction = torch.exp(-shift)  # e^(m_old − m_new), (n, G·rows)
    ell.mul_(correction).add_(tile.sum(dim=-1))  # line 9
    acc.mul_(correction[..., None]).baddbmm_(tile, vj)  # line 10
    return acc, ell


def _backward(q, k, v, out, lse, grad_out, offset, scale, block_q, block_k):
    """Algorithm 2 of the paper, vectorised over batch and heads; shapes as in :func:`_forward`.

    Returns ``(dq, dk, dv)`` shaped like ``(q, k, v)``.
    """
    n, groups, seq_q, head_dim = q.shape
    seq_k, d_value = k.shape[-2], v.shape[-1]
    delta = (grad_out * out).sum(dim=-1)  # line 4: D = rowsum(dO ∘ O), (n, G, seq_q)
    # A query that sees no key has lse = −inf, but its row of every tile it meets is masked, so
    # any finite stand-in gives P = 0 there.
    lse = torch.where(torch.isneginf(lse), 0.0, lse)
    k_aug = _with_column(k, 1.0)  # (n, seq_k, d + 1): scores minus the query's column
    v_aug = _with_column(v, -1.0)  # (n, seq_k, d_value + 1): dO·Vᵀ minus the query's D
    k_scaled = k * scale  # (n, seq_k, d): folds the scale of dQ = s·dS·K into K once
    # Per block of queries: [s·Q, −L] for the scores, [dO, D] for dP − D, and (s·Q)ᵀ, dOᵀ
    # stored transposed, because dKᵀ += (s·Q)ᵀ dS and dVᵀ += dOᵀ P run faster on this machine
    # than dK += dSᵀ (s·Q) and dV += Pᵀ dO, whose first operand is a transposed tile.
    q_blocks, do_blocks, qt_blocks, dot_blocks, dq_blocks = [], [], [], [], []
    for i0 in range(0, seq_q, block_q):
        rows = min(block_q, seq_q - i0)
        part = slice(i0, i0 + rows)
        qi = q[:, :, part].reshape(n, groups * rows, head_dim) * scale  # (n, G·rows, d)
        doi = grad_out[:, :, part].reshape(n, groups * rows, d_value)  # (n, G·rows, d_value)
        q_blocks.append(_with_column(qi, -lse[:, :, part].reshape(n, -1)))
        do_blocks.append(_with_column(doi, delta[:, :, part].reshape(n, -1)))
        qt_blocks.append(qi.transpose(1, 2).contiguous())  # (n, d, G·rows)
        dot_blocks.append(doi.transpose(1, 2).contiguous())  # (n, d_value, G·rows)
        dq_blocks.append(q.new_zeros(n, groups * rows, head_dim))  # line 3
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    tile_size = n * groups * min(block_q, seq_q) * min(block_k, seq_k)
    p_storage, ds_storage = q.new_empty(tile_size), q.new_empty(tile_size)
    for j0 in range(0, seq_k, block_k):  # line 5
        cols = min(block_k, seq_k - j0)
        kj, vj = k_aug[:, j0 : j0 + cols], v_aug[:, j0 : j0 + cols]
        kj_scaled = k_scaled[:, j0 : j0 + cols]
        dkj_t = q.new_zeros(n, head_dim, cols)  # line 7, transposed: (n, d, cols)
        dvj_t = q.new_zeros(n, d_value, cols)
        for i, i0 in enumerate(range(0, seq_q, block_q)):  # line 8
            rows = min(block_q, seq_q - i0)
            mask = None
            if offset is not None:
                if j0 > i0 + rows - 1 + offset:
                    continue  # every key of the block is hidden from every query of it
                if j0 + cols - 1 > i0 + offset:
                    mask = _block_mask(rows, cols, i0 + offset - j0, q.device)
            p = _scores(q_blocks[i], kj, mask, groups, rows, p_storage).exp_()  # lines 10–11
            dvj_t.baddbmm_(dot_blocks[i], p)  # line 12: dVᵀ += dOᵀ P
            ds = _scores(do_blocks[i], vj, None, groups, rows, ds_storage)  # line 13: dP − D
            ds.mul_(p)  # line 14: dS = P ∘ (dP − D)
            dq_blocks[i].baddbmm_(ds, kj_scaled)  # line 15: dQ += s·dS K
            dkj_t.baddbmm_(qt_blocks[i], ds)  # line 16: dKᵀ += s·Qᵀ dS
        dk[:, j0 : j0 + cols] = dkj_t.transpose(1, 2)  # line 18
        dv[:, j0 : j0 + cols] = dvj_t.transpose(1, 2)
    dq = torch.cat([d.view(n, groups, -1, head_dim) for d in dq_blocks], dim=2)
    return dq, dk, dv


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are computed in float32: the running sums and the accumulators would
    # otherwise lose the low bits of every tile they add.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _canonical(query, key, value):
    """``q (n, G, seq_q, d)``, ``k (n, seq_k, d)``, ``v (n, seq_k, d_value)`` to compute with."""
    dtype = _compute_dtype(query.dtype)
    heads = query.shape[-3] if query.dim() >= 3 else 1
    kv_heads = key.shape[-3] if key.dim() >= 3 else 1
    groups = heads // kv_heads
    # query head h uses key/value head h // groups, so the heads of one group are adjacent
    q = query.to(dtype).reshape(-1, groups, *query.shape[-2:])  # (batch·kv_heads, G, seq_q, d)
    k = key.to(dtype).reshape(-1, *key.shape[-2:])  # (batch·kv_heads, seq_k, d)
    v = value.to(dtype).reshape(-1, *value.shape[-2:])  # (batch·kv_heads, seq_k, d_value)
    return q, k, v


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, key, value, offset, scale, block_q, block_k):
        q, k, v = _canonical(query, key, value)
        out, lse = _forward(q, k, v, offset, scale, block_q, block_k)
        output = out.to(query.dtype).view(*query.shape[:-1], value.shape[-1])
        # Only the output and the log-sum-exp (batch · heads · seq_q numbers) beside the inputs.
        lse = lse.view(query.shape[:-1])  # (..., heads, seq_q)
        ctx.save_for_backward(query, key, value, output, lse)
        ctx.options = (offset, scale, block_q, block_k)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        query, key, value, output, lse = ctx.saved_tensors
        q, k, v = _canonical(query, key, value)
        dtype = q.dtype
        out = output.to(dtype).reshape(*q.shape[:-1], -1)  # (n, G, seq_q, d_value)
        grad = grad_output.to(dtype).reshape(out.shape)
        lse = lse.view(out.shape[:-1])  # (n, G, seq_q)
        dq, dk, dv = _backward(q, k, v, out, lse, grad, *ctx.options)
        return (
            dq.to(query.dtype).view(query.shape),
            dk.to(key.dtype).view(key.shape),
            dv.to(value.dtype).view(value.shape),
            None,
            None,
            None,
            None,
        )


def flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    is_causal: bool = False,
    causal_align: str = "top_left",
    scale: float | None = None,
    block_q: int = BLOCK_Q,
    block_k: int = BLOCK_K,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """Exact ``softmax(query · keyᵀ · scale) · value``, tiled so that memory grows as O(seq).

    Forward, FlashAttention-2 Algorithm 1 (Dao, 2023): for each block of queries, walk over the
    blocks of keys keeping per query a running maximum ``m``, a running sum ``ℓ`` and an
    unnormalised output ``Õ`` (the online softmax); with ``S = s · Q_i K_jᵀ``:

        m_new = max(m, rowmax(S))                          (line 9)
        P̃ = exp(S − m_new),  ℓ = e^(m − m_new) ℓ + rowsum(P̃)   (line 9)
        Õ = e^(m − m_new) Õ + P̃ V_j                        (line 10)
        O = Õ / ℓ,  L = m + log ℓ                           (lines 12–13)

    Only ``O`` and the log-sum-exp ``L`` are saved. Backward, Algorithm 2: for each block of
    keys, rebuild ``P = exp(S − L)`` (line 11) tile by tile and accumulate ``dV += Pᵀ dO``,
    ``dS = P ∘ (dO Vᵀ − D)`` with ``D = rowsum(dO ∘ O)`` (line 4), ``dQ += s · dS K`` and
    ``dK += s · dSᵀ Q`` (lines 12–16). Blocks that the causal mask hides entirely are skipped.

    Args:
        query: ``(..., heads, seq_q, head_dim)``.
        key: ``(..., kv_heads, seq_k, head_dim)``; ``kv_heads == heads`` unless ``enable_gqa``.
        value: ``(..., kv_heads, seq_k, d_value)``.
        is_causal: mask keys after the query's position.
        causal_align: ``"top_left"``: query i sees keys ``j ≤ i`` (torch's ``is_causal``);
            ``"bottom_right"``: ``j ≤ i + seq_k − seq_q`` (new queries after a cache), as
            :func:`attnlab.functional.causal_mask`.
        scale: factor on the scores; default ``1/√head_dim``.
        block_q, block_k: tile size; any positive sizes, they need not divide the lengths.
        enable_gqa: grouped-query attention; query head h uses key/value head
            ``h // (heads // kv_heads)``.

    Returns:
        ``(..., heads, seq_q, d_value)`` in the query's dtype. float16/bfloat16 inputs are
        computed in float32. A query that may attend to nothing (``bottom_right`` with
        ``seq_q > seq_k``) gets zeros and passes zero gradient.
    """
    check_qkv(query, key, value, enable_gqa=enable_gqa)
    check_scale(scale)
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal: expected a bool, got {type(is_causal).__name__}")
    if causal_align not in ALIGNMENTS:
        raise ValueError(f"causal_align: expected one of {ALIGNMENTS}, got {causal_align!r}")
    block_q, block_k = check_length("block_q", block_q), check_length("block_k", block_k)
    seq_q, seq_k = query.shape[-2], key.shape[-2]
    offset = None
    if is_causal:
        offset = 0 if causal_align == "top_left" else seq_k - seq_q
    scale = query.shape[-1] ** -0.5 if scale is None else float(scale)
    return _FlashAttention.apply(query, key, value, offset, scale, block_q, block_k)
