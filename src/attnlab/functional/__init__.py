"""Attention as torch functions without parameters: one function per variant.

``scaled_dot_product_attention`` has the semantics of
``torch.nn.functional.scaled_dot_product_attention`` (and dispatches to it when the weights are
not requested); beside it live the masks and hard (argmax) attention.
"""

from .masks import causal_mask, padding_mask, to_additive
from .sdpa import (
    argmax_attention,
    attention_scores,
    masked_softmax,
    scaled_dot_product_attention,
)

__all__ = [
    "argmax_attention",
    "attention_scores",
    "causal_mask",
    "masked_softmax",
    "padding_mask",
    "scaled_dot_product_attention",
    "to_additive",
]
