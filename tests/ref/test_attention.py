"""attnlab.ref against torch: forward, masks, softmax, multi-head, positions, validation."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlab import ref
from helpers import max_abs


def _rng_arrays(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def test_reference_imports_no_torch():
    code = "import sys, attnlab.ref; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@given(
    batch=st.integers(1, 3),
    seq_q=st.integers(1, 8),
    seq_k=st.integers(1, 8),
    d_k=st.integers(1, 10),
    d_v=st.integers(1, 10),
    seed=st.integers(0, 10_000),
    unbatched=st.booleans(),
)
def test_attention_matches_torch(batch, seq_q, seq_k, d_k, d_v, seed, unbatched):
    shapes = [(batch, seq_q, d_k), (batch, seq_k, d_k), (batch, seq_k, d_v)]
    if unbatched:
        shapes = [s[1:] for s in shapes]
    Q, K, V = _rng_arrays(seed, *shapes)
    expected = F.scaled_dot_product_attention(*map(torch.from_numpy, (Q, K, V)))
    out = ref.attention(Q, K, V)
    assert out.shape == expected.shape
    assert max_abs(out, expected) <= 1e-12


@given(seq=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_masked_attention_with_the_causal_mask_matches_torch(seq, seed):
    Q, K, V = _rng_arrays(seed, (2, seq, 4), (2, seq, 4), (2, seq, 3))
    mask = ref.create_causal_mask(seq)
    expected = F.scaled_dot_product_attention(*map(torch.from_numpy, (Q, K, V)), is_causal=True)
    assert max_abs(ref.masked_attention(Q, K, V, mask), expected) <= 1e-12
    assert max_abs(ref.masked_attention(Q, K, V, mask == 0), expected) <= 1e-12  # boolean form


def test_create_causal_mask_values():
    mask = ref.create_causal_mask(3)
    assert mask.shape == (3, 3)
    assert (mask == np.array([[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])).all()
    weights = ref.attention_weights(*_rng_arrays(0, (3, 2), (3, 2)), mask)
    assert (weights[np.triu_indices(3, 1)] == 0).all()  # −inf becomes weight exactly 0


def test_softmax_is_stable_and_handles_empty_rows():
    x = np.array([[1000.0, 1001.0, 999.0], [-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]])
    out = ref.softmax(x)
    expected = torch.softmax(torch.tensor(x[0]), -1).numpy()
    assert np.allclose(out[0], expected, atol=1e-15, rtol=0)
    assert (out[1] == 0).all()
    assert np.allclose(out[2], [0.5, 0, 0.5])
    assert np.isfinite(out).all()


def test_weight_rows_sum_to_one():
    Q, K = _rng_arrays(3, (4, 6, 5), (4, 9, 5))
    assert np.allclose(ref.attention_weights(Q, K).sum(-1), 1.0, atol=1e-14, rtol=0)


def test_scale_argument():
    Q, K, V = _rng_arrays(1, (3, 4), (5, 4), (5, 2))
    expected = F.scaled_dot_product_attention(*map(torch.from_numpy, (Q, K, V)), scale=1.0)
    assert max_abs(ref.attention(Q, K, V, scale=1.0), expected) <= 1e-12


def test_same_token_in_two_contexts_gets_two_outputs():
    """Keys decide where to look, values what to return: one query, two contexts, two outputs."""
    token = np.array([[1.0, 0.5]])
    context_a = np.array([[1.0, 0.5], [2.0, -1.0]])
    context_b = np.array([[1.0, 0.5], [-2.0, 1.0]])
    out_a = ref.attention(token, context_a, context_a)
    out_b = ref.attention(token, context_b, context_b)
    assert not np.allclose(out_a, out_b)


def test_multi_head_matches_torch_multihead_attention():
    d_model, n_heads = 16, 4
    mha = ref.MultiHeadAttention(d_model, n_heads, seed=3)
    theirs = torch.nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True).double()
    with torch.no_grad():  # torch computes x @ W.T; the reference x @ W
        in_proj = np.concatenate([mha.W_q, mha.W_k, mha.W_v], axis=1).T
        theirs.in_proj_weight.copy_(torch.from_numpy(in_proj))
        theirs.out_proj.weight.copy_(torch.from_numpy(mha.W_o.T))
    x = np.random.default_rng(0).standard_normal((2, 7, d_model))
    causal = ref.create_causal_mask(7)
    for mask, torch_mask in ((None, None), (causal, torch.from_numpy(causal))):
        out, weights = theirs(
            *[torch.from_numpy(x)] * 3, attn_mask=torch_mask, average_attn_weights=False
        )
        assert max_abs(mha.forward(x, mask), out) <= 1e-12
        assert max_abs(mha.attention_weights, weights) <= 1e-12
    assert mha(x[0]).shape == (7, d_model)  # unbatched


def test_multi_head_per_head_weights_rebuild_the_output():
    mha = ref.MultiHeadAttention(12, 3, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 5, 12))
    heads = []
    for h in range(3):
        w = mha.head_weights(h)
        heads.append(ref.attention(x @ w["W_q"], x @ w["W_k"], x @ w["W_v"]) @ w["W_o"])
    assert np.allclose(sum(heads), mha.forward(x), atol=1e-15, rtol=0)
    assert mha.attention_weights.shape == (1, 3, 5, 5)
    # seed makes the weights reproducible; weights are drawn as randn · 0.02
    assert np.array_equal(ref.MultiHeadAttention(12, 3, seed=0).W_q, mha.W_q)
    assert abs(mha.W_q.std() - 0.02) < 0.005


def test_positional_encoding_closed_form():
    pe = ref.positional_encoding(50, 7)
    assert pe.shape == (50, 7)
    for pos in (0, 1, 17, 49):
        for col in range(7):
            i = col // 2
            angle = pos / 10000 ** (2 * i / 7)
            expected = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert abs(pe[pos, col] - expected) < 1e-12
    assert (ref.positional_encoding(1, 4) == [[0, 1, 0, 1]]).all()


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda: ref.attention(np.ones((2, 3)), np.ones((4, 5)), np.ones((4, 2))),
            ValueError,
            ["Q and K", "(2, 3)", "(4, 5)"],
        ),
        (
            lambda: ref.attention(np.ones((2, 3)), np.ones((4, 3)), np.ones((5, 2))),
            ValueError,
            ["K and V", "(5, 2)"],
        ),
        (
            lambda: ref.attention(np.ones(3), np.ones((4, 3)), np.ones((4, 2))),
            ValueError,
            ["Q", "(3,)"],
        ),
        (
            lambda: ref.attention(np.array([["a"]]), np.ones((1, 1)), np.ones((1, 1))),
            TypeError,
            ["Q", "dtype"],
        ),
        (
            lambda: ref.attention(np.full((1, 1), np.nan), np.ones((1, 1)), np.ones((1, 1))),
            ValueError,
            ["Q", "NaN"],
        ),
        (
            lambda: ref.masked_attention(
                np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 2)), np.zeros((3, 4))
            ),
            ValueError,
            ["mask", "(2, 4)", "(3, 4)"],
        ),
        (lambda: ref.create_causal_mask(0), ValueError, ["seq_len", "0"]),
        (lambda: ref.MultiHeadAttention(10, 3), ValueError, ["n_heads", "d_model=10", "3"]),
        (
            lambda: ref.MultiHeadAttention(12, 3).forward(np.ones((2, 5, 10))),
            ValueError,
            ["x", "12", "(2, 5, 10)"],
        ),
        (lambda: ref.positional_encoding(4, 0), ValueError, ["d_model", "0"]),
    ],
)
def test_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
