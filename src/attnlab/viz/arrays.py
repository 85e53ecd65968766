"""Input checks shared by the figures and the head view: arrays and tokens in, clear errors out.

The viewers accept what a capture produces without importing the capture code: NumPy arrays,
anything with ``__array__`` (a CPU tensor, detached or not), bertviz-style lists of per-layer
``(1, heads, seq_q, seq_k)`` arrays, and record-like objects with ``.tokens``, ``.weights``,
``.causal`` and ``.model_name`` attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_array(name: str, value, ndim: int) -> np.ndarray:
    """``value`` as a finite float64 array with ``ndim`` dimensions, or a ValueError naming it."""
    if hasattr(value, "detach"):  # a tensor that may require grad or live on another device
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: expected an array of numbers, got {type(value).__name__}"
        ) from None
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values, found NaN or infinity")
    return array


def as_weights(name: str, value) -> np.ndarray:
    """Attention weights as ``(layers, heads, seq_q, seq_k)`` float64.

    A sequence of per-layer arrays is stacked, each ``(heads, seq_q, seq_k)`` or, as Hugging Face
    returns them, ``(1, heads, seq_q, seq_k)``.
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}: expected at least one layer, got an empty sequence")
        layers = [as_array(f"{name}[{i}]", layer, np.ndim(layer)) for i, layer in enumerate(value)]
        layers = [
            layer[0] if layer.ndim == 4 and layer.shape[0] == 1 else layer for layer in layers
        ]
        shapes = {layer.shape for layer in layers}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(
                f"{name}: expected per-layer arrays of one shape (heads, seq_q, seq_k) "
                f"or (1, heads, seq_q, seq_k), got shapes {sorted(shapes)}"
            )
        value = np.stack(layers)
    weights = as_array(name, value, 4)
    if weights.min() < -1e-6 or weights.max() > 1 + 1e-6:
        raise ValueError(
            f"{name}: expected attention probabilities in [0, 1], got values from "
            f"{weights.min():.4g} to {weights.max():.4g}"
        )
    return np.clip(weights, 0.0, 1.0)


def as_tokens(name: str, tokens, length: int | None = None) -> list[str]:
    """A list of strings; with ``length``, exactly that many."""
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name}: expected a list of strings, got {type(tokens).__name__}")
    bad = [i for i, token in enumerate(tokens) if not isinstance(token, str)]
    if bad:
        raise TypeError(
            f"{name}: expected strings, item {bad[0]} is {type(tokens[bad[0]]).__name__}"
        )
    if length is not None and len(tokens) != length:
        raise ValueError(
            f"{name}: expected {length} tokens to match the weights, got {len(tokens)}"
        )
    return list(tokens)


def is_record(value) -> bool:
    """True for a record-like object: one that carries its tokens and weights as attributes."""
    return hasattr(value, "tokens") and hasattr(value, "weights")


def unpack_record(record) -> tuple[list[str], np.ndarray, bool, str]:
    """``(tokens, weights (L, H, T, T), causal, model_name)`` read from a record-like object."""
    weights = as_weights("record.weights", record.weights)
    if weights.shape[-2] != weights.shape[-1]:
        raise ValueError(
            f"record.weights: expected self-attention (seq_q == seq_k), got shape {weights.shape}"
        )
    tokens = as_tokens("record.tokens", record.tokens, weights.shape[-1])
    return (
        tokens,
        weights,
        bool(getattr(record, "causal", False)),
        str(getattr(record, "model_name", "")),
    )


def check_index(name: str, index: int, size: int) -> int:
    """A layer or head index in ``range(size)``; negative counts from the end, as in Python."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(index).__name__}")
    if not -size <= index < size:
        raise ValueError(f"{name}: expected 0 to {size - 1} (or −1 for the last), got {index}")
    return int(index) % size


def causal_blank(seq_q: int, seq_k: int) -> np.ndarray:
    """Bool ``(seq_q, seq_k)``: True where a causal model cannot look (key j > query i).

    Top-left aligned, as ``is_causal=True`` in torch and ``attnlab.functional.causal_mask``.
    """
    return np.triu(np.ones((seq_q, seq_k), dtype=bool), k=1)
