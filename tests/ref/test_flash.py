"""The NumPy FlashAttention-2 against the plain NumPy reference (forward and backward)."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import ref
from attnlab.ref.flash import flash_attention_backward, flash_attention_forward


def _causal(seq_q, seq_k, align):
    offset = 0 if align == "top_left" else seq_k - seq_q
    return np.arange(seq_k)[None, :] <= np.arange(seq_q)[:, None] + offset


@settings(max_examples=40)
@given(
    batch=st.integers(1, 3),
    seq_q=st.integers(1, 11),
    seq_k=st.integers(1, 11),
    d_k=st.integers(1, 6),
    d_v=st.integers(1, 6),
    block_q=st.integers(1, 5),
    block_k=st.integers(1, 5),
    causal=st.sampled_from([None, "top_left", "bottom_right"]),
    seed=st.integers(0, 10_000),
)
def test_matches_plain_reference(batch, seq_q, seq_k, d_k, d_v, block_q, block_k, causal, seed):
    rng = np.random.default_rng(seed)
    Q, K = rng.standard_normal((batch, seq_q, d_k)), rng.standard_normal((batch, seq_k, d_k))
    V, dO = rng.standard_normal((batch, seq_k, d_v)), rng.standard_normal((batch, seq_q, d_v))
    options = {"block_q": block_q, "block_k": block_k}
    if causal:
        options |= {"causal": True, "causal_align": causal}
    mask = _causal(seq_q, seq_k, causal) if causal else None

    out, L = flash_attention_forward(Q, K, V, **options)
    expected = ref.attention(Q, K, V) if mask is None else ref.masked_attention(Q, K, V, mask)
    assert np.abs(out - expected).max() <= 1e-12

    scores = ref.attention_scores(Q, K, mask)  # the log-sum-exp of each query's scores
    row_max = scores.max(axis=-1)
    with np.errstate(invalid="ignore"):  # rows with nothing to attend: −inf − −inf
        lse = row_max + np.log(np.exp(scores - row_max[..., None]).sum(axis=-1))
    empty = np.isneginf(row_max)
    assert np.all(np.isneginf(L[empty]))
    assert np.abs(L[~empty] - lse[~empty]).max(initial=0.0) <= 1e-12

    grads = flash_attention_backward(Q, K, V, out, L, dO, **options)
    for mine, theirs in zip(grads, ref.attention_backward(Q, K, V, dO, mask), strict=True):
        assert mine.shape == theirs.shape
        assert np.abs(mine - theirs).max() <= 1e-10


def test_broadcast_batch_dims_and_scale():
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((2, 3, 7, 4))  # [batch, heads, seq_q, d]
    K, V = rng.standard_normal((3, 6, 4)), rng.standard_normal((3, 6, 5))  # shared over batch
    dO = rng.standard_normal((2, 3, 7, 5))
    out, L = flash_attention_forward(Q, K, V, scale=0.7, block_q=3, block_k=4)
    assert np.abs(out - ref.attention(Q, K, V, scale=0.7)).max() <= 1e-12
    grads = flash_attention_backward(Q, K, V, out, L, dO, scale=0.7, block_q=3, block_k=4)
    expected = ref.attention_backward(Q, K, V, dO, scale=0.7)
    for mine, theirs in zip(grads, expected, strict=True):
        assert mine.shape == theirs.shape
        assert np.abs(mine - theirs).max() <= 1e-10


def test_no_key_visible_gives_zero_output_and_gradient():
    rng = np.random.default_rng(1)
    Q, K, V = rng.standard_normal((6, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    out, L = flash_attention_forward(Q, K, V, causal=True, causal_align="bottom_right", block_q=4)
    dQ, _, _ = flash_attention_backward(
        Q, K, V, out, L, np.ones_like(out), causal=True, causal_align="bottom_right", block_q=4
    )
    assert np.all(out[:4] == 0) and np.all(np.isneginf(L[:4])) and np.all(dQ[:4] == 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_q": 0}, "block_q: expected a positive integer, got 0"),
        ({"block_k": -1}, "block_k: expected a positive integer, got -1"),
        ({"causal_align": "middle"}, "causal_align: expected one of"),
    ],
)
def test_bad_options_name_the_argument(kwargs, match):
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match=match):
        flash_attention_forward(X, X, X, **kwargs)
    with pytest.raises(ValueError, match=match):
        flash_attention_backward(X, X, X, X, np.zeros(3), X, **kwargs)


def test_backward_checks_saved_shapes():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"L: expected shape \(3,\)"):
        flash_attention_backward(X, X, X, X, np.zeros(4), X)


def test_imports_no_torch():
    code = "import sys, attnlab.ref.flash; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
