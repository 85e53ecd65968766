"""Positional modules: thin wrappers that hold the parameters and buffers and call the
functions of :mod:`attnlab.functional.positions` for the math."""

from __future__ import annotations

import torch
from torch import nn

from ..functional.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_angles,
    sinusoidal_encoding,
)
from ..functional.validation import check_length


def _check_window(seq_len, offset, max_len: int) -> None:
    """Positions ``offset … offset + seq_len − 1`` must lie in a table of ``max_len`` rows."""
    check_length("seq_len", seq_len)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset: expected a non-negative integer, got {offset!r}")
    if offset + seq_len > max_len:
        raise ValueError(
            f"offset + seq_len: expected at most max_len={max_len}, got {offset + seq_len} "
            f"(offset={offset}, seq_len={seq_len}); build the module with a larger max_len"
        )


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal encodings (Vaswani et al., 2017, section 3.5), precomputed once.

    No parameters: the table is a non-persistent buffer (it follows ``.to()`` but stays out of
    the state dict, because it is a function of ``d_model`` and ``max_len``).
    """

    encoding: torch.Tensor

    def __init__(self, d_model: int, max_len: int = 4096) -> None:
        super().__init__()
        self.d_model = check_length("d_model", d_model)
        self.max_len = check_length("max_len", max_len)
        self.register_buffer("encoding", sinusoidal_encoding(max_len, d_model), persistent=False)

    def forward(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        """The encodings of positions ``offset … offset + seq_len − 1``: ``(seq_len, d_model)``."""
        _check_window(seq_len, offset, self.max_len)
        return self.encoding[offset : offset + seq_len]

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositions(nn.Module):
    """Learned absolute positions, one trained vector per position (as in GPT-2)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = check_length("max_len", max_len)
        self.d_model = check_length("d_model", d_model)
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        """The vectors of positions ``offset … offset + seq_len − 1``: ``(seq_len, d_model)``."""
        _check_window(seq_len, offset, self.max_len)
        device = self.embedding.weight.device
        return self.embedding(torch.arange(offset, offset + seq_len, device=device))


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al., RoFormer, 2021), applied to queries and keys.

    No parameters. ``interleaved=False`` is the GPT-NeoX / Llama half-split layout,
    ``interleaved=True`` the RoFormer / GPT-J one; see :func:`attnlab.functional.apply_rope`.
    """

    def __init__(self, head_dim: int, base: float = 10000.0, interleaved: bool = False) -> None:
        super().__init__()
        rope_angles(1, head_dim, base=base)  # the same checks on head_dim and base, up front
        if not isinstance(interleaved, bool):
            raise TypeError(f"interleaved: expected a bool, got {type(interleaved).__name__}")
        self.head_dim = head_dim
        self.base = float(base)
        self.interleaved = interleaved

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Rotate ``x`` ``(..., seq, head_dim)`` whose first row is at position ``offset``."""
        if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[-1] != self.head_dim:
            raise ValueError(
                f"x: expected head_dim={self.head_dim} (last dim), got shape {tuple(x.shape)}"
            )
        return apply_rope(x, offset=offset, base=self.base, interleaved=self.interleaved)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}, interleaved={self.interleaved}"


class ALiBi(nn.Module):
    """Attention with linear biases (Press et al., 2022): per-head slopes, no parameters.

    The slopes are a non-persistent buffer, kept for inspection and to give the bias the
    module's device by default.
    """

    slopes: torch.Tensor

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = check_length("n_heads", n_heads)
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(
        self,
        seq_q: int,
        seq_k: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The ``(n_heads, seq_q, seq_k)`` bias of :func:`attnlab.functional.alibi_bias`
        (bottom-right aligned; combine with a causal mask). Device defaults to the module's."""
        device = self.slopes.device if device is None else device
        return alibi_bias(self.n_heads, seq_q, seq_k, dtype=dtype, device=device)

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}"


class RelativePositions(nn.Module):
    """Transformer-XL's learned positional parts (Dai et al., 2019, section 3.3).

    ``W_kR`` projects the sinusoid of each relative distance into key space, and ``bias_u``,
    ``bias_v`` are the global content and position biases u, v, one per head. Feed
    ``forward(seq_k)``, ``bias_u`` and ``bias_v`` to :func:`attnlab.functional.relative_attention`.
    The biases start at zero, so an untrained module adds only the projected sinusoids.
    """

    def __init__(self, d_model: int, n_heads: int, base: float = 10000.0) -> None:
        super().__init__()
        self.d_model = check_length("d_model", d_model)
        self.n_heads = check_length("n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(
                f"n_heads: expected a divisor of d_model={d_model}, got n_heads={n_heads}"
            )
        sinusoidal_encoding(1, d_model, base=base)  # the same check on base, up front
        self.base = float(base)
        self.head_dim = d_model // n_heads
        self.W_kR = nn.Linear(d_model, d_model, bias=False)
        self.bias_u = nn.Parameter(torch.zeros(n_heads, self.head_dim))
        self.bias_v = nn.Parameter(torch.zeros(n_heads, self.head_dim))

    def forward(self, seq_k: int) -> torch.Tensor:
        """``pos_embed`` ``(n_heads, seq_k, head_dim)``: row m encodes distance ``seq_k − 1 − m``
        (descending, Transformer-XL's order)."""
        check_length("seq_k", seq_k)
        weight = self.W_kR.weight
        sinusoid = sinusoidal_encoding(
            seq_k, self.d_model, base=self.base, dtype=weight.dtype, device=weight.device
        )
        # Transformer-XL concatenates [sin, cos] where we interleave them; W_kR is learned, so the
        # two differ only by a permutation of its input columns.
        projected = self.W_kR(sinusoid.flip(0))  # (seq_k, d_model), distances seq_k − 1 … 0
        return projected.view(seq_k, self.n_heads, self.head_dim).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, base={self.base}"
