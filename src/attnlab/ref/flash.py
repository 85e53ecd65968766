"""FlashAttention-2 in NumPy: exact attention computed block by block, written to be read.

Dao (2023), "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning",
Algorithm 1 (forward) and Algorithm 2 (backward). The (seq_q, seq_k) matrices of scores and
weights are never built whole: the forward pass walks over blocks of keys with a running row
maximum ``m`` and running sum ``ℓ`` (the online softmax) and keeps only the output ``O`` and the
log-sum-exp ``L = m + log ℓ`` of each query; the backward pass rebuilds each block of weights
from ``L`` as ``P = exp(S − L)``.

Arrays are batch-first, ``[..., seq, d]``, as in :mod:`attnlab.ref.attention`. With
``causal=True`` query i may attend to key j when ``j ≤ i + offset``: ``offset = 0`` for
``causal_align="top_left"`` and ``seq_k − seq_q`` for ``"bottom_right"`` (new queries after a
cache of earlier keys). A query that may attend to nothing gets a zero output, ``L = −inf`` and
zero gradient, as in :func:`attnlab.ref.masked_attention`.
"""

from __future__ import annotations

import numpy as np

from .attention import check_qkv
from .backward import _unbroadcast

ALIGNMENTS = ("top_left", "bottom_right")


def _check_options(block_q, block_k, causal_align) -> None:
    for name, size in (("block_q", block_q), ("block_k", block_k)):
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"{name}: expected a positive integer, got {size!r}")
    if causal_align not in ALIGNMENTS:
        raise ValueError(f"causal_align: expected one of {ALIGNMENTS}, got {causal_align!r}")


def _causal_offset(causal: bool, causal_align: str, seq_q: int, seq_k: int) -> int | None:
    """``None`` without a mask, else the offset such that query i sees keys ``j ≤ i + offset``."""
    if not causal:
        return None
    return 0 if causal_align == "top_left" else seq_k - seq_q


def _block_mask(rows: range, cols: range, offset: int | None) -> np.ndarray | None:
    """Boolean ``[len(rows), len(cols)]`` mask of the block, True where a query may attend."""
    if offset is None:
        return None
    return np.asarray(cols)[None, :] <= np.asarray(rows)[:, None] + offset


def flash_attention_forward(
    Q,
    K,
    V,
    *,
    causal: bool = False,
    causal_align: str = "top_left",
    scale: float | None = None,
    block_q: int = 16,
    block_k: int = 16,
):
    """FlashAttention-2 forward pass (Algorithm 1): returns ``(O, L)``.

    Args:
        Q: ``[..., seq_q, d_k]``; K: ``[..., seq_k, d_k]``; V: ``[..., seq_k, d_v]``.
        causal, causal_align: the causal mask and its alignment (see the module docstring).
        scale: factor on the scores, default ``1/√d_k``.
        block_q, block_k: block sizes; they need not divide the lengths.

    Returns:
        ``O`` ``[..., seq_q, d_v]`` (equal to :func:`attnlab.ref.masked_attention`) and the
        log-sum-exp of each query's scores ``L`` ``[..., seq_q]``.
    """
    Q, K, V = check_qkv(Q, K, V)
    _check_options(block_q, block_k, causal_align)
    seq_q, seq_k = Q.shape[-2], K.shape[-2]
    scale = 1.0 / np.sqrt(Q.shape[-1]) if scale is None else scale
    offset = _causal_offset(causal, causal_align, seq_q, seq_k)
    batch = np.broadcast_shapes(Q.shape[:-2], K.shape[:-2])
    dtype = np.result_type(Q, K, V)
    O = np.zeros((*batch, seq_q, V.shape[-1]), dtype=dtype)  # noqa: E741 (the paper's name)
    L = np.full((*batch, seq_q), -np.inf, dtype=dtype)

    for i0 in range(0, seq_q, block_q):  # line 3: one block of queries at a time
        rows = range(i0, min(i0 + block_q, seq_q))
        Qi = Q[..., rows.start : rows.stop, :]  # [..., Br, d_k]
        Oi = np.zeros((*batch, len(rows), V.shape[-1]), dtype=dtype)  # line 5
        li = np.zeros((*batch, len(rows)), dtype=dtype)
        mi = np.full((*batch, len(rows)), -np.inf, dtype=dtype)
        for j0 in range(0, seq_k, block_k):  # line 6
            cols = range(j0, min(j0 + block_k, seq_k))
            mask = _block_mask(rows, cols, offset)
            if mask is not None and not mask.any():
                continue  # a block above the diagonal contributes nothing: skip it whole
            Kj, Vj = K[..., cols.start : cols.stop, :], V[..., cols.start : cols.stop, :]
            S = (Qi @ np.swapaxes(Kj, -1, -2)) * scale  # line 8: [..., Br, Bc]
            if mask is not None:
                S = np.where(mask, S, -np.inf)
            m_new = np.maximum(mi, S.max(axis=-1))  # line 9
            # Rows that have seen only −inf keep a finite stand-in so exp never sees −inf − −inf.
            m_safe = np.where(np.isfinite(m_new), m_new, 0.0)
            P = np.exp(S - m_safe[..., None])  # P̃, unnormalised
            correction = np.exp(mi - m_safe)  # e^(m_old − m_new): rescales the old sums
            li = correction * li + P.sum(axis=-1)  # line 9
            Oi = correction[..., None] * Oi + P @ Vj  # line 10
            mi = m_new
        filled = li > 0  # False only for a query that may attend to nothing
        l_safe = np.where(filled, li, 1.0)
        O[..., rows.start : rows.stop, :] = Oi / l_safe[..., None]  # line 12
        L[..., rows.start : rows.stop] = np.where(filled, mi + np.log(l_safe), -np.inf)  # line 13
    return O, L


def flash_attention_backward(
    Q,
    K,
    V,
    O,  # noqa: E741 (the paper's name)
    L,
    dO,
    *,
    causal: bool = False,
    causal_align: str = "top_left",
    scale: float | None = None,
    block_q: int = 16,
    block_k: int = 16,
):
    """FlashAttention-2 backward pass (Algorithm 2): returns ``(dQ, dK, dV)``.

    ``O`` and ``L`` are what :func:`flash_attention_forward` returned, ``dO = ∂loss/∂O``; the
    other arguments must be the ones given to the forward pass. With ``P = exp(S − L)`` rebuilt
    block by block and ``D = rowsum(dO ∘ O)`` (which equals ``rowsum(dP ∘ P)``, so the softmax
    Jacobian needs no full row of P):

        dV += Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − D),   dQ += s · dS K,   dK += s · dSᵀ Q
    """
    Q, K, V = check_qkv(Q, K, V)
    _check_options(block_q, block_k, causal_align)
    O, L, dO = np.asarray(O), np.asarray(L), np.asarray(dO)  # noqa: E741
    seq_q, seq_k = Q.shape[-2], K.shape[-2]
    batch = np.broadcast_shapes(Q.shape[:-2], K.shape[:-2])
    expected = {"O": (*batch, seq_q, V.shape[-1]), "L": (*batch, seq_q), "dO": O.shape}
    for name, array in (("O", O), ("L", L), ("dO", dO)):
        if array.shape != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {array.shape}")
    scale = 1.0 / np.sqrt(Q.shape[-1]) if scale is None else scale
    offset = _causal_offset(causal, causal_align, seq_q, seq_k)
    dtype = np.result_type(Q, K, V, dO)
    Qb, Kb, Vb = (np.broadcast_to(X, (*batch, *X.shape[-2:])) for X in (Q, K, V))
    dQ, dK, dV = np.zeros(Qb.shape, dtype), np.zeros(Kb.shape, dtype), np.zeros(Vb.shape, dtype)
    D = np.sum(dO * O, axis=-1)  # line 4: [..., seq_q]
    # A query with nothing to attend to has L = −inf and a fully masked row; any finite L works.
    L = np.where(np.isfinite(L), L, 0.0)

    for j0 in range(0, seq_k, block_k):  # line 5: one block of keys at a time
        cols = range(j0, min(j0 + block_k, seq_k))
        Kj, Vj = Kb[..., cols.start : cols.stop, :], Vb[..., cols.start : cols.stop, :]
        dKj, dVj = np.zeros(Kj.shape, dtype), np.zeros(Vj.shape, dtype)  # line 7
        for i0 in range(0, seq_q, block_q):  # line 8
            rows = range(i0, min(i0 + block_q, seq_q))
            mask = _block_mask(rows, cols, offset)
            if mask is not None and not mask.any():
                continue
            r = slice(rows.start, rows.stop)
            Qi, dOi = Qb[..., r, :], dO[..., r, :]
            S = (Qi @ np.swapaxes(Kj, -1, -2)) * scale  # line 10
            if mask is not None:
                S = np.where(mask, S, -np.inf)
            P = np.exp(S - L[..., r, None])  # line 11: the weights, already normalised
            dVj += np.swapaxes(P, -1, -2) @ dOi  # line 12
            dP = dOi @ np.swapaxes(Vj, -1, -2)  # line 13
            dS = P * (dP - D[..., r, None])  # line 14
            dQ[..., r, :] += scale * (dS @ Kj)  # line 15
            dKj += scale * (np.swapaxes(dS, -1, -2) @ Qi)  # line 16
        dK[..., cols.start : cols.stop, :] = dKj  # line 18
        dV[..., cols.start : cols.stop, :] = dVj
    # Q, K or V may have been broadcast over batch dims; sum the gradient back to their shapes.
    return _unbroadcast(dQ, Q.shape), _unbroadcast(dK, K.shape), _unbroadcast(dV, V.shape)
