"""Multi-head self-attention in NumPy (Vaswani et al., 2017, section 3.2.2).

``MultiHead(x) = Concat(head_1, …, head_h) W_o`` with ``head_i = Attention(x W_q^i, x W_k^i,
x W_v^i)``. The h per-head projections ``W_q^i`` (``d_model × d_k``) are stored side by side as
the columns of one ``d_model × d_model`` matrix, so "splitting into heads" is a reshape.
"""

from __future__ import annotations

import numpy as np

from .attention import _as_float_array, attention_scores, softmax


class MultiHeadAttention:
    """Multi-head self-attention with weights drawn as in the exercise (``randn · 0.02``).

    Args:
        d_model: model width; must be divisible by ``n_heads``.
        n_heads: number of heads; each has width ``d_k = d_model // n_heads``.
        seed: seed of the ``numpy.random.Generator`` that draws the weights.

    Attributes:
        W_q, W_k, W_v, W_o: ``[d_model, d_model]`` matrices, applied as ``x @ W``.
        attention_weights: the ``[batch, n_heads, seq, seq]`` weights of the last forward.
    """

    def __init__(self, d_model: int, n_heads: int, seed: int | None = 0):
        for name, value in (("d_model", d_model), ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if d_model % n_heads:
            raise ValueError(
                f"n_heads: expected a divisor of d_model={d_model}, got n_heads={n_heads}"
            )
        rng = np.random.default_rng(seed)
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_k = d_model // n_heads
        self.W_q = rng.standard_normal((d_model, d_model)) * 0.02
        self.W_k = rng.standard_normal((d_model, d_model)) * 0.02
        self.W_v = rng.standard_normal((d_model, d_model)) * 0.02
        self.W_o = rng.standard_normal((d_model, d_model)) * 0.02
        self.attention_weights: np.ndarray | None = None

    def head_weights(self, head: int) -> dict[str, np.ndarray]:
        """One head's slices: W_q, W_k, W_v ``[d_model, d_k]`` and W_o ``[d_k, d_model]``."""
        if not 0 <= head < self.n_heads:
            raise ValueError(f"head: expected 0 ≤ head < {self.n_heads}, got {head}")
        cols = slice(head * self.d_k, (head + 1) * self.d_k)
        return {
            "W_q": self.W_q[:, cols],
            "W_k": self.W_k[:, cols],
            "W_v": self.W_v[:, cols],
            "W_o": self.W_o[cols, :],
        }

    def split_heads(self, x: np.ndarray) -> np.ndarray:
        """``[batch, seq, d_model]`` → ``[batch, n_heads, seq, d_k]``."""
        batch, seq, _ = x.shape
        return x.reshape(batch, seq, self.n_heads, self.d_k).transpose(0, 2, 1, 3)

    def merge_heads(self, x: np.ndarray) -> np.ndarray:
        """``[batch, n_heads, seq, d_k]`` → ``[batch, seq, d_model]``."""
        batch, _, seq, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(batch, seq, self.d_model)

    def forward(self, x, mask=None) -> np.ndarray:
        """Self-attention over ``x`` ``[batch, seq, d_model]`` (or ``[seq, d_model]``).

        1. project to Q, K, V; 2. split into heads; 3. attend per head (with ``mask``, additive
        or boolean, broadcast to ``[batch, n_heads, seq, seq]``); 4. concatenate and project.
        """
        x = _as_float_array("x", x)
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x: expected shape [batch, seq, {self.d_model}] or [seq, {self.d_model}], "
                f"got {x.shape}"
            )
        unbatched = x.ndim == 2
        if unbatched:
            x = x[None]
        Q = self.split_heads(x @ self.W_q)  # [batch, n_heads, seq, d_k]
        K = self.split_heads(x @ self.W_k)
        V = self.split_heads(x @ self.W_v)
        weights = softmax(attention_scores(Q, K, mask))  # [batch, n_heads, seq, seq]
        self.attention_weights = weights
        out = self.merge_heads(weights @ V) @ self.W_o  # [batch, seq, d_model]
        return out[0] if unbatched else out

    __call__ = forward
