"""Transformer-XL relative attention against the paper's four terms computed one by one."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnlab import ref


def four_terms(Q, K, V, R_by_distance, u, v):
    """Direct evaluation of A_ij = q·k + q·r_{i−j} + u·k + v·r_{i−j}, one pair at a time."""
    seq_q, d = Q.shape
    seq_k = K.shape[0]
    offset = seq_k - seq_q
    out = np.zeros((seq_q, V.shape[1]))
    for i in range(seq_q):
        scores = np.full(seq_k, -np.inf)
        for j in range(i + offset + 1):
            r = R_by_distance[i + offset - j]
            scores[j] = (Q[i] @ K[j] + Q[i] @ r + u @ K[j] + v @ r) / np.sqrt(d)
        weights = np.exp(scores - scores.max())
        out[i] = (weights / weights.sum()) @ V
    return out


@given(
    seq_q=st.integers(1, 6), memory=st.integers(0, 4), d=st.integers(1, 6), seed=st.integers(0, 999)
)
def test_matches_the_four_terms(seq_q, memory, d, seed):
    rng = np.random.default_rng(seed)
    seq_k = seq_q + memory
    Q, K, V = (
        rng.standard_normal((seq_q, d)),
        rng.standard_normal((seq_k, d)),
        rng.standard_normal((seq_k, 3)),
    )
    R_by_distance = rng.standard_normal((seq_k, d))  # row r: distance r
    u, v = rng.standard_normal(d), rng.standard_normal(d)
    pos_embed = R_by_distance[::-1]  # Transformer-XL order: row m is distance seq_k − 1 − m
    out = ref.relative_attention(Q, K, V, pos_embed, u, v)
    assert np.abs(out - four_terms(Q, K, V, R_by_distance, u, v)).max() <= 1e-12
    batched = ref.relative_attention(Q[None], K[None], V[None], pos_embed, u, v)
    assert np.abs(batched[0] - out).max() <= 1e-15


def test_relative_shift_moves_distances_into_place():
    x = np.arange(15.0).reshape(3, 5)
    shifted = ref.relative_shift(x)
    for i in range(3):
        for j in range(i + 2 + 1):
            assert shifted[i, j] == x[i, j + 3 - 1 - i]


def test_without_positions_it_is_causal_attention():
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    zeros = np.zeros(4)
    out = ref.relative_attention(Q, K, V, np.zeros((5, 4)), zeros, zeros)
    expected = ref.masked_attention(Q, K, V, ref.create_causal_mask(5))
    assert np.abs(out - expected).max() <= 1e-15


def test_bad_input():
    Q = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"pos_embed: expected shape \(3, 4\), got \(2, 4\)"):
        ref.relative_attention(Q, Q, Q, np.ones((2, 4)), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"u: expected shape \(4,\)"):
        ref.relative_attention(Q, Q, Q, np.ones((3, 4)), np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="seq_k ≥ seq_q"):
        ref.relative_attention(Q, Q[:2], Q[:2], np.ones((2, 4)), np.zeros(4), np.zeros(4))
