"""The backward pass of attention by hand, as a ``forward → (out, cache)`` /
``backward(dout, cache)`` pair.

With ``S = Q Kᵀ · s + M``, ``P = softmax(S)`` (row-wise) and ``O = P V``:

    dV = Pᵀ dO
    dP = dO Vᵀ
    dS = P ∘ (dP − rowsum(dP ∘ P))     (the softmax Jacobian, applied row by row)
    dQ = s · dS K
    dK = s · dSᵀ Q

A row of P that is all zero (a query that may attend to nothing) gives a zero row of dS.
"""

from __future__ import annotations

import numpy as np

from .attention import attention_scores, check_qkv, softmax


def attention_forward(Q, K, V, mask=None, *, scale: float | None = None):
    """Forward pass that keeps what the backward pass needs.

    Returns:
        ``(output, cache)`` with output ``[batch, seq_q, d_v]``.
    """
    Q, K, V = check_qkv(Q, K, V)
    if scale is None:
        scale = 1.0 / np.sqrt(Q.shape[-1])
    P = softmax(attention_scores(Q, K, mask, scale=scale))
    out = P @ V
    cache = {"Q": Q, "K": K, "V": V, "P": P, "scale": scale}
    return out, cache


def attention_backward_from_cache(dout, cache):
    """Gradients of the loss with respect to Q, K and V, given ``dout = ∂loss/∂output``."""
    Q, K, V, P, scale = cache["Q"], cache["K"], cache["V"], cache["P"], cache["scale"]
    dout = np.asarray(dout, dtype=np.result_type(P, dout))
    expected = P.shape[:-1] + V.shape[-1:]
    if dout.shape != expected:
        raise ValueError(f"grad_output: expected shape {expected}, got {dout.shape}")
    dV = np.swapaxes(P, -1, -2) @ dout  # [..., seq_k, d_v]
    dP = dout @ np.swapaxes(V, -1, -2)  # [..., seq_q, seq_k]
    dS = P * (dP - np.sum(dP * P, axis=-1, keepdims=True))
    dQ = scale * (dS @ K)  # [..., seq_q, d_k]
    dK = scale * (np.swapaxes(dS, -1, -2) @ Q)  # [..., seq_k, d_k]
    # Q or K may have been broadcast over batch dims; sum the gradient back to their shapes.
    return _unbroadcast(dQ, Q.shape), _unbroadcast(dK, K.shape), _unbroadcast(dV, V.shape)


def attention_backward(Q, K, V, grad_output, mask=None, *, scale: float | None = None):
    """Given ``grad_output = ∂loss/∂output``, compute ``(grad_Q, grad_K, grad_V)``."""
    _, cache = attention_forward(Q, K, V, mask, scale=scale)
    return attention_backward_from_cache(grad_output, cache)


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad
