"""Attention modules with parameters; they call :mod:`attnlab.functional` for the math."""

from .attention import MultiHeadAttention
from .blocks import Block, FeedForward, RMSNorm
from .cache import KVCache, LayerKVCache, LayerLinearState, LinearStateCache
from .gpt import GPT, GPTConfig
from .positions import (
    ALiBi,
    LearnedPositions,
    RelativePositions,
    RotaryEmbedding,
    SinusoidalPositions,
)

__all__ = [
    "GPT",
    "ALiBi",
    "Block",
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
]
