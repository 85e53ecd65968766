"""Attention modules with parameters; they call :mod:`attnlab.functional` for the math."""

from .attention import MultiHeadAttention
from .blocks import Block, FeedForward, RMSNorm
from .cache import KVCache, LayerKVCache, LayerLinearState, LinearStateCache
from .encoder import Encoder, EncoderConfig
from .gpt import GPT, GPTConfig
from .positions import (
    ALiBi,
    LearnedPositions,
    RelativePositions,
    RotaryEmbedding,
    SinusoidalPositions,
)
from .seq2seq import CrossAttentionBlock, EncoderDecoder, EncoderDecoderConfig
from .speculative import SpeculativeStats, speculative_generate, verify_proposals

__all__ = [
    "GPT",
    "ALiBi",
    "Block",
    "CrossAttentionBlock",
    "Encoder",
    "EncoderConfig",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "FeedForward",
    "GPTConfig",
    "KVCache",
    "LayerKVCache",
    "LayerLinearState",
    "LearnedPositions",
    "LinearStateCache",
    "MultiHeadAttention",
    "RMSNorm",
    "RelativePositions",
    "RotaryEmbedding",
    "SinusoidalPositions",
    "SpeculativeStats",
    "speculative_generate",
    "verify_proposals",
]
