"""Scaled dot-product attention in NumPy, written to be read next to the textbook.

Arrays are batch-first, ``[batch, seq, d]``; unbatched ``[seq, d]`` arrays work too, because
every operation here acts on the last two axes. Masks are additive (0 where a query may look,
−inf where it may not) or boolean (True where a query may look).
"""

from __future__ import annotations

import numpy as np


def _as_float_array(name: str, x) -> np.ndarray:
    """Check that ``x`` is a real floating or integer array of at least 2 dims; return float."""
    array = np.asarray(x)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name}: expected a real array, got dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"{name}: expected shape [batch, seq, d] or [seq, d], got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def check_qkv(Q, K, V) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert query, key and value arrays (used by every function here)."""
    Q, K, V = _as_float_array("Q", Q), _as_float_array("K", K), _as_float_array("V", V)
    if Q.shape[-1] != K.shape[-1]:
        raise ValueError(
            f"Q and K: expected the same last dim d_k, got Q {Q.shape} and K {K.shape}"
        )
    if K.shape[-2] != V.shape[-2]:
        raise ValueError(
            f"K and V: expected the same number of keys seq_k, got K {K.shape} and V {V.shape}"
        )
    if K.shape[:-2] != V.shape[:-2]:
        raise ValueError(f"K and V: expected the same batch dims, got K {K.shape} and V {V.shape}")
    try:
        np.broadcast_shapes(Q.shape[:-2], K.shape[:-2])
    except ValueError:
        raise ValueError(
            f"Q and K: batch dims do not broadcast, got Q {Q.shape} and K {K.shape}"
        ) from None
    return Q, K, V


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``.

    Subtracting the row maximum before ``exp`` leaves the result unchanged (the factor
    ``exp(-max)`` cancels) and keeps every exponent ≤ 0, so nothing overflows. A row that is
    −inf everywhere (a query that may attend to nothing) gives all zeros instead of NaN.
    """
    x = np.asarray(x, dtype=np.result_type(x, np.float32))
    row_max = np.max(x, axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.exp(x - row_max)
    total = np.sum(e, axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def create_causal_mask(seq_len: int) -> np.ndarray:
    """Mask where position i may attend only to positions j ≤ i.

    Returns:
        mask ``[seq_len, seq_len]`` with 0 for allowed and −inf for blocked positions, to be
        added to the scores before the softmax.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int | np.integer) or seq_len < 1:
        raise ValueError(f"seq_len: expected a positive integer, got {seq_len!r}")
    blocked = np.triu(np.ones((seq_len, seq_len), dtype=bool), k=1)
    return np.where(blocked, -np.inf, 0.0)


def additive_mask(mask, scores_shape: tuple[int, ...]) -> np.ndarray:
    """Turn a boolean (True = may attend) or additive mask into an additive one.

    The mask must broadcast to ``scores_shape`` (``[..., seq_q, seq_k]``) without changing it.
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = np.where(mask, 0.0, -np.inf)
    elif not np.issubdtype(mask.dtype, np.number) or np.iscomplexobj(mask):
        raise TypeError(f"mask: expected a boolean or real array, got dtype {mask.dtype}")
    if np.isnan(mask).any():
        raise ValueError("mask: contains NaN")
    try:
        broadcast = np.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(scores_shape):
        raise ValueError(
            f"mask: expected a shape that broadcasts to the scores {tuple(scores_shape)}, "
            f"got {mask.shape}"
        )
    return mask.astype(np.float64)


def attention_scores(Q, K, mask=None, *, scale: float | None = None) -> np.ndarray:
    """Scores ``Q Kᵀ · scale + mask``, shape ``[..., seq_q, seq_k]``; scale defaults to 1/√d_k."""
    if scale is None:
        scale = 1.0 / np.sqrt(Q.shape[-1])
    scores = (Q @ np.swapaxes(K, -1, -2)) * scale
    if mask is not None:
        scores = scores + additive_mask(mask, scores.shape)
    return scores


def attention(Q, K, V, *, scale: float | None = None) -> np.ndarray:
    """Scaled dot-product attention, ``softmax(Q Kᵀ / √d_k) V`` (Vaswani et al., 2017, eq. 1).

    Args:
        Q: queries ``[batch, seq_q, d_k]`` (or ``[seq_q, d_k]``)
        K: keys ``[batch, seq_k, d_k]``
        V: values ``[batch, seq_k, d_v]``
        scale: factor applied to the scores; defaults to ``1/√d_k``. Pass ``1.0`` for the
            unscaled dot product.

    Returns:
        output ``[batch, seq_q, d_v]``
    """
    return masked_attention(Q, K, V, None, scale=scale)


def masked_attention(Q, K, V, mask, *, scale: float | None = None) -> np.ndarray:
    """Attention with a mask added to the scores before the softmax.

    ``mask`` is additive (0 allowed, −inf blocked, as from :func:`create_causal_mask`) or
    boolean (True = may attend) and broadcasts to ``[batch, seq_q, seq_k]``; ``None`` means no
    mask. A query whose row is blocked everywhere receives a zero vector.
    """
    Q, K, V = check_qkv(Q, K, V)
    weights = softmax(attention_scores(Q, K, mask, scale=scale))
    return weights @ V


def attention_weights(Q, K, mask=None, *, scale: float | None = None) -> np.ndarray:
    """The softmax weights ``[..., seq_q, seq_k]`` of :func:`masked_attention`; rows sum to 1."""
    Q, K, _ = check_qkv(Q, K, K)
    return softmax(attention_scores(Q, K, mask, scale=scale))


def argmax_attention(Q, K, V) -> np.ndarray:
    """Hard attention: each query returns exactly the value of its most similar key.

    Similarity is the plain dot product ``qᵀk`` (a positive scale would not change the
    argmax). Ties go to the lowest key index, as ``np.argmax`` does. The weights are one-hot,
    so the output is not a differentiable function of Q and K: its gradient with respect to
    them is zero almost everywhere, which is why models use the softmax instead.

    Returns:
        output ``[batch, seq_q, d_v]``
    """
    Q, K, V = check_qkv(Q, K, V)
    scores = Q @ np.swapaxes(K, -1, -2)
    index = np.argmax(scores, axis=-1)  # [..., seq_q]
    one_hot = np.eye(K.shape[-2])[index]  # [..., seq_q, seq_k]
    return one_hot @ V
