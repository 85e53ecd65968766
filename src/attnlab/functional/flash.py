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
import threading

import torch
from torch.autograd.function import once_differentiable

from .masks import ALIGNMENTS
from .validation import check_length, check_qkv, check_scale

# Chosen by measurement (benchmarks/flash_attention.py --sweep-blocks, BENCHMARKS.md). Larger
# tiles mean fewer, more efficient matmul calls: 8 heads × 1024 × 256 float32 is 8 MiB; 4×
# larger tiles lost more than they gained at T = 1024. With a causal mask, blocks on the
# diagonal are computed whole and half thrown away, so smaller query blocks waste less there.
BLOCK_Q, BLOCK_K = 1024, 256
BLOCK_Q_CAUSAL, BLOCK_K_CAUSAL = 256, 256

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


_WORKSPACE = threading.local()
WORKSPACE_LIMIT = 32 * 2**20


def _workspace(numel: int, like: torch.Tensor, slot: int) -> torch.Tensor:
    """A flat buffer of ``numel`` elements for tiles, kept per thread from one call to the next.

    Every tile of a call goes into the same buffer, and the buffer outlives the call: a fresh
    multi-MiB tensor is often mapped anew by the allocator and faulted in page by page (2,000+
    faults per call, ~2 µs each here), which measured up to 1.7× the time of the whole forward
    pass at T = 1024. The buffers (one for the forward pass, two for the backward pass; 8 MiB
    each at the default blocks, 8 heads, float32) stay allocated while the thread lives; one
    larger than ``WORKSPACE_LIMIT`` bytes is allocated per call instead, so that a call with
    many heads or huge blocks does not leave that much memory held.
    """
    if numel * like.element_size() > WORKSPACE_LIMIT:
        return like.new_empty(numel)
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    key = (like.dtype, like.device, slot)
    buffer = buffers.get(key)
    if buffer is None or buffer.numel() < numel:
        with torch.inference_mode(False):  # else later calls with autograd could not write it
            buffer = buffers[key] = torch.empty(numel, dtype=like.dtype, device=like.device)
    return buffer[:numel]


def _block_mask(rows: int, cols: int, diagonal: int, device) -> torch.Tensor:
    """``(rows, cols)`` bool, True where key c is hidden from query r: ``c > r + diagonal``."""
    r = torch.arange(rows, device=device)[:, None]
    c = torch.arange(cols, device=device)[None, :]
    return c > r + diagonal


def _exp_floor(dtype: torch.dtype) -> float:
    """The lowest exponent allowed: −61 in float32, −496 in float64 (0.7 · log of the smallest
    normal number).

    Subnormal numbers cost this CPU 100× the time or more, in exp and in the matmuls: a tile
    of sharp scores took 150× as long. So exponents are clamped to the floor, where e^floor
    times any value above 1e-11 (float32) stays normal. The clamp raises a weight that is below
    e^floor times the row's largest one (e^0 = 1); the output moves by less than
    seq_k · e^floor relative (1e-22 in float32 at seq_k = 16384), far below rounding.
    """
    return 0.7 * math.log(torch.finfo(dtype).tiny)


def _needs_floor(q, k, scale: float, floor: float, slack: float = 0.0) -> bool:
    """Whether some score can fall more than ``−floor`` below a row's offset, so that its
    exponent must be clamped to the floor.

    By Cauchy–Schwarz every score, and so every running maximum m, lies in [−B, B] with
    ``B = max‖q‖ · max‖k‖ · scale``; a log-sum-exp adds at most ``slack = log seq_k``. Random
    inputs stay far inside, and then the clamp, a pass over every tile, is skipped.
    """
    if q.numel() == 0 or k.numel() == 0:
        return False
    bound = float(q.norm(dim=-1).amax()) * float(k.norm(dim=-1).amax()) * scale
    return 2 * bound + slack > -floor - 1.0  # 1.0: room for rounding


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
    out = q.new_empty(n, groups, seq_q, d_value)
    lse = q.new_empty(n, groups, seq_q)
    floor = _exp_floor(q.dtype)
    clamp = _needs_floor(q, k, scale, floor)
    # The extra key column of ones lets the score matmul subtract the running offset m stored in
    # the query's extra column, so S − m costs no pass over the tile. (An extra value column of
    # ones would give rowsum(P) from the P·V matmul too, but a 65-wide output slows that matmul
    # by more than a separate sum costs.)
    k_aug = _with_column(k, 1.0)  # (n, seq_k, head_dim + 1)
    # Buffers allocated once and reused by every block: fresh ones would be faulted in anew.
    rows_max = min(block_q, seq_q)
    storage = _workspace(n * groups * rows_max * min(block_k, seq_k), q, slot=0)
    q_storage = q.new_empty(n * groups * rows_max * (head_dim + 1))
    acc_storage = q.new_empty(n * groups * rows_max * d_value)
    for i0 in range(0, seq_q, block_q):  # line 3
        rows = min(block_q, seq_q - i0)
        stop = seq_k if offset is None else max(0, min(seq_k, i0 + rows + offset))
        if stop == 0:  # every query of the block sees no key
            out[:, :, i0 : i0 + rows] = 0.0
            lse[:, :, i0 : i0 + rows] = -math.inf
            continue
        qi = q_storage[: n * groups * rows * (head_dim + 1)].view(n, groups, rows, head_dim + 1)
        torch.mul(q[:, :, i0 : i0 + rows], scale, out=qi[..., :-1])
        qi[..., -1] = 0.0  # extra column: −m, the running offset
        qi = qi.view(n, groups * rows, head_dim + 1)  # (n, G·rows, d + 1)
        acc = acc_storage[: n * groups * rows * d_value].view(n, groups * rows, d_value)  # Õ
        ell = None  # ℓ, (n, G·rows)
        for j0 in range(0, stop, block_k):  # line 6; keys from `stop` on are all masked
            cols = min(block_k, stop - j0)
            kj, vj = k_aug[:, j0 : j0 + cols], v[:, j0 : j0 + cols]
            mask = None
            if offset is not None and j0 + cols - 1 > i0 + offset:  # a diagonal block
                mask = _block_mask(rows, cols, i0 + offset - j0, q.device)
            if ell is not None:
                tile = _scores(qi, kj, storage)  # line 8: S − m
                if clamp:
                    tile.clamp_min_(floor)
                tile.exp_()  # line 9: P̃ = exp(S − m)
                if mask is not None:  # after exp: exp(−inf) takes a slow path on this CPU
                    _mask_(tile, mask, groups, rows, 0.0)
                part = tile.sum(dim=-1)  # rowsum(P̃), (n, G·rows)
                if not bool((part > RESCALE_LIMIT).any()):
                    ell += part  # m unchanged, so e^(m_old − m_new) = 1
                    acc.baddbmm_(tile, vj)  # line 10
                    continue
            tile = _scores(qi, kj, storage)  # line 8: S − m_old
            ell = _exact_step(tile, qi, vj, acc, ell, mask, groups, rows, floor)
        acc.div_(ell[..., None])  # line 12
        l_i = ell.log_().sub_(qi[..., -1])  # line 13: L = m + log ℓ
        out[:, :, i0 : i0 + rows] = acc.view(n, groups, rows, d_value)
        lse[:, :, i0 : i0 + rows] = l_i.view(n, groups, rows)
    empty = _empty_rows(offset, seq_q)
    out[:, :, :empty] = 0.0  # ℓ = 0 made them 0/0
    lse[:, :, :empty] = -math.inf
    return out, lse


def _empty_rows(offset: int | None, seq_q: int) -> int:
    """How many leading queries see no key: those with ``i + offset < 0``."""
    return 0 if offset is None else min(seq_q, max(0, -offset))


def _scores(qi, kj, storage):
    """``qi·kjᵀ`` written into the flat buffer ``storage``: ``(n, G·rows, cols)``."""
    n, cols = qi.shape[0], kj.shape[1]
    tile = storage[: n * qi.shape[1] * cols].view(n, qi.shape[1], cols)
    return torch.bmm(qi, kj.transpose(1, 2), out=tile)


def _mask_(tile, mask, groups, rows, value):
    """Set the masked keys of every head's ``(rows, cols)`` block of ``tile`` to ``value``."""
    tile.view(tile.shape[0], groups, rows, -1).masked_fill_(mask, value)


def _exact_step(tile, qi, vj, acc, ell, mask, groups, rows, floor):
    """Lines 9–10 with the tile's own row maximum; moves the offset in ``qi[..., -1]``.

    Updates ``acc`` in place (overwrites it when ``ell`` is None: the first block) and
    returns the new ℓ.
    """
    if mask is not None:
        _mask_(tile, mask, groups, rows, -math.inf)  # kept out of the maximum
    shift = tile.amax(dim=-1)  # rowmax(S) − m_old
    # First block: m_old is a placeholder 0, so take the block maximum as it is (0 for a row
    # that sees nothing yet). Later blocks: m only grows, old sums are rescaled by ≤ 1.
    first = ell is None
    shift = torch.where(torch.isneginf(shift), 0.0, shift) if first else shift.clamp(min=0.0)
    tile.sub_(shift[..., None]).clamp_min_(floor).exp_()
    if mask is not None:
        _mask_(tile, mask, groups, rows, 0.0)  # the clamp raised them to e^floor
    qi[..., -1] -= shift  # m_new = m_old + shift
    if first:
        torch.bmm(tile, vj, out=acc)
        return tile.sum(dim=-1)
    correction = torch.exp(-shift)  # e^(m_old − m_new), (n, G·rows)
    acc.mul_(correction[..., None]).baddbmm_(tile, vj)  # line 10
    return ell.mul_(correction).add_(tile.sum(dim=-1))  # line 9


def _backward(q, k, v, out, lse, grad_out, offset, scale, block_q, block_k):
    """Algorithm 2 of the paper, vectorised over batch and heads; shapes as in :func:`_forward`.

    Returns ``(dq, dk, dv)`` shaped like ``(q, k, v)``.
    """
    n, groups, seq_q, head_dim = q.shape
    seq_k, d_value = k.shape[-2], v.shape[-1]
    floor = _exp_floor(q.dtype)
    clamp = _needs_floor(q, k, scale, floor, slack=math.log(max(seq_k, 1)))
    empty = _empty_rows(offset, seq_q)
    if empty:  # a query that sees no key passes no gradient: with dO = 0 there, dS = 0 too
        grad_out = grad_out.clone()
        grad_out[:, :, :empty] = 0.0
    delta = (grad_out * out).sum(dim=-1)  # line 4: D = rowsum(dO ∘ O), (n, G, seq_q)
    lse = torch.where(torch.isneginf(lse), 0.0, lse)  # those queries' L = −inf: any finite value
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
    p_storage, ds_storage = _workspace(tile_size, q, slot=1), _workspace(tile_size, q, slot=2)
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
            p = _scores(q_blocks[i], kj, p_storage)  # line 10: S − L
            if clamp:
                p.clamp_min_(floor)
            p.exp_()  # line 11: P = exp(S − L)
            if mask is not None:
                _mask_(p, mask, groups, rows, 0.0)
            dvj_t.baddbmm_(dot_blocks[i], p)  # line 12: dVᵀ += dOᵀ P
            ds = _scores(do_blocks[i], vj, ds_storage)  # line 13: dP − D
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
    block_q: int | None = None,
    block_k: int | None = None,
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
            Default: 1024 × 256, or 256 × 256 with ``is_causal`` (measured on a 2-core CPU).
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
    if block_q is None:
        block_q = BLOCK_Q_CAUSAL if is_causal else BLOCK_Q
    if block_k is None:
        block_k = BLOCK_K_CAUSAL if is_causal else BLOCK_K
    block_q, block_k = check_length("block_q", block_q), check_length("block_k", block_k)
    seq_q, seq_k = query.shape[-2], key.shape[-2]
    offset = None
    if is_causal:
        offset = 0 if causal_align == "top_left" else seq_k - seq_q
    scale = query.shape[-1] ** -0.5 if scale is None else float(scale)
    return _FlashAttention.apply(query, key, value, offset, scale, block_q, block_k)
