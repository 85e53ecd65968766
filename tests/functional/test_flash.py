"""attnlab.functional.flash.flash_attention against torch's scaled_dot_product_attention."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.functional.flash import flash_attention
from attnlab.functional.masks import causal_mask
from helpers import max_abs, randn


def _inputs(batch, heads, kv_heads, seq_q, seq_k, head_dim, d_value, *, seed=0, dtype):
    q = randn(batch, heads, seq_q, head_dim, seed=seed, dtype=dtype)
    k = randn(batch, kv_heads, seq_k, head_dim, seed=seed + 1, dtype=dtype)
    v = randn(batch, kv_heads, seq_k, d_value, seed=seed + 2, dtype=dtype)
    return [x.requires_grad_() for x in (q, k, v)]


def _torch_reference(q, k, v, causal, align, scale=None):
    """torch's SDPA; bottom-right causal goes in as the mask from attnlab's causal_mask."""
    mask = causal_mask(q.shape[-2], k.shape[-2], align=align) if causal else None
    gqa = q.shape[-3] != k.shape[-3]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


def _errors(q, k, v, grad, *, causal=False, align="top_left", scale=None, **blocks):
    """Largest |flash − torch| of the output and of the three gradients."""
    gqa = q.shape[-3] != k.shape[-3]
    ours = flash_attention(
        q, k, v, is_causal=causal, causal_align=align, scale=scale, enable_gqa=gqa, **blocks
    )
    theirs = _torch_reference(q, k, v, causal, align, scale)
    ours_grads = torch.autograd.grad(ours, (q, k, v), grad)
    theirs_grads = torch.autograd.grad(theirs, (q, k, v), grad)
    pairs = [(ours, theirs), *zip(ours_grads, theirs_grads, strict=True)]
    return [max_abs(a, b) for a, b in pairs]


@settings(max_examples=40)
@given(
    batch=st.integers(1, 2),
    kv_heads=st.integers(1, 2),
    group=st.integers(1, 3),
    seq_q=st.integers(1, 13),
    seq_k=st.integers(1, 13),
    head_dim=st.integers(1, 8),
    d_value=st.integers(1, 8),
    block_q=st.integers(1, 6),
    block_k=st.integers(1, 6),
    causal=st.sampled_from([None, "top_left", "bottom_right"]),
    seed=st.integers(0, 10_000),
)
def test_matches_torch_float64(
    batch, kv_heads, group, seq_q, seq_k, head_dim, d_value, block_q, block_k, causal, seed
):
    q, k, v = _inputs(
        batch, kv_heads * group, kv_heads, seq_q, seq_k, head_dim, d_value,
        seed=seed, dtype=torch.float64,
    )  # fmt: skip
    grad = randn(batch, kv_heads * group, seq_q, d_value, seed=seed + 3)
    errors = _errors(
        q, k, v, grad, causal=causal is not None, align=causal or "top_left",
        block_q=block_q, block_k=block_k,
    )  # fmt: skip
    assert max(errors) <= 1e-10, errors


@pytest.mark.parametrize(
    ("causal", "align", "seq_q", "seq_k"),
    [
        (False, "top_left", 300, 300),
        (True, "top_left", 300, 300),
        (True, "bottom_right", 200, 333),
        (True, "bottom_right", 333, 200),
        (False, "top_left", 77, 519),
    ],
)
def test_matches_torch_float32(causal, align, seq_q, seq_k):
    q, k, v = _inputs(2, 4, 2, seq_q, seq_k, 64, 32, seed=seq_q + seq_k, dtype=torch.float32)
    grad = randn(2, 4, seq_q, 32, seed=5, dtype=torch.float32)
    for blocks in ({"block_q": 64, "block_k": 96}, {}):  # tiles that do not divide; defaults
        errors = _errors(q, k, v, grad, causal=causal, align=align, **blocks)
        assert max(errors) <= 1e-5, (blocks, errors)


@pytest.mark.parametrize("causal", [False, True])
def test_bfloat16_error_at_most_twice_plain(causal):
    """The rule from the flash-attention tests: against a float64 reference, the error of the
    kernel in bfloat16 is at most about twice that of plain attention in bfloat16."""
    q64, k64, v64 = _inputs(1, 4, 4, 256, 256, 64, 64, seed=11, dtype=torch.float64)
    grad64 = randn(1, 4, 256, 64, seed=12)
    q, k, v = (x.detach().bfloat16().requires_grad_() for x in (q64, k64, v64))
    grad = grad64.bfloat16()
    exact = F.scaled_dot_product_attention(q64, k64, v64, is_causal=causal)
    exact_grads = torch.autograd.grad(exact, (q64, k64, v64), grad64)
    plain = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    plain_grads = torch.autograd.grad(plain, (q, k, v), grad)
    ours = flash_attention(q, k, v, is_causal=causal, block_q=64, block_k=96)
    assert ours.dtype == torch.bfloat16
    ours_grads = torch.autograd.grad(ours, (q, k, v), grad)
    for name, a, b, e in zip(
        ["out", "dq", "dk", "dv"],
        [ours, *ours_grads],
        [plain, *plain_grads],
        [exact, *exact_grads],
        strict=True,
    ):
        assert a.dtype == torch.bfloat16
        assert max_abs(a, e) <= 2 * max_abs(b, e) + 1e-4, name


@pytest.mark.parametrize(
    ("causal", "align", "seq_q", "seq_k"),
    [(False, "top_left", 5, 4), (True, "top_left", 5, 6), (True, "bottom_right", 6, 4)],
)
def test_gradcheck(causal, align, seq_q, seq_k):
    q, k, v = _inputs(1, 2, 1, seq_q, seq_k, 3, 2, seed=7, dtype=torch.float64)

    def fn(q, k, v):
        return flash_attention(
            q, k, v, is_causal=causal, causal_align=align, block_q=2, block_k=3, enable_gqa=True
        )

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_queries_with_nothing_to_attend_give_zeros_and_zero_gradient():
    q, k, v = _inputs(1, 2, 2, 7, 3, 4, 4, dtype=torch.float64)
    out = flash_attention(q, k, v, is_causal=True, causal_align="bottom_right", block_q=2)
    out.sum().backward()
    assert torch.all(out[..., :4, :] == 0)  # queries 0..3 precede every key
    assert torch.all(q.grad[..., :4, :] == 0)
    assert torch.isfinite(out).all() and torch.isfinite(k.grad).all()


def test_saves_only_output_and_logsumexp():
    """Nothing with seq_q·seq_k elements is kept for the backward pass."""
    seq_q, seq_k, heads = 96, 80, 2
    q, k, v = _inputs(1, heads, heads, seq_q, seq_k, 8, 8, dtype=torch.float64)
    shapes = []

    def pack(x):
        shapes.append(tuple(x.shape))
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = flash_attention(q, k, v, is_causal=True, block_q=16, block_k=16)
    out.sum().backward()
    assert shapes, "nothing was saved"
    sizes = [torch.Size(s).numel() for s in shapes]
    assert max(sizes) < seq_q * seq_k, shapes
    assert (1, heads, seq_q) in shapes  # the log-sum-exp
    assert tuple(out.shape) in shapes  # the output


def test_large_score_jumps_are_rescaled_exactly():
    """Later key blocks that score far above the first trigger the exact rescaling path."""
    q, k, v = _inputs(1, 2, 2, 40, 64, 8, 8, seed=3, dtype=torch.float32)
    with torch.no_grad():
        k[..., 32:, :] *= 40.0  # scores of the later keys reach the hundreds: e^(s − m) overflows
    grad = randn(1, 2, 40, 8, seed=4, dtype=torch.float32)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    exact = F.scaled_dot_product_attention(q64, k64, v64)
    exact_grads = torch.autograd.grad(exact, (q64, k64, v64), grad.double())
    ours = flash_attention(q, k, v, block_q=16, block_k=16)
    ours_grads = torch.autograd.grad(ours, (q, k, v), grad)
    assert torch.isfinite(ours).all()
    assert max_abs(ours, exact) <= 1e-5
    for a, b in zip(ours_grads, exact_grads, strict=True):
        assert max_abs(a, b) <= 1e-3 * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("align", ["top_left", "bottom_right"])
def test_sharp_scores_match_torch(align):
    """Scores spread over hundreds take the clamped-exponent path (weights below e^−707 in
    float64 would be subnormal); the result is the same."""
    q, k, v = _inputs(1, 2, 2, 23, 17, 8, 8, seed=9, dtype=torch.float64)
    with torch.no_grad():
        q *= 300.0
    grad = randn(1, 2, 23, 8, seed=10)
    errors = _errors(q, k, v, grad, causal=True, align=align, block_q=4, block_k=5)
    assert max(errors) <= 1e-10 * 300, errors


def test_inference_mode_then_autograd():
    """Buffers kept between calls must not become inference tensors."""
    q, k, v = _inputs(1, 2, 2, 9, 9, 4, 4, dtype=torch.float32)
    with torch.inference_mode():
        first = flash_attention(q, k, v, is_causal=True, block_q=4, block_k=4)
    second = flash_attention(q, k, v, is_causal=True, block_q=4, block_k=4)
    second.sum().backward()
    assert torch.equal(first, second.detach()) and q.grad is not None


def test_leading_dims_and_unbatched():
    q, k, v = (randn(2, 3, 4, 9, 5, seed=s) for s in range(3))  # (batch, extra, heads, seq, d)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert max_abs(flash_attention(q, k, v, is_causal=True, block_q=4), expected) <= 1e-12
    q2, k2, v2 = q[0, 0, 0], k[0, 0, 0], v[0, 0, 0]  # (seq, d)
    expected = F.scaled_dot_product_attention(q2, k2, v2, scale=0.3)
    assert max_abs(flash_attention(q2, k2, v2, scale=0.3, block_k=2), expected) <= 1e-12


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"block_q": 0}, ValueError, "block_q: expected a positive integer, got 0"),
        ({"block_k": -3}, ValueError, "block_k: expected a positive integer, got -3"),
        ({"block_q": 2.5}, ValueError, "block_q"),
        ({"causal_align": "diagonal"}, ValueError, "causal_align: expected one of"),
        ({"is_causal": "yes"}, TypeError, "is_causal"),
        ({"scale": float("nan")}, ValueError, "scale"),
    ],
)
def test_bad_options_name_the_argument(kwargs, error, match):
    q, k, v = (randn(1, 2, 4, 3, seed=s) for s in range(3))
    with pytest.raises(error, match=match):
        flash_attention(q, k, v, **kwargs)


def test_bad_tensors_name_the_argument():
    q, k, v = randn(1, 4, 5, 3), randn(1, 2, 5, 3), randn(1, 2, 5, 3)
    with pytest.raises(ValueError, match="enable_gqa"):
        flash_attention(q, k, v)
    with pytest.raises(ValueError, match="head_dim"):
        flash_attention(q, randn(1, 4, 5, 2), randn(1, 4, 5, 3))
    with pytest.raises(TypeError, match="query"):
        flash_attention(torch.ones(1, 4, 5, 3, dtype=torch.long), k, v)
