"""Transformer building blocks: norms, feed-forward layers and the residual block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.functional.validation import check_length

from .attention import MultiHeadAttention
from .cache import LayerKVCache

NORM_KINDS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post")
FFN_KINDS = ("gelu", "swiglu")


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich, 2019): ``x / sqrt(mean(x²) + eps) · g``.

    Unlike LayerNorm it neither subtracts the mean nor adds a bias: one vector of ``d`` gains.
    """

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * rms * self.weight


def make_norm(kind: str, d_model: int, bias: bool = True) -> nn.Module:
    """``"layernorm"`` (weight and, with ``bias``, a bias) or ``"rmsnorm"`` (weight only)."""
    if kind not in NORM_KINDS:
        raise ValueError(f"norm_kind: expected one of {NORM_KINDS}, got {kind!r}")
    return nn.LayerNorm(d_model, bias=bias) if kind == "layernorm" else RMSNorm(d_model)


class FeedForward(nn.Module):
    """Position-wise feed-forward layer.

    ``"gelu"``: ``GELU(x W_1) W_2`` — two matrices (GPT-2). ``"swiglu"``:
    ``(SiLU(x W_gate) ∘ x W_up) W_down`` — three matrices (Shazeer, 2020; Llama).
    """

    def __init__(self, d_model: int, d_ff: int, kind: str = "gelu", bias: bool = True):
        super().__init__()
        if kind not in FFN_KINDS:
            raise ValueError(f"ffn: expected one of {FFN_KINDS}, got {kind!r}")
        check_length("d_ff", d_ff)
        self.kind = kind
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.gate = nn.Linear(d_model, d_ff, bias=bias) if kind == "swiglu" else None
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return self.down(F.gelu(self.up(x)))
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """A decoder block: causal self-attention and a feed-forward layer, each with a residual.

    ``causal=False`` makes it an encoder block: every token attends to every other.

    ``norm="pre"`` (GPT-2 and later): ``x + f(norm(x))``, which keeps an identity path from
    input to output. ``norm="post"`` (the original Transformer): ``norm(x + f(x))``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        d_ff: int | None = None,
        norm: str = "pre",
        norm_kind: str = "layernorm",
        ffn: str = "gelu",
        bias: bool = True,
        dropout: float = 0.0,
        backend: str = "sdpa",
        positions: str | None = None,
        causal: bool = True,
    ):
        super().__init__()
        if norm not in NORM_POSITIONS:
            raise ValueError(f"norm: expected one of {NORM_POSITIONS}, got {norm!r}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
        self.norm, self.causal = norm, causal
        self.attn = MultiHeadAttention(
            d_model,
            n_heads,
            n_kv_heads,
            bias=bias,
            dropout=dropout,
            backend=backend,
            positions=positions,
        )
        self.norm1 = make_norm(norm_kind, d_model, bias)
        self.norm2 = make_norm(norm_kind, d_model, bias)
        self.ffn = FeedForward(d_model, 4 * d_model if d_ff is None else d_ff, ffn, bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: LayerKVCache | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ):
        """``x`` ``(batch, seq, d_model)`` → same shape (and the attention weights if asked).

        ``attn_mask`` (bool, True = may attend, or additive) goes to the attention as is: for
        padded batches, ``(batch, 1, 1, seq)`` hides the padding from every query."""
        attn_input = self.norm1(x) if self.norm == "pre" else x
        attended = self.attn(
            attn_input,
            is_causal=self.causal,
            cache=cache,
            need_weights=need_weights,
            attn_mask=attn_mask,
        )
        attended, weights = attended if need_weights else (attended, None)
        if self.norm == "pre":
            x = x + self.dropout(attended)
            x = x + self.dropout(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self.dropout(attended))
            x = self.norm2(x + self.dropout(self.ffn(x)))
        return (x, weights) if need_weights else x
