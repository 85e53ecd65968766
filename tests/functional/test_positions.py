"""Positional functions against the NumPy reference, closed forms and hand-worked values."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab import ref
from attnlab.functional import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    causal_mask,
    padding_mask,
    relative_attention,
    relative_position_scores,
    relative_shift,
    rope_angles,
    sinusoidal_encoding,
)
from helpers import max_abs, randn

# --- sinusoidal --------------------------------------------------------------------------


@given(seq_len=st.integers(1, 40), d_model=st.integers(1, 33))
def test_sinusoidal_matches_the_reference(seq_len, d_model):
    encoding = sinusoidal_encoding(seq_len, d_model, dtype=torch.float64)
    assert encoding.shape == (seq_len, d_model)
    assert max_abs(encoding, ref.positional_encoding(seq_len, d_model)) <= 1e-12


def test_sinusoidal_hand_values():
    # Seed 004, exercise 13.15: d_model = 4.
    pe = sinusoidal_encoding(2, 4, dtype=torch.float64)
    assert pe[0, 0] == 0.0 and pe[0, 1] == 1.0
    assert pe[1, 0] == pytest.approx(math.sin(1.0), abs=1e-15)
    assert pe[1, 1] == pytest.approx(math.cos(1.0), abs=1e-15)
    assert pe[1, 2] == pytest.approx(math.sin(1 / 100), abs=1e-15)  # 10000^(2/4) = 100
    assert pe[1, 3] == pytest.approx(math.cos(1 / 100), abs=1e-15)
    big = sinusoidal_encoding(10, 512, dtype=torch.float64)
    for pos, i in [(7, 3), (9, 100), (5, 255)]:
        angle = pos / 10000 ** (2 * i / 512)
        assert big[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-14)
        assert big[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-14)


def test_sinusoidal_offset_base_and_dtype():
    full = sinusoidal_encoding(12, 7, dtype=torch.float64, base=500.0)
    shifted = sinusoidal_encoding(4, 7, offset=8, base=500.0, dtype=torch.float64)
    assert torch.equal(shifted, full[8:])
    assert full[3, 2] == pytest.approx(math.sin(3 / 500 ** (2 / 7)), abs=1e-15)
    assert sinusoidal_encoding(3, 4).dtype == torch.float32
    half = sinusoidal_encoding(3, 4, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


# --- RoPE --------------------------------------------------------------------------------


def test_rope_angles_closed_form():
    cos, sin = rope_angles(5, 6, offset=2, base=100.0, dtype=torch.float64)
    assert cos.shape == sin.shape == (5, 3)
    for row in range(5):
        for i in range(3):
            angle = (row + 2) * 100.0 ** (-2 * i / 6)
            assert cos[row, i] == pytest.approx(math.cos(angle), abs=1e-15)
            assert sin[row, i] == pytest.approx(math.sin(angle), abs=1e-15)


def test_rope_rotation_matrix_of_the_first_pair():
    # Seed 004, exercise 13.16: θ_0 = 1, so dims (q0, q1) at position m turn by the angle m.
    q = randn(1, 8)
    for m in [0, 1, 5, 37]:
        out = apply_rope(q, offset=m, interleaved=True)[0, :2]
        rotation = torch.tensor(
            [[math.cos(m), -math.sin(m)], [math.sin(m), math.cos(m)]], dtype=torch.float64
        )
        assert max_abs(out, rotation @ q[0, :2]) <= 1e-15


@given(seq=st.integers(1, 7), half=st.integers(1, 6), offset=st.integers(0, 50), seed=st.integers())
def test_rope_conventions_differ_by_a_permutation(seq, half, offset, seed):
    x = randn(2, 3, seq, 2 * half, seed=seed % 2**31)
    # Interleaved pair i = dims (2i, 2i+1); moving them to (i, i + half) gives the half-split.
    to_half_split = torch.cat([torch.arange(0, 2 * half, 2), torch.arange(1, 2 * half, 2)])
    interleaved = apply_rope(x, offset=offset, interleaved=True)
    half_split = apply_rope(x[..., to_half_split], offset=offset, interleaved=False)
    assert max_abs(half_split, interleaved[..., to_half_split]) <= 1e-12


@pytest.mark.parametrize("interleaved", [True, False])
def test_rope_preserves_the_norm_of_each_pair(interleaved):
    x = randn(2, 4, 9, 10)
    out = apply_rope(x, offset=3, interleaved=interleaved)

    def pair_norms(t):
        if interleaved:
            return t.unflatten(-1, (5, 2)).norm(dim=-1)
        return torch.hypot(t[..., :5], t[..., 5:])

    assert max_abs(pair_norms(out), pair_norms(x)) <= 1e-12


@pytest.mark.parametrize("interleaved", [True, False])
@given(
    m=st.integers(0, 200), n=st.integers(0, 200), half=st.integers(1, 8), seed=st.integers(0, 99)
)
def test_rope_score_depends_only_on_the_offset(interleaved, m, n, half, seed):
    # Seed 004, exercise 13.27: R_mᵀ R_n = R_{n−m}.
    q, k = randn(1, 2 * half, seed=seed), randn(1, 2 * half, seed=seed + 1000)

    def score(a, b):
        rotated_q = apply_rope(q, offset=a, interleaved=interleaved)
        rotated_k = apply_rope(k, offset=b, interleaved=interleaved)
        return float(rotated_q[0] @ rotated_k[0])

    for shift in [1, 7, 50, 1000]:
        assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-10)


@pytest.mark.parametrize("interleaved", [True, False])
def test_rope_offset_is_the_row_of_a_full_application(interleaved):
    x = randn(3, 11, 8)
    full = apply_rope(x, interleaved=interleaved)
    for p in [0, 4, 10]:
        one = apply_rope(x[:, p : p + 1], offset=p, interleaved=interleaved)
        assert max_abs(one, full[:, p : p + 1]) <= 1e-15
    assert max_abs(apply_rope(x[:, 6:], offset=6, interleaved=interleaved), full[:, 6:]) <= 1e-15


def test_rope_interleaved_against_complex_multiplication():
    seq, head_dim, offset, base = 13, 12, 5, 1000.0
    x = randn(2, 3, seq, head_dim)
    theta = torch.tensor(
        [base ** (-2 * i / head_dim) for i in range(head_dim // 2)], dtype=torch.float64
    )
    position = torch.arange(offset, offset + seq, dtype=torch.float64)
    turn = torch.polar(
        torch.ones(seq, head_dim // 2, dtype=torch.float64), position[:, None] * theta
    )
    as_complex = torch.view_as_complex(x.unflatten(-1, (head_dim // 2, 2)).contiguous())
    expected = torch.view_as_real(as_complex * turn).flatten(-2)
    assert max_abs(apply_rope(x, offset=offset, base=base, interleaved=True), expected) <= 1e-12


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rope_low_precision_is_rounded_once(dtype):
    x = randn(2, 40, 16).to(dtype)
    out = apply_rope(x, offset=1000)
    assert out.dtype == dtype
    assert torch.equal(out, apply_rope(x.float(), offset=1000).to(dtype))


# --- ALiBi -------------------------------------------------------------------------------


def slopes_by_closed_form(n):
    """Press et al. (2022), section 3: for c = 2^⌊log2 n⌋ heads the slopes are 2^(−8k/c),
    k = 1…c; the remaining n − c heads take the odd-k slopes 2^(−8k/2c) of the 2c sequence."""
    c = 2 ** math.floor(math.log2(n))
    first = [2 ** (-8 * k / c) for k in range(1, c + 1)]
    rest = [2 ** (-8 * k / (2 * c)) for k in range(1, 2 * c + 1, 2)]
    return first + rest[: n - c]


def test_alibi_slopes_hand_values():
    assert alibi_slopes(8).tolist() == [2.0**-k for k in range(1, 9)]
    # 6 heads: the 4-head slopes, then indices 0 and 2 of the 8-head slopes.
    assert alibi_slopes(6).tolist() == [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    assert alibi_slopes(1).tolist() == [2**-8]
    # 12 heads: the 8-head slopes 2^-k, then 2^(-k/2) for k = 1, 3, 5, 7 from the 16-head ones.
    twelve = alibi_slopes(12, dtype=torch.float64).tolist()
    expected = [2.0**-k for k in range(1, 9)] + [2.0 ** (-k / 2) for k in (1, 3, 5, 7)]
    assert twelve == pytest.approx(expected, rel=1e-15)


def test_alibi_slopes_match_the_closed_form():
    for n in range(1, 70):
        assert alibi_slopes(n, dtype=torch.float64).tolist() == pytest.approx(
            slopes_by_closed_form(n), rel=1e-14
        )


def test_alibi_bias_values_and_alignment():
    n, T = 4, 9
    slopes = alibi_slopes(n, dtype=torch.float64)
    full = alibi_bias(n, T, T, dtype=torch.float64)
    assert full.shape == (n, T, T)
    for h, i, j in [(0, 5, 2), (3, 8, 0), (2, 4, 4), (1, 2, 6)]:
        assert full[h, i, j] == -slopes[h] * (i - j)
    assert bool((full[:, causal_mask(T)] <= 0).all())
    assert bool((full[:, ~causal_mask(T)] > 0).all())  # future keys: removed by the mask
    for m in [1, 3, T]:
        assert torch.equal(alibi_bias(n, m, T, dtype=torch.float64), full[:, T - m :])
    assert alibi_bias(3, 2, 5).dtype == torch.float32


# --- Transformer-XL ----------------------------------------------------------------------


@given(
    lead=st.lists(st.integers(1, 3), max_size=2),
    seq_q=st.integers(1, 7),
    seq_k=st.integers(1, 9),
    seed=st.integers(0, 999),
)
def test_relative_shift_matches_the_reference(lead, seq_q, seq_k, seed):
    x = randn(*lead, seq_q, seq_k, seed=seed)
    assert torch.equal(relative_shift(x), torch.from_numpy(ref.relative_shift(x.numpy())))


def test_relative_position_scores_by_definition():
    batch, heads, seq_q, seq_k, d = 2, 3, 4, 7, 5
    q, pos_embed, v = randn(batch, heads, seq_q, d), randn(heads, seq_k, d, seed=1), randn(heads, d)
    scores = relative_position_scores(q, pos_embed, v)
    assert scores.shape == (batch, heads, seq_q, seq_k)
    for b in range(batch):
        for h in range(heads):
            for i in range(seq_q):
                for j in range(i + seq_k - seq_q + 1):
                    distance = i + seq_k - seq_q - j
                    expected = (q[b, h, i] + v[h]) @ pos_embed[h, seq_k - 1 - distance]
                    assert float(scores[b, h, i, j]) == pytest.approx(float(expected), abs=1e-12)


def xl_inputs(batch, heads, seq_q, seq_k, d, d_value=3, seed=0):
    return (
        randn(batch, heads, seq_q, d, seed=seed),
        randn(batch, heads, seq_k, d, seed=seed + 1),
        randn(batch, heads, seq_k, d_value, seed=seed + 2),
        randn(heads, seq_k, d, seed=seed + 3),
        randn(heads, d, seed=seed + 4),
        randn(heads, d, seed=seed + 5),
    )


def reference_by_head(q, k, v, pos_embed, u, bias_v, mask=None, factor=1.0):
    out = np.zeros((*q.shape[:-1], v.shape[-1]))
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            out[b, h] = ref.relative_attention(
                factor * q[b, h].numpy(),
                k[b, h].numpy(),
                v[b, h].numpy(),
                pos_embed[h].numpy(),
                factor * u[h].numpy(),
                factor * bias_v[h].numpy(),
                mask=None if mask is None else mask[b, 0].numpy(),
            )
    return out


@pytest.mark.parametrize("memory", [0, 1, 4])
@given(seq_q=st.integers(1, 6), d=st.integers(1, 6), seed=st.integers(0, 999))
def test_relative_attention_matches_the_reference(memory, seq_q, d, seed):
    inputs = xl_inputs(2, 3, seq_q, seq_q + memory, d, seed=seed)
    out = relative_attention(*inputs)
    assert out.shape == (2, 3, seq_q, 3)
    assert max_abs(out, reference_by_head(*inputs)) <= 1e-12


def test_relative_attention_with_a_mask_and_a_scale():
    inputs = xl_inputs(2, 3, 4, 6, 5)
    keep = padding_mask([6, 4], 6)  # (batch, 1, 1, seq_k)
    expected = reference_by_head(*inputs, mask=keep.expand(2, 1, 4, 6))
    assert max_abs(relative_attention(*inputs, attn_mask=keep), expected) <= 1e-12
    additive = torch.zeros(2, 1, 1, 6, dtype=torch.float64).masked_fill(~keep, float("-inf"))
    assert max_abs(relative_attention(*inputs, attn_mask=additive), expected) <= 1e-12
    # A scale s is the reference's 1/√d applied to queries and biases scaled by s·√d.
    scale = 0.3
    expected = reference_by_head(*inputs, factor=scale * math.sqrt(5))
    assert max_abs(relative_attention(*inputs, scale=scale), expected) <= 1e-12


def test_relative_attention_gradcheck():
    inputs = tuple(t.requires_grad_() for t in xl_inputs(1, 2, 3, 4, 3, d_value=2))
    assert torch.autograd.gradcheck(relative_attention, inputs)


# --- bad input ---------------------------------------------------------------------------

X = randn(2, 3, 4, 6)
XL = xl_inputs(1, 2, 3, 5, 4)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: sinusoidal_encoding(0, 4), ValueError, ["seq_len", "positive", "0"]),
        (lambda: sinusoidal_encoding(3, 4, offset=-1), ValueError, ["offset", "-1"]),
        (lambda: sinusoidal_encoding(3, 4, base=0.0), ValueError, ["base", "0.0"]),
        (lambda: sinusoidal_encoding(3, 4, dtype=torch.int64), TypeError, ["dtype", "int64"]),
        (lambda: rope_angles(3, 5), ValueError, ["head_dim", "even", "5"]),
        (lambda: apply_rope(randn(3, 5)), ValueError, ["x", "even", "(3, 5)"]),
        (lambda: apply_rope(X.long()), TypeError, ["x", "floating-point", "int64"]),
        (lambda: apply_rope(X, base="big"), TypeError, ["base", "str"]),
        (lambda: apply_rope(X, interleaved=1), TypeError, ["interleaved", "int"]),
        (lambda: alibi_slopes(0), ValueError, ["n_heads", "0"]),
        (lambda: alibi_bias(2, 3, 2.5), ValueError, ["seq_k", "2.5"]),
        (lambda: relative_shift(randn(4)), ValueError, ["x", "2 dims", "(4,)"]),
        (
            lambda: relative_position_scores(X, randn(3, 3, 6), randn(3, 6)),
            ValueError,
            ["pos_embed", "seq_k ≥ seq_q=4", "(3, 3, 6)"],
        ),
        (
            lambda: relative_position_scores(X, randn(3, 5, 6), randn(6)),
            ValueError,
            ["bias_v", "(3, 6)", "(6,)"],
        ),
        (
            lambda: relative_position_scores(X, randn(3, 5, 6).float(), randn(3, 6)),
            TypeError,
            ["pos_embed", "float64", "float32"],
        ),
        (
            lambda: relative_attention(*XL[:3], randn(2, 4, 4), *XL[4:]),
            ValueError,
            ["pos_embed", "seq_k=5", "(2, 4, 4)"],
        ),
        (
            lambda: relative_attention(XL[1], XL[0], XL[0], *XL[3:]),
            ValueError,
            ["key", "seq_k ≥ seq_q=5"],
        ),
        (
            lambda: relative_attention(*XL[:4], randn(4), XL[5]),
            ValueError,
            ["bias_u", "(2, 4)", "(4,)"],
        ),
        (
            lambda: relative_attention(*XL, attn_mask=torch.ones(4, 5, dtype=torch.bool)),
            ValueError,
            ["attn_mask", "(4, 5)"],
        ),
        (lambda: relative_attention(*XL, scale="x"), TypeError, ["scale", "str"]),
    ],
)
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
