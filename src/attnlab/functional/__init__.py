"""Attention as torch functions without parameters: one function per variant.

``scaled_dot_product_attention`` has the semantics of
``torch.nn.functional.scaled_dot_product_attention`` (and dispatches to it when the weights are
not requested); beside it live the masks, hard (argmax) attention, positional encodings and the
einsum decoding steps of MHA and MQA.
"""

from .decoding import mha_decode_step, mqa_decode_step, weights_from_module
from .feature_maps import PolynomialKernel, feature_map
from .flash import flash_attention
from .linear import (
    LinearAttentionState,
    kernel_attention,
    linear_attention,
    linear_attention_decode,
    linear_attention_step,
)
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
    "LinearAttentionState",
    "PolynomialKernel",
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "argmax_attention",
    "attention_scores",
    "causal_mask",
    "feature_map",
    "flash_attention",
    "kernel_attention",
    "linear_attention",
    "linear_attention_decode",
    "linear_attention_step",
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
