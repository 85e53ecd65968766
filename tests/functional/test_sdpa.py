"""attnlab.functional.scaled_dot_product_attention against torch's own, over random shapes."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlab.functional import (
    causal_mask,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
    to_additive,
)
from helpers import max_abs, randn

# Per unit of the output's largest magnitude: a few units in the last place of float32 at
# |out| ≈ 2–4 already reach 1e-6.
TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}


@st.composite
def attention_cases(draw, dtype=torch.float64):
    """Random (query, key, value, mask options) covering every broadcastable mask shape."""
    batch = draw(st.integers(1, 3))
    kv_heads = draw(st.integers(1, 3))
    group = draw(st.integers(1, 3))
    heads = kv_heads * group
    seq_q, seq_k = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    head_dim, d_value = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    case = {
        "query": torch.randn(batch, heads, seq_q, head_dim, generator=g, dtype=dtype),
        "key": torch.randn(batch, kv_heads, seq_k, head_dim, generator=g, dtype=dtype),
        "value": torch.randn(batch, kv_heads, seq_k, d_value, generator=g, dtype=dtype),
        "enable_gqa": group > 1 or draw(st.booleans()),
    }
    kind = draw(st.sampled_from(["none", "bool", "float", "float-inf", "causal"]))
    if kind == "causal":
        case["is_causal"] = True
    elif kind != "none":
        full = (batch, heads, seq_q, seq_k)
        keep = draw(st.lists(st.booleans(), min_size=4, max_size=4))
        shape = tuple(size if k else 1 for size, k in zip(full, keep, strict=True))
        shape = shape[draw(st.integers(0, 2)) :]
        if kind == "bool":
            mask = torch.rand(shape, generator=g) > draw(st.sampled_from([0.0, 0.3, 0.7]))
        else:
            mask = torch.randn(shape, generator=g, dtype=dtype)
            if kind == "float-inf":
                mask = mask.masked_fill(torch.rand(shape, generator=g) < 0.4, float("-inf"))
        case["attn_mask"] = mask
    if draw(st.booleans()):
        # In float32, scales above 1 (sharper than the default 1/√d) make torch's own fused
        # result differ from the float64 truth by more than 1e-6, so the 1e-6 comparison is
        # drawn where float32 can hold it; float64 takes sharper scales too.
        case["scale"] = draw(st.floats(0.05, 1.0 if dtype == torch.float32 else 3.0))
    return case


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@given(data=st.data())
def test_both_paths_match_torch(dtype, data):
    case = data.draw(attention_cases(dtype))
    expected = F.scaled_dot_product_attention(**case)
    fused = scaled_dot_product_attention(**case)
    explicit, weights = scaled_dot_product_attention(**case, return_weights=True)
    tolerance = TOLERANCE[dtype] * max(1.0, float(expected.abs().max()))
    assert max_abs(fused, expected) <= tolerance
    assert max_abs(explicit, expected) <= tolerance
    assert not torch.isnan(explicit).any() and not torch.isnan(weights).any()


@given(case=attention_cases())
def test_weight_rows_sum_to_one_or_zero(case):
    _, weights = scaled_dot_product_attention(**case, return_weights=True)
    sums = weights.sum(-1)
    # a row sums to 1, or to 0 when the mask leaves the query nothing to attend to
    assert torch.all(((sums - 1).abs() < 1e-12) | (sums == 0))
    assert torch.all(weights >= 0)


@given(seq=st.integers(2, 10), cut=st.integers(1, 9), seed=st.integers(0, 1000))
def test_causal_output_ignores_future_keys_and_values(seq, cut, seed):
    cut = min(cut, seq - 1)
    q, k, v = (randn(2, 3, seq, 5, seed=seed + i) for i in range(3))
    k2, v2 = k.clone(), v.clone()
    k2[..., cut:, :] = randn(2, 3, seq - cut, 5, seed=seed + 7) * 10
    v2[..., cut:, :] = randn(2, 3, seq - cut, 5, seed=seed + 8) * 10
    for return_weights in (False, True):
        before = scaled_dot_product_attention(
            q, k, v, is_causal=True, return_weights=return_weights
        )
        after = scaled_dot_product_attention(
            q, k2, v2, is_causal=True, return_weights=return_weights
        )
        if return_weights:
            before, after = before[0], after[0]
        assert max_abs(before[..., :cut, :], after[..., :cut, :]) <= 1e-12
        assert max_abs(before[..., cut:, :], after[..., cut:, :]) > 1e-3  # the future did matter


@given(seq=st.integers(1, 10), seed=st.integers(0, 1000))
def test_permuting_inputs_permutes_outputs(seq, seed):
    x = randn(1, 2, seq, 6, seed=seed)
    perm = torch.randperm(seq, generator=torch.Generator().manual_seed(seed))
    out = scaled_dot_product_attention(x, x, x)
    out_perm = scaled_dot_product_attention(x[..., perm, :], x[..., perm, :], x[..., perm, :])
    assert max_abs(out_perm, out[..., perm, :]) <= 1e-12


def test_cross_attention_shapes():
    q, k, v = randn(2, 4, 10, 8), randn(2, 4, 15, 8, seed=1), randn(2, 4, 15, 3, seed=2)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert out.shape == (2, 4, 10, 3) and weights.shape == (2, 4, 10, 15)


def test_gqa_equals_mha_with_repeated_kv_heads():
    q, k, v = randn(2, 6, 5, 4), randn(2, 2, 7, 4, seed=1), randn(2, 2, 7, 3, seed=2)
    repeated = [t.repeat_interleave(3, dim=1) for t in (k, v)]
    expected = scaled_dot_product_attention(q, *repeated)
    assert max_abs(scaled_dot_product_attention(q, k, v, enable_gqa=True), expected) <= 1e-12
    explicit, _ = scaled_dot_product_attention(q, k, v, enable_gqa=True, return_weights=True)
    assert max_abs(explicit, expected) <= 1e-12


@pytest.mark.parametrize("return_weights", [False, True])
def test_query_with_nothing_to_attend_gives_zeros_and_zero_gradient(return_weights):
    q, k, v = (randn(1, 2, 4, 3, seed=i).requires_grad_() for i in range(3))
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[2] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=return_weights)
    out = out[0] if return_weights else out
    assert torch.all(out[..., 2, :] == 0)
    out.sum().backward()
    assert torch.all(q.grad[..., 2, :] == 0)
    assert not any(torch.isnan(t.grad).any() for t in (q, k, v))


def test_masked_softmax_matches_softmax_on_rows_with_a_finite_score():
    scores = randn(3, 5)
    scores[1, :] = float("-inf")
    scores[2, :4] = float("-inf")
    weights = masked_softmax(scores)
    assert torch.all(weights[1] == 0)
    assert max_abs(weights[[0, 2]], torch.softmax(scores[[0, 2]], -1)) <= 1e-15


@pytest.mark.parametrize("dtype", [torch.float64])
@pytest.mark.parametrize("return_weights", [False, True])
def test_gradcheck(dtype, return_weights):
    q, k, v = (randn(1, 2, 3, 4, seed=i).requires_grad_() for i in range(3))
    mask = torch.tensor([[True, False, True], [True, True, True], [False, False, True]])

    def f(q, k, v):
        out = scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=return_weights)
        return out[0] if return_weights else out

    assert torch.autograd.gradcheck(f, (q, k, v))
    kv_heads = [randn(1, 1, 3, 4, seed=5).requires_grad_(), randn(1, 1, 3, 2, seed=6)]
    kv_heads[1].requires_grad_()

    def gqa(q, k, v):
        out = scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=True, return_weights=return_weights
        )
        return out[0] if return_weights else out

    assert torch.autograd.gradcheck(gqa, (q, *kv_heads))


def test_dropout_with_generator_is_reproducible_and_unbiased():
    q, k, v = randn(1, 1, 4, 8), randn(1, 1, 6, 8, seed=1), randn(1, 1, 6, 3, seed=2)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=g)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    _, weights = scaled_dot_product_attention(
        q, k, v, dropout_p=0.5, generator=torch.Generator().manual_seed(3), return_weights=True
    )
    kept = weights != 0
    assert 0 < kept.sum() < kept.numel()  # some weights dropped, some kept at twice their value
    clean = scaled_dot_product_attention(q, k, v, return_weights=True)[1]
    assert max_abs(weights[kept], 2 * clean[kept]) <= 1e-12
    mean = torch.stack([run(seed) for seed in range(4000)]).mean(0)
    assert max_abs(mean, scaled_dot_product_attention(q, k, v)) < 0.05


def test_bottom_right_mask_is_what_decoding_after_a_cache_needs():
    """The last m queries against all T keys equal the last m rows of full causal attention."""
    q, k, v = (randn(2, 3, 9, 4, seed=i) for i in range(3))
    full = scaled_dot_product_attention(q, k, v, is_causal=True)
    for m in (1, 3, 9):
        mask = causal_mask(m, 9, align="bottom_right")
        tail = scaled_dot_product_attention(q[..., -m:, :], k, v, attn_mask=mask)
        assert max_abs(tail, full[..., -m:, :]) <= 1e-12


def test_causal_mask_forms():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool())
    assert torch.equal(
        causal_mask(2, 4, align="bottom_right"), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    )
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]]).bool())
    additive = causal_mask(3, additive=True, dtype=torch.float64)
    assert additive.dtype == torch.float64
    assert torch.equal(additive, to_additive(causal_mask(3), torch.float64))
    assert additive[0, 1] == float("-inf") and additive[1, 0] == 0
    q, k, v = (randn(1, 2, 5, 4, seed=i) for i in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    for mask in (causal_mask(5), causal_mask(5, additive=True, dtype=torch.float64)):
        assert max_abs(scaled_dot_product_attention(q, k, v, attn_mask=mask), expected) <= 1e-12


def test_padding_mask_equals_attention_over_the_unpadded_keys():
    lengths = [5, 2, 0]
    mask = padding_mask(lengths, 5)
    assert mask.shape == (3, 1, 1, 5)
    assert mask[1, 0, 0].tolist() == [True, True, False, False, False]
    q, k, v = randn(3, 2, 4, 6), randn(3, 2, 5, 6, seed=1), randn(3, 2, 5, 2, seed=2)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    for b, n in enumerate(lengths):
        if n == 0:
            assert torch.all(out[b] == 0)
        else:
            expected = F.scaled_dot_product_attention(q[b], k[b, :, :n], v[b, :, :n])
            assert max_abs(out[b], expected) <= 1e-12
    assert torch.equal(padding_mask(torch.tensor([1, 3]), 3), padding_mask([1, 3], 3))


def test_single_query_and_unbatched_inputs():
    q, k, v = randn(1, 4), randn(6, 4, seed=1), randn(6, 2, seed=2)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert out.shape == (1, 2) and weights.shape == (1, 6)
    assert max_abs(out, F.scaled_dot_product_attention(q, k, v)) <= 1e-12
