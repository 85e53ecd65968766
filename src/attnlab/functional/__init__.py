"""Attention as torch functions without parameters: one function per variant.

``scaled_dot_product_attention`` has the semantics of
``torch.nn.functional.scaled_dot_product_attention`` (and dispatches to it when the weights are
not requested); beside it live the masks, hard (argmax) attention, positional encodings and the
einsum decoding steps of MHA and MQA.
"""

from .decoding import mha_decode_step, mqa_decode_step, weights_from_module
from .masks import causal_mask, merge_masks, padding_mask, to_additive
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
    "merge_masks",
    "mha_decode_step",
    "mqa_decode_step",
    "padding_mask",
    "relative_attention",
    "relative_position_scores",
    "relative_shift",
    "rope_angles",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
    "to_additive",
    "weights_from_module",
]
