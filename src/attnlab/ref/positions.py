"""Sinusoidal positional encoding in NumPy (Vaswani et al., 2017, section 3.5)."""

from __future__ import annotations

import numpy as np


def positional_encoding(seq_len: int, d_model: int) -> np.ndarray:
    """Sinusoidal positional encoding.

    ``PE(pos, 2i) = sin(pos / 10000^(2i/d_model))`` and
    ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))``. Each pair of columns is a rotation at
    its own frequency, so ``PE(pos + k)`` is a fixed linear map of ``PE(pos)``. An odd
    ``d_model`` keeps the last sine column without its cosine partner.

    Returns:
        encoding ``[seq_len, d_model]``
    """
    for name, value in (("seq_len", seq_len), ("d_model", d_model)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    position = np.arange(seq_len)[:, None]  # [seq_len, 1]
    two_i = np.arange(0, d_model, 2)  # the even column indices 2i
    angle = position / np.power(10000.0, two_i / d_model)  # [seq_len, ceil(d_model / 2)]
    encoding = np.zeros((seq_len, d_model))
    encoding[:, 0::2] = np.sin(angle)
    encoding[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return encoding
