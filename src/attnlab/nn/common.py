"""What the models share: checks of token ids and sizes, and the weight initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.functional.validation import check_length


def check_token_ids(name: str, ids, vocab_size: int, context: int, *, offset: int = 0) -> None:
    """``ids`` is an int64 ``(batch, seq)`` tensor with ``1 ≤ seq`` and ``offset + seq ≤
    context`` (``offset`` tokens already cached), every id in ``[0, vocab_size)``."""
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long:
        kind = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"{name}: expected a torch.long tensor of token ids, got {kind}")
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise ValueError(
            f"{name}: expected shape (batch, seq) with seq ≥ 1, got {tuple(ids.shape)}"
        )
    if offset + ids.shape[1] > context:
        cached = (
            f"{offset} cached + {ids.shape[1]} new tokens" if offset else f"{ids.shape[1]} tokens"
        )
        raise ValueError(f"{name}: {cached} exceed the context {context}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name}: expected ids in [0, {vocab_size}), got values in [{low}, {high}]"
        )


def check_sizes(config, lengths: tuple[str, ...]) -> None:
    """A model config's sizes: each of ``lengths`` a positive integer, ``n_heads`` dividing
    ``d_model``, ``d_ff`` (if set) positive, ``dropout`` in [0, 1)."""
    for name in lengths:
        check_length(name, getattr(config, name))
    if config.d_model % config.n_heads:
        raise ValueError(
            f"n_heads: expected a divisor of d_model={config.d_model}, got {config.n_heads}"
        )
    if config.d_ff is not None:
        check_length("d_ff", config.d_ff)
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout: expected a number in [0, 1), got {config.dropout!r}")


def _normal_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def init_weights(model: nn.Module, residual_layers: int) -> None:
    """GPT-2's initialisation: linear and embedding weights N(0, 0.02²), biases 0, and the
    projections that write into the residual stream (attention ``out_proj``, feed-forward
    ``down``) scaled by 1/√(2 · residual_layers), so that the stream's variance does not grow
    with depth (Radford et al., 2019, Section 2.3)."""
    model.apply(_normal_weights)
    for name, p in model.named_parameters():
        if name.endswith(("out_proj.weight", "ffn.down.weight")):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * residual_layers))


__all__ = ["check_sizes", "check_token_ids", "init_weights"]
