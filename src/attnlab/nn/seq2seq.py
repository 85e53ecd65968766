"""An encoder–decoder Transformer: the decoder reads the encoder's output through cross attention.

The original Transformer's layout (Vaswani et al., 2017, Section 3.1), with pre-norm blocks: the
encoder is a stack of blocks whose self-attention sees every source token; each decoder block
has causal self-attention over the target so far, then cross attention whose queries come from
the target and whose keys and values come from the encoder's output (the "memory"), then a
feed-forward layer. Cross attention is where a translation model learns its word alignment:
row t of its ``(seq_tgt, seq_src)`` pattern says which source words target word t draws on.
Sources in one batch share a length (no padding masks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.functional.validation import check_length

from .attention import MultiHeadAttention
from .blocks import Block, FeedForward, make_norm
from .common import check_sizes, check_token_ids, init_weights
from .positions import LearnedPositions


@dataclass
class EncoderDecoderConfig:
    """Sizes of an :class:`EncoderDecoder`; every field is checked on construction.

    ``src_context`` / ``tgt_context``: the longest source and decoder input (learned positions).
    """

    src_vocab_size: int
    tgt_vocab_size: int
    src_context: int
    tgt_context: int
    n_encoder_layers: int = 1
    n_decoder_layers: int = 1
    d_model: int = 64
    n_heads: int = 4
    d_ff: int | None = None  # default 4 · d_model
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        lengths = ("src_vocab_size", "tgt_vocab_size", "src_context", "tgt_context", "d_model")
        check_sizes(self, (*lengths, "n_heads"))
        for name in ("n_encoder_layers", "n_decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a whole number ≥ 0, got {value!r}")
        if self.n_decoder_layers == 0:
            raise ValueError("n_decoder_layers: expected ≥ 1 (cross attention lives there), got 0")

    def to_dict(self) -> dict:
        return asdict(self)


class CrossAttentionBlock(nn.Module):
    """A pre-norm decoder block: causal self-attention, cross attention to ``memory``, then a
    feed-forward layer, each added to the residual stream."""

    def __init__(self, d_model: int, n_heads: int, *, d_ff: int, bias: bool, dropout: float):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.norm1 = make_norm("layernorm", d_model, bias)
        self.norm2 = make_norm("layernorm", d_model, bias)
        self.norm3 = make_norm("layernorm", d_model, bias)
        self.ffn = FeedForward(d_model, d_ff, "gelu", bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, need_weights: bool = False):
        """``x`` ``(batch, seq_tgt, d_model)``, ``memory`` ``(batch, seq_src, d_model)`` → the
        new ``x``; with ``need_weights`` also the self and cross patterns
        ``(batch, n_heads, seq_tgt, seq_tgt)`` and ``(batch, n_heads, seq_tgt, seq_src)``."""
        own = self.self_attn(self.norm1(x), is_causal=True, need_weights=need_weights)
        own, own_weights = own if need_weights else (own, None)
        x = x + self.dropout(own)
        cross = self.cross_attn(self.norm2(x), memory, need_weights=need_weights)
        cross, cross_weights = cross if need_weights else (cross, None)
        x = x + self.dropout(cross)
        x = x + self.dropout(self.ffn(self.norm3(x)))
        return (x, own_weights, cross_weights) if need_weights else x


class EncoderDecoder(nn.Module):
    """Encoder–decoder Transformer for sequence-to-sequence tasks (a toy translation model).

    ``forward(src, tgt, targets=None, *, return_attention=False)`` maps source ids
    ``(batch, seq_src)`` and decoder input ids ``(batch, seq_tgt)`` (the target shifted right
    behind a start token) to logits ``(batch, seq_tgt, tgt_vocab_size)``; with ``targets`` also
    the mean cross-entropy; with ``return_attention`` also a dict of patterns named
    ``encoder.{i}.attn.pattern``, ``decoder.{i}.attn.pattern`` and ``decoder.{i}.cross.pattern``
    (the last ``(batch, n_heads, seq_tgt, seq_src)``: the alignment).
    """

    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        if not isinstance(config, EncoderDecoderConfig):
            raise TypeError(
                f"config: expected an EncoderDecoderConfig, got {type(config).__name__}"
            )
        self.config = c = config
        d_ff = 4 * c.d_model if c.d_ff is None else c.d_ff
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.src_positions = LearnedPositions(c.src_context, c.d_model)
        self.tgt_positions = LearnedPositions(c.tgt_context, c.d_model)
        self.encoder = nn.ModuleList(
            Block(c.d_model, c.n_heads, d_ff=d_ff, bias=c.bias, dropout=c.dropout, causal=False)
            for _ in range(c.n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            CrossAttentionBlock(c.d_model, c.n_heads, d_ff=d_ff, bias=c.bias, dropout=c.dropout)
            for _ in range(c.n_decoder_layers)
        )
        self.encoder_norm = make_norm("layernorm", c.d_model, c.bias)
        self.decoder_norm = make_norm("layernorm", c.d_model, c.bias)
        self.head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.dropout = nn.Dropout(c.dropout)
        # GPT-2 scales the residual projections by 1/√(2·L) for L blocks of two branches each;
        # a decoder block has three (self, cross, feed-forward) and counts as two blocks here
        init_weights(self, c.n_encoder_layers + 2 * c.n_decoder_layers)

    def encode(self, src: torch.Tensor, *, patterns: dict | None = None) -> torch.Tensor:
        """Source ids ``(batch, seq_src)`` → the memory ``(batch, seq_src, d_model)``."""
        c = self.config
        check_token_ids("src", src, c.src_vocab_size, c.src_context)
        x = self.dropout(self.src_embedding(src) + self.src_positions(src.shape[1]))
        for i, block in enumerate(self.encoder):
            if patterns is None:
                x = block(x)
            else:
                x, patterns[f"encoder.{i}.attn.pattern"] = block(x, need_weights=True)
        return self.encoder_norm(x)

    def decode(
        self, memory: torch.Tensor, tgt: torch.Tensor, *, patterns: dict | None = None
    ) -> torch.Tensor:
        """Decoder input ids ``(batch, seq_tgt)`` reading ``memory`` → logits."""
        c = self.config
        check_token_ids("tgt", tgt, c.tgt_vocab_size, c.tgt_context)
        if memory.dim() != 3 or memory.shape[0] != tgt.shape[0] or memory.shape[2] != c.d_model:
            raise ValueError(
                f"memory: expected (batch={tgt.shape[0]}, seq_src, {c.d_model}), got "
                f"{tuple(memory.shape)}"
            )
        x = self.dropout(self.tgt_embedding(tgt) + self.tgt_positions(tgt.shape[1]))
        for i, block in enumerate(self.decoder):
            if patterns is None:
                x = block(x, memory)
            else:
                x, own, cross = block(x, memory, need_weights=True)
                patterns[f"decoder.{i}.attn.pattern"] = own
                patterns[f"decoder.{i}.cross.pattern"] = cross
        return self.head(self.decoder_norm(x))  # (batch, seq_tgt, tgt_vocab_size)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        return_attention: bool = False,
    ):
        patterns: dict | None = {} if return_attention else None
        logits = self.decode(self.encode(src, patterns=patterns), tgt, patterns=patterns)
        result = [logits]
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or targets.shape != tgt.shape:
                got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else targets
                raise ValueError(f"targets: expected shape {tuple(tgt.shape)} like tgt, got {got}")
            result.append(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
        if return_attention:
            result.append(patterns)
        return result[0] if len(result) == 1 else tuple(result)

    @torch.no_grad()
    def translate(self, src: torch.Tensor, length: int, *, start: int) -> torch.Tensor:
        """Greedy decoding: ``length`` target ids per source ``(batch, length)``, each the most
        likely next token given the source and the ids before it, after the ``start`` id.

        The source is encoded once; the decoder reruns over the target so far at each step (no
        cache: cross attention's keys and values are the fixed memory, and targets here are a
        few tokens long)."""
        check_length("length", length)
        if length > self.config.tgt_context:
            raise ValueError(
                f"length: expected at most tgt_context={self.config.tgt_context}, got {length}"
            )
        if not 0 <= start < self.config.tgt_vocab_size:
            raise ValueError(
                f"start: expected an id in [0, {self.config.tgt_vocab_size}), got {start}"
            )
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), start, dtype=torch.long, device=src.device)
        for _ in range(length):
            logits = self.decode(memory, out)
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return out[:, 1:]


__all__ = ["CrossAttentionBlock", "EncoderDecoder", "EncoderDecoderConfig"]
