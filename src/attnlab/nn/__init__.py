"""Attention modules with parameters; they call :mod:`attnlab.functional` for the math."""

from .attention import MultiHeadAttention
from .cache import KVCache, LayerKVCache
from .positions import (
    ALiBi,
    LearnedPositions,
    RelativePositions,
    RotaryEmbedding,
    SinusoidalPositions,
)

__all__ = [
    "ALiBi",
    "KVCache",
    "LayerKVCache",
    "LearnedPositions",
    "MultiHeadAttention",
    "RelativePositions",
    "RotaryEmbedding",
    "SinusoidalPositions",
]
