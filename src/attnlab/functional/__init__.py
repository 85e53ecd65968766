"""Attention as torch functions without parameters: one function per variant.

``scaled_dot_product_attention`` has the semantics of
``torch.nn.functional.scaled_dot_product_attention`` (and dispatches to it when the weights are
not requested); beside it live the masks and hard (argmax) attention.
"""

from .masks import causal_mask, padding_mask, to_additive
from .positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    relative_attention,
    relative_position_scores,
    relative_shift,
    rope_angles,
    sinusoidal_encoding,
)
from .sdpa import (
    argmax_attention,
    attention_scores,
    masked_softmax,
    scaled_dot_product_attention,
)

__all__ = [
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "argmax_attention",
    "attention_scores",
    "causal_mask",
    "masked_softmax",
    "padding_mask",
    "relative_attention",
    "relative_position_scores",
    "relative_shift",
    "rope_angles",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
    "to_additive",
]
