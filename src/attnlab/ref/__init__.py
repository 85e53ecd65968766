"""The NumPy reference: attention written to be read next to the textbook.

Every torch path in attnlab is tested against these functions. They import nothing but NumPy,
take batch-first ``[batch, seq, d]`` arrays (unbatched ``[seq, d]`` works too) and keep the
exercise signatures of the attention chapter. :mod:`attnlab.ref.autograd` is a small
reverse-mode autograd on NumPy arrays, and :mod:`attnlab.ref.transformer` builds multi-head
attention and a Pre-LN block on it, their gradients taken by the autograd.
"""

from . import autograd, transformer
from .attention import (
    argmax_attention,
    attention,
    attention_scores,
    attention_weights,
    create_causal_mask,
    masked_attention,
    softmax,
)
from .backward import attention_backward, attention_backward_from_cache, attention_forward
from .flash import flash_attention_backward, flash_attention_forward
from .mha import MultiHeadAttention
from .positions import positional_encoding
from .relative import relative_attention, relative_shift

__all__ = [
    "MultiHeadAttention",
    "argmax_attention",
    "attention",
    "attention_backward",
    "attention_backward_from_cache",
    "attention_forward",
    "attention_scores",
    "attention_weights",
    "autograd",
    "create_causal_mask",
    "flash_attention_backward",
    "flash_attention_forward",
    "masked_attention",
    "positional_encoding",
    "relative_attention",
    "relative_shift",
    "softmax",
    "transformer",
]
