"""Transformer-XL relative-position attention in NumPy (Dai et al., 2019, section 3.3).

The score of query i against key j is the sum of four terms (the paper's equation for
``A^rel_{i,j}``):

    A_ij = q_iᵀ k_j          (a) content–content
         + q_iᵀ r_{i−j}      (b) content–position
         + uᵀ k_j            (c) a global content bias
         + vᵀ r_{i−j}        (d) a global position bias

where ``q_i = W_q x_i``, ``k_j = W_{k,E} x_j`` and ``r_{i−j} = W_{k,R} R_{i−j}`` is the projected
sinusoid of the relative distance. Grouping gives ``(q_i + u)ᵀ k_j + (q_i + v)ᵀ r_{i−j}``. The
second term is computed for every (query, distance) pair as one matrix product and moved into
(query, key) position by the *relative shift*.
"""

from __future__ import annotations

import numpy as np

from .attention import _as_float_array, additive_mask, check_qkv, softmax


def relative_shift(x: np.ndarray) -> np.ndarray:
    """Move scores from (query, distance-row) to (query, key) position.

    ``x[..., i, m]`` holds query i against distance ``seq_k − 1 − m`` (descending). The result
    holds, at ``[..., i, j]``, the entry for distance ``(i + seq_k − seq_q) − j``, i.e.
    ``x[..., i, j + seq_q − 1 − i]``, for every ``j ≤ i + seq_k − seq_q``. Entries for future
    keys (``j`` beyond that) are left-over values that the causal mask removes.

    The trick: prepend a zero column, read the ``[seq_q, seq_k + 1]`` block as
    ``[seq_k + 1, seq_q]``, drop its first row and read it back as ``[seq_q, seq_k]``. Row i
    then starts ``seq_q − 1 − i`` entries further along, which is exactly the shift wanted.
    """
    *lead, seq_q, seq_k = x.shape
    padded = np.concatenate([np.zeros((*lead, seq_q, 1)), x], axis=-1)
    padded = padded.reshape(*lead, seq_k + 1, seq_q)
    return padded[..., 1:, :].reshape(*lead, seq_q, seq_k)


def relative_attention(Q, K, V, pos_embed, u, v, mask=None) -> np.ndarray:
    """Causal attention with Transformer-XL relative positions.

    Query i sits at absolute position ``i + seq_k − seq_q`` (the keys may start earlier, with a
    memory of previous segments) and attends to keys at or before it.

    Args:
        Q: queries ``[batch, seq_q, d]`` (or ``[seq_q, d]``), already projected.
        K: keys ``[batch, seq_k, d]``, with ``seq_k ≥ seq_q``.
        V: values ``[batch, seq_k, d_v]``.
        pos_embed: projected relative-position embeddings ``W_{k,R} R`` ``[seq_k, d]``, in
            Transformer-XL's descending order: row m encodes distance ``seq_k − 1 − m``.
        u: global content bias ``[d]``.
        v: global position bias ``[d]``.
        mask: optional extra mask (additive or boolean), broadcast to ``[batch, seq_q, seq_k]``.

    Returns:
        output ``[batch, seq_q, d_v]``, with scores scaled by ``1/√d`` as in the paper's code.
    """
    Q, K, V = check_qkv(Q, K, V)
    seq_q, d = Q.shape[-2:]
    seq_k = K.shape[-2]
    if seq_k < seq_q:
        raise ValueError(f"K: expected seq_k ≥ seq_q={seq_q}, got K {K.shape}")
    pos_embed = _as_float_array("pos_embed", pos_embed)
    if pos_embed.shape != (seq_k, d):
        raise ValueError(f"pos_embed: expected shape ({seq_k}, {d}), got {pos_embed.shape}")
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    for name, bias in (("u", u), ("v", v)):
        if bias.shape != (d,):
            raise ValueError(f"{name}: expected shape ({d},), got {bias.shape}")

    content = (Q + u) @ np.swapaxes(K, -1, -2)  # terms (a) + (c), [..., seq_q, seq_k]
    position = relative_shift((Q + v) @ pos_embed.T)  # terms (b) + (d), [..., seq_q, seq_k]
    scores = (content + position) / np.sqrt(d)

    offset = seq_k - seq_q
    future = np.arange(seq_k)[None, :] > np.arange(seq_q)[:, None] + offset
    scores = np.where(future, -np.inf, scores)
    if mask is not None:
        scores = scores + additive_mask(mask, scores.shape)
    return softmax(scores) @ V
