"""An encoder-only Transformer (BERT's layout) with a masked-LM head and a classifier head.

Every token attends to every other real token of its sequence (bidirectional self-attention,
padding hidden by a key mask), so the model suits filling in blanks and classifying whole
sentences rather than generating. Pretraining predicts masked tokens (Devlin et al., 2019,
Section 3.1; the masking is :func:`attnlab.data.batches.mask_tokens`) through an output layer
tied to the token embeddings; fine-tuning classifies from the final state of the first token,
``<cls>`` (their Section 3.2), by a new linear layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .blocks import Block, make_norm
from .common import check_sizes, check_token_ids, init_weights
from .positions import LearnedPositions


@dataclass
class EncoderConfig:
    """Sizes of an :class:`Encoder`; checked on construction."""

    vocab_size: int
    context: int
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_ff: int | None = None  # default 4 · d_model
    n_classes: int = 2
    dropout: float = 0.0

    def __post_init__(self):
        check_sizes(self, ("vocab_size", "context", "n_layers", "d_model", "n_heads", "n_classes"))

    def to_dict(self) -> dict:
        return asdict(self)


class Encoder(nn.Module):
    """Bidirectional Transformer encoder.

    ``forward(ids, mask=None, *, return_attention=False)`` maps ids ``(batch, seq)`` (and the
    bool mask of real tokens, True = a token, False = padding) to final states
    ``(batch, seq, d_model)``; with ``return_attention`` also the patterns
    ``blocks.{i}.attn.pattern``. :meth:`mlm_logits` and :meth:`classify` are the two heads.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise TypeError(f"config: expected an EncoderConfig, got {type(config).__name__}")
        self.config = c = config
        d_ff = 4 * c.d_model if c.d_ff is None else c.d_ff
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.positions = LearnedPositions(c.context, c.d_model)
        self.blocks = nn.ModuleList(
            Block(c.d_model, c.n_heads, d_ff=d_ff, dropout=c.dropout, causal=False)
            for _ in range(c.n_layers)
        )
        self.final_norm = make_norm("layernorm", c.d_model)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))  # decoder tied to the embedding
        self.classifier = nn.Linear(c.d_model, c.n_classes)
        self.dropout = nn.Dropout(c.dropout)
        init_weights(self, c.n_layers)

    def _check(self, ids, mask) -> None:
        check_token_ids("ids", ids, self.config.vocab_size, self.config.context)
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise TypeError("mask: expected a bool tensor (True = a token, False = padding)")
            if mask.shape != ids.shape:
                raise ValueError(
                    f"mask: expected shape {tuple(ids.shape)} like ids, got {tuple(mask.shape)}"
                )
            if not bool(mask.any(dim=-1).all()):
                raise ValueError("mask: every sequence needs at least one real token")

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, *, return_attention=False
    ):
        self._check(ids, mask)
        x = self.dropout(self.token_embedding(ids) + self.positions(ids.shape[1]))
        keys = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T): hide padding
        patterns = {}
        for i, block in enumerate(self.blocks):
            if return_attention:
                x, patterns[f"blocks.{i}.attn.pattern"] = block(
                    x, attn_mask=keys, need_weights=True
                )
            else:
                x = block(x, attn_mask=keys)
        x = self.final_norm(x)
        return (x, patterns) if return_attention else x

    def mlm_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Token logits ``(..., vocab_size)`` from final states, by the embedding matrix."""
        return states @ self.token_embedding.weight.T + self.mlm_bias

    def classify(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits ``(batch, n_classes)`` from the first token's final state."""
        return self.classifier(self(ids, mask)[:, 0])


__all__ = ["Encoder", "EncoderConfig"]
