"""Transformer arithmetic as pure functions returning named figures.

Each function validates its inputs and returns a frozen dataclass whose fields are the figures
(with their formulas in the field metadata), a per-part breakdown in ``parts``, and
``to_dict()`` for JSON. No torch, no I/O: the standard library only.

========================  =====================================================================
``count_params``          exact parameters per component; the ``12·L·d² (+ V·d or 2·V·d)`` rule
``attention_params``      one attention layer: ``4·d²`` (+ biases) for any number of heads
``flops``                 forward FLOPs per token by part; training ``3×``, checkpointed ``4×``
``flops_from_params``     ``2·N`` per token (+ ``2·L·ctx·d``), ``6·N·D`` to train
``kv_cache``              ``2·L·n_kv·d_head·bytes`` per token; per sequence and batch
``chinchilla``            compute-optimal ``(N, D)``: ``D = 20·N`` and the Hoffmann et al. fit
``attention_ops``         exact multiplications, additions, divisions and exps of SDPA
``head_split``            ``H`` heads of ``d/H`` against one head of ``d``
``length_ratio``          cost ratio of attention between two lengths
``linear_attention_ops``  matmul FLOPs of linear attention, O(T·r·d), beside softmax's O(T²·d)
``decode_step``           compute, memory traffic and intensity of one decoding step
========================  =====================================================================
"""

from .architecture import FFN_KINDS, NORM_KINDS, POSITION_KINDS, Architecture, head_layouts
from .chinchilla import ChinchillaOptimum, chinchilla, hoffmann_loss
from .decode import DecodeStep, decode_layouts, decode_step
from .figures import Figures, Part
from .flops import FlopCount, flops, flops_from_params, training_flops
from .kv_cache import DTYPE_BYTES, KVCacheSize, dtype_bytes, kv_cache, kv_cache_layouts
from .linear import LinearAttentionOps, feature_dim, linear_attention_ops
from .ops import AttentionOps, HeadSplit, LengthRatio, attention_ops, head_split, length_ratio
from .params import (
    AttentionParams,
    ParamCount,
    attention_params,
    count_params,
    rule_of_thumb_params,
)

__all__ = [
    "DTYPE_BYTES",
    "FFN_KINDS",
    "NORM_KINDS",
    "POSITION_KINDS",
    "Architecture",
    "AttentionOps",
    "AttentionParams",
    "ChinchillaOptimum",
    "DecodeStep",
    "Figures",
    "FlopCount",
    "HeadSplit",
    "KVCacheSize",
    "LengthRatio",
    "LinearAttentionOps",
    "ParamCount",
    "Part",
    "attention_ops",
    "attention_params",
    "chinchilla",
    "count_params",
    "decode_layouts",
    "decode_step",
    "dtype_bytes",
    "feature_dim",
    "flops",
    "flops_from_params",
    "head_layouts",
    "head_split",
    "hoffmann_loss",
    "kv_cache",
    "kv_cache_layouts",
    "length_ratio",
    "linear_attention_ops",
    "rule_of_thumb_params",
    "training_flops",
]
