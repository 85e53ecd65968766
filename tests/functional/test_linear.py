"""Kernelized and linear attention against their quadratic references, torch and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.functional import linear as linear_module
from attnlab.functional.feature_maps import (
    FavorPlusFeatureMap,
    PolynomialKernel,
    feature_map,
    kernel,
)
from attnlab.functional.linear import (
    LinearAttentionState,
    kernel_attention,
    linear_attend,
    linear_attention,
    linear_attention_decode,
    linear_attention_step,
)
from helpers import max_abs, randn


def _qkv(batch=2, heads=3, seq=11, head_dim=4, d_value=5, *, kv_heads=None, seed=0, **kw):
    kv_heads = heads if kv_heads is None else kv_heads
    q = randn(batch, heads, seq, head_dim, seed=seed, **kw)
    k = randn(batch, kv_heads, seq, head_dim, seed=seed + 1, **kw)
    v = randn(batch, kv_heads, seq, d_value, seed=seed + 2, **kw)
    return q, k, v


def _positive(q, k):
    """relu's kernel needs each query and key to have some positive coordinate."""
    return q.abs() + 0.1, k.abs() + 0.1


# --- exactness against the quadratic forms --------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("c", [1.0, 0.5])
def test_poly2_equals_polynomial_kernel_float64(causal, c):
    q, k, v = _qkv(seq=13)
    ours = linear_attention(q, k, v, feature_map("poly2", c=c), causal=causal, chunk_size=4)
    reference = kernel_attention(q, k, v, ("poly", c, 2), causal=causal)
    assert max_abs(ours, reference) <= 1e-10
    by_object = kernel_attention(q, k, v, PolynomialKernel(c=c, degree=2), causal=causal)
    assert max_abs(by_object, reference) == 0.0


def test_poly2_features_are_the_exact_degree_2_map():
    x, y = randn(7, 6, seed=1), randn(5, 6, seed=2)
    fm = feature_map("poly2", c=1.0)
    assert fm.output_dim(6) == 1 + 6 + 6 * 7 // 2 and fm(x).shape == (7, fm.output_dim(6))
    assert max_abs(fm(x) @ fm(y).T, (x @ y.T + 1.0) ** 2) <= 1e-12
    assert feature_map("poly2").output_dim(64) == 2145
    # [c, √(2c)·x_i, …]: the constant and linear coordinates come first
    assert max_abs(fm(x)[:, 0], torch.ones(7)) == 0.0
    assert max_abs(fm(x)[:, 1:7], math.sqrt(2.0) * x) <= 1e-15


@pytest.mark.parametrize("name", ["elu", "relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_elu_relu_equal_their_kernel_forms(name, causal):
    q, k, v = _qkv(seq=10)
    if name == "relu":
        q, k = _positive(q, k)
    fm = feature_map(name)
    phi_q, phi_k = fm(q), fm(k)
    sim = phi_q @ phi_k.transpose(-2, -1)
    if causal:
        sim = sim.tril()
    by_hand = (sim @ v) / sim.sum(-1, keepdim=True)
    assert max_abs(kernel_attention(q, k, v, name, causal=causal), by_hand) <= 1e-12
    assert max_abs(linear_attention(q, k, v, name, causal=causal), by_hand) <= 1e-12
    assert fm.output_dim(4) == 4


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_kernel_equals_torch_sdpa(causal):
    q, k, v = _qkv(seq=9)
    ours, weights = kernel_attention(q, k, v, "softmax", causal=causal, return_weights=True)
    assert max_abs(ours, F.scaled_dot_product_attention(q, k, v, is_causal=causal)) <= 1e-12
    assert max_abs(weights.sum(-1), torch.ones(weights.shape[:-1])) <= 1e-12


def test_callable_kernel_and_gqa():
    q, k, v = _qkv(heads=4, kv_heads=2, seq=6)
    ours = kernel_attention(
        q, k, v, lambda a, b: (a @ b.transpose(-2, -1) + 1.0) ** 2, enable_gqa=True
    )
    expanded = [x.repeat_interleave(2, dim=1) for x in (k, v)]
    assert max_abs(ours, kernel_attention(q, *expanded, ("poly", 1.0, 2))) <= 1e-12
    linear = linear_attention(q, k, v, "poly2", enable_gqa=True, causal=True, chunk_size=4)
    assert max_abs(linear, kernel_attention(q, *expanded, "poly", causal=True)) <= 1e-10


@settings(max_examples=30)
@given(
    batch=st.integers(1, 2),
    kv_heads=st.integers(1, 2),
    group=st.integers(1, 3),
    seq=st.integers(1, 20),
    head_dim=st.integers(1, 6),
    d_value=st.integers(1, 6),
    chunk=st.one_of(st.none(), st.integers(1, 25)),
    causal=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_linear_equals_kernel_form_property(
    batch, kv_heads, group, seq, head_dim, d_value, chunk, causal, seed
):
    shape = {"batch": batch, "heads": kv_heads * group, "kv_heads": kv_heads, "seq": seq}
    q, k, v = _qkv(**shape, head_dim=head_dim, d_value=d_value, seed=seed)
    gqa = group > 1
    ours = linear_attention(q, k, v, "elu", causal=causal, chunk_size=chunk, enable_gqa=gqa)
    reference = kernel_attention(q, k, v, "elu", causal=causal, enable_gqa=gqa)
    assert max_abs(ours, reference) <= 1e-12


# --- causal: chunks, blocks, the recurrent twin ----------------------------------------------


@pytest.mark.parametrize("name", ["elu", "poly2", "favor+"])
def test_chunked_causal_equals_unchunked(name):
    q, k, v = _qkv(seq=24)
    fm = feature_map(name, **({"n_features": 16, "seed": 3} if name == "favor+" else {}))
    whole = linear_attention(q, k, v, fm, causal=True, chunk_size=24)  # one masked quadratic chunk
    assert max_abs(whole, kernel_attention(q, k, v, fm, causal=True)) <= 1e-11
    for chunk in (1, 3, 4, 5, 7, 8, 23, 100):  # dividing 24 and not
        assert max_abs(linear_attention(q, k, v, fm, causal=True, chunk_size=chunk), whole) <= 1e-11


def test_blocks_of_rows_do_not_change_the_result(monkeypatch):
    q, k, v = _qkv(seq=29)
    expected = {
        c: linear_attention(q, k, v, "poly2", causal=c, chunk_size=4) for c in (False, True)
    }
    monkeypatch.setattr(linear_module, "BLOCK_ELEMENTS", 2 * 3 * 15 * 8)  # ~8 rows per block
    monkeypatch.setattr(linear_module, "MIN_BLOCK_ROWS", 1)
    for causal in (False, True):
        got = linear_attention(q, k, v, "poly2", causal=causal, chunk_size=4 if causal else None)
        assert max_abs(got, expected[causal]) <= 1e-12


@pytest.mark.parametrize("name", ["elu", "relu", "poly2", "favor+"])
def test_recurrent_step_equals_parallel_causal(name):
    q, k, v = _qkv(heads=4, kv_heads=2, seq=9)
    if name == "relu":
        q, k = _positive(q, k)
    fm = feature_map(name, **({"n_features": 8} if name == "favor+" else {}))
    parallel = linear_attention(q, k, v, fm, causal=True, enable_gqa=True)
    state, outs = None, []
    for t in range(q.shape[2]):
        out, state = linear_attention_step(
            q[:, :, t], k[:, :, t], v[:, :, t], state, fm, enable_gqa=True
        )
        outs.append(out)
    assert max_abs(torch.stack(outs, dim=2), parallel) <= 1e-12
    assert state.length == 9 and state.sums.shape == (2, 2, fm.output_dim(4), 5 + 1)


def test_decode_in_pieces_equals_parallel_and_leaves_the_state_alone():
    q, k, v = _qkv(seq=17)
    fm = feature_map("elu")
    parallel = linear_attention(q, k, v, fm, causal=True)
    state = LinearAttentionState.empty(
        fm, batch=2, kv_heads=3, head_dim=4, d_value=5, dtype=torch.float64
    )
    assert state.nbytes == 2 * 3 * 4 * 6 * 8 and state.length == 0
    outs = []
    for start, stop in ((0, 1), (1, 6), (6, 7), (7, 17)):
        before = state.sums.clone()
        out, new = linear_attention_decode(
            q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop], fm, state, chunk_size=2
        )
        assert torch.equal(state.sums, before)  # functional: the old state is still valid
        outs.append(out)
        state = new
    assert max_abs(torch.cat(outs, dim=2), parallel) <= 1e-12
    s_by_hand = torch.einsum("bhtr,bhtv->bhrv", fm(k), v)
    assert max_abs(state.kv_sum, s_by_hand) <= 1e-12
    assert max_abs(state.key_sum, fm(k).sum(2)) <= 1e-12


def test_half_precision_is_computed_in_float32():
    q, k, v = _qkv(seq=16, dtype=torch.float32)
    reference = linear_attention(q, k, v, "elu", causal=True)
    for dtype in (torch.float16, torch.bfloat16):
        out = linear_attention(q.to(dtype), k.to(dtype), v.to(dtype), "elu", causal=True)
        assert out.dtype == dtype
        assert max_abs(out, reference) <= 3e-2
        _, state = linear_attention_decode(q.to(dtype), k.to(dtype), v.to(dtype), "elu")
        assert state.sums.dtype == torch.float32


# --- gradients -------------------------------------------------------------------------------


def _grad_inputs(seq=5, heads=2, kv_heads=2, positive=False):
    q, k, v = _qkv(batch=1, heads=heads, kv_heads=kv_heads, seq=seq, head_dim=3, d_value=2, seed=7)
    if positive:
        q, k = _positive(q, k)
    return [x.requires_grad_() for x in (q, k, v)]


@pytest.mark.parametrize(
    "spec", ["softmax", ("poly", 1.0, 2), ("poly", 0.5, 3), "elu", "relu", "poly2"]
)
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_kernel_attention(spec, causal):
    inputs = _grad_inputs(positive=spec == "relu" or spec[0] == "poly")
    assert torch.autograd.gradcheck(
        lambda q, k, v: kernel_attention(q, k, v, spec, causal=causal), inputs
    )


@pytest.mark.parametrize("name", ["elu", "relu", "poly2", "favor+"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_linear_attention(name, causal):
    inputs = _grad_inputs(seq=5, heads=2, kv_heads=1, positive=name == "relu")
    fm = feature_map(name, **({"n_features": 4} if name == "favor+" else {}))

    def fn(q, k, v):
        return linear_attention(q, k, v, fm, causal=causal, chunk_size=2, enable_gqa=True)

    assert torch.autograd.gradcheck(fn, inputs)


def test_gradcheck_decode_step_and_state():
    q, k, v = _grad_inputs(seq=5, heads=4, kv_heads=2)
    sums = randn(1, 2, 3, 3, seed=9).abs().requires_grad_()  # a positive earlier state

    def fn(q, k, v, sums):
        state = LinearAttentionState(sums, 4)
        out, state = linear_attention_decode(
            q[:, :, :3], k[:, :, :3], v[:, :, :3], "elu", state, chunk_size=2, enable_gqa=True
        )
        last, state = linear_attention_step(
            q[:, :, 3], k[:, :, 3], v[:, :, 3], state, "elu", enable_gqa=True
        )
        return out, last, state.sums

    assert torch.autograd.gradcheck(fn, (q, k, v, sums))


# --- FAVOR+ ----------------------------------------------------------------------------------


def _favor_error(n_features, seed, orthogonal=True):
    q, k, v = (x * 0.6 for x in _qkv(batch=1, heads=2, seq=32, head_dim=8, d_value=8, seed=11))
    exact = kernel_attention(q, k, v, "softmax")
    fm = FavorPlusFeatureMap(n_features, seed=seed, orthogonal=orthogonal)
    approx = linear_attention(q, k, v, fm)
    return float((approx - exact).norm() / exact.norm())


@pytest.mark.parametrize("orthogonal", [True, False])
def test_favor_error_shrinks_with_n_features(orthogonal):
    """Mean relative error over 8 fixed draws: below 2.5/√r, and halved from r = 16 to 256.

    The estimator's standard deviation falls like 1/√r (Choromanski et al., 2021, Lemma 2), so
    16× more features would cut it 4× in the limit; the exponential features are heavy-tailed
    and at these r the error falls more slowly (measured: 2.3× orthogonal, 3.3× i.i.d.), hence
    the looser, stated tolerance.
    """
    errors = {r: sum(_favor_error(r, s, orthogonal) for s in range(8)) / 8 for r in (16, 64, 256)}
    for r, error in errors.items():
        assert error < 2.5 / math.sqrt(r), errors
    assert errors[16] > errors[64] > errors[256] and errors[256] < errors[16] / 2, errors


def test_favor_features_estimate_the_softmax_kernel():
    q, k = randn(3, 4, seed=1) * 0.5, randn(5, 4, seed=2) * 0.5
    fm = FavorPlusFeatureMap(20000, seed=0, dtype=torch.float64)
    estimate = fm(q) @ fm(k).T
    assert max_abs(estimate / torch.exp(q @ k.T / 2.0), torch.ones(3, 5)) < 0.05
    assert bool((fm.query_features(q) <= 20000**-0.5 + 1e-12).all())  # stabilised queries


def test_favor_redraw_and_seed():
    x = randn(6, 8, seed=4)
    a, b = FavorPlusFeatureMap(32, seed=5), FavorPlusFeatureMap(32, seed=5)
    assert torch.equal(a(x), b(x))
    omega, before = a.omega, a(x)
    assert a.redraw() is a and a.omega is omega  # in place: a buffer bound to it follows
    assert not torch.allclose(a(x), before)
    b.redraw()
    assert torch.equal(a(x), b(x))  # the same seed gives the same sequence of draws
    assert not torch.equal(FavorPlusFeatureMap(32, seed=6)(x), before)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(
        FavorPlusFeatureMap(8, generator=g1)(x), FavorPlusFeatureMap(8, generator=g2)(x)
    )


def test_favor_orthogonal_blocks():
    fm = FavorPlusFeatureMap(20, head_dim=8, seed=0, dtype=torch.float64)
    block = fm.omega[:, :8]
    gram = block.T @ block
    assert max_abs(gram - torch.diag(torch.diagonal(gram)), torch.zeros(8, 8)) <= 1e-12
    iid = FavorPlusFeatureMap(20, head_dim=8, seed=0, orthogonal=False).omega
    assert iid.shape == (8, 20) and fm.output_dim(8) == 20
    with pytest.raises(ValueError, match="head_dim"):
        fm(randn(3, 5))


# --- errors at the boundary ------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_vanishing_normaliser_is_an_error_not_nan(causal):
    q, k, v = _qkv(seq=6)
    q = -q.abs()  # relu features of an all-negative query are all zero: 0/0
    with pytest.raises(ValueError, match=r"normaliser.*'relu'.*no positive coordinate"):
        linear_attention(q, k, v, "relu", causal=causal)
    with pytest.raises(ValueError, match="normaliser"):
        kernel_attention(q, k, v, "relu", causal=causal)
    with pytest.raises(ValueError, match="normaliser"):
        linear_attention_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], None, "relu")
    with pytest.raises(ValueError, match=r"normaliser.*odd degree"):  # negative similarities
        kernel_attention(q, k.abs(), v, ("poly", 0.0, 1))


@pytest.mark.parametrize("causal", [False, True])
def test_vanishing_normaliser_names_batch_head_and_position(monkeypatch, causal):
    q, k, v = _qkv(heads=4, kv_heads=2, seq=9)
    q, k = _positive(q, k)
    q[1, 3, 6] = -1.0  # one query with no positive coordinate
    monkeypatch.setattr(linear_module, "BLOCK_ELEMENTS", 2 * 4 * 4 * 4)  # blocks of 4 rows
    monkeypatch.setattr(linear_module, "MIN_BLOCK_ROWS", 1)
    with pytest.raises(ValueError, match=r"query at index \(1, 3, 6\) \(0; 1 such"):
        linear_attention(q, k, v, "relu", causal=causal, enable_gqa=True, chunk_size=2)


def test_overflowing_features_are_an_error():
    q, k, v = _qkv(seq=4, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"normaliser.*'favor\+'"):
        linear_attention(q, k * 1e3, v, FavorPlusFeatureMap(8))  # keys' features underflow


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known: elu, relu, poly2, favor\\+"):
        feature_map("softplus")
    with pytest.raises(ValueError, match="known: softmax, poly, elu"):
        kernel("cosine")
    with pytest.raises(ValueError, match="known"):
        linear_attention(*_qkv(), "gauss")
    with pytest.raises(TypeError, match="n_features"):
        feature_map("elu", n_features=3)


def test_shape_and_option_errors_name_the_argument():
    q, k, v = _qkv(seq=6)
    cases = [
        (lambda: linear_attention(q, k[..., :3], v), ValueError, "query and key"),
        (lambda: linear_attention(q, k, v[:, :, :4]), ValueError, "key and value"),
        (lambda: linear_attention(q, k, v[:2, :1]), ValueError, "key and value"),
        (lambda: linear_attention(q[:, :, :4], k, v, causal=True), ValueError, "causal"),
        (lambda: kernel_attention(q[:, :, :4], k, v, causal=True), ValueError, "causal"),
        (lambda: linear_attention(q, k, v, chunk_size=0), ValueError, "chunk_size"),
        (lambda: linear_attention(q, k, v, eps=0.0), ValueError, "eps"),
        (lambda: linear_attention(q, k, v, causal=1), TypeError, "causal"),
        (lambda: linear_attention(q.long(), k, v), TypeError, "query"),
        (lambda: linear_attention(q, k, v, 3), TypeError, "feature_map"),
        (lambda: kernel_attention(q, k, v, lambda a, b: a), ValueError, "kernel"),
        (lambda: linear_attention_step(q, k, v, None, "elu"), ValueError, "q_t"),
        (lambda: linear_attention_decode(q[0], k[0], v[0], "elu"), ValueError, "query"),
        (
            lambda: linear_attention_decode(
                q, k, v, "elu", LinearAttentionState.empty("elu", 2, 3, 4)
            ),
            ValueError,
            "state",
        ),
        (lambda: feature_map("favor+", n_features=0), ValueError, "n_features"),
        (lambda: feature_map("poly2", c=-1.0), ValueError, "c"),
    ]
    for call, error, name in cases:
        with pytest.raises(error, match=name):
            call()


def test_linear_attend_is_the_unchecked_twin():
    q, k, v = _qkv(heads=4, kv_heads=2, seq=8)
    fm = feature_map("elu")
    for causal in (False, True):
        checked = linear_attention(q, k, v, fm, causal=causal, enable_gqa=True)
        assert torch.equal(linear_attend(q, k, v, fm, causal=causal), checked)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_named_wherever_it_lies(causal, index, bad):
    """The checked entry point checks its inputs block by block: a bad value in a late block
    (after blocks already computed) is still reported with the argument's name."""
    tensors = [randn(2, 3, 300, 8, seed=s, dtype=torch.float32) for s in range(3)]
    tensors[index][1, 2, 250, 3] = bad
    name = ("query", "key", "value")[index]
    with pytest.raises(ValueError, match=f"^{name}: contains NaN or infinite values"):
        linear_attention(*tensors, "elu", causal=causal, chunk_size=16)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["elu", "poly2", "favor+"])
def test_reused_buffers_give_the_recorded_result(monkeypatch, causal, name):
    """Without autograd, every block computes into buffers reused from the block before; with
    autograd, each allocates afresh. Both must agree, over many blocks and a GQA group."""
    monkeypatch.setattr(linear_module, "BLOCK_ELEMENTS", 2**9)  # a few dozen rows per block
    monkeypatch.setattr(linear_module, "MIN_BLOCK_ROWS", 1)
    fm = feature_map(name, n_features=16, seed=1) if name == "favor+" else feature_map(name)
    q = randn(2, 4, 203, 4, seed=1, dtype=torch.float64) * 0.5
    k, v = (randn(2, 2, 203, 4, seed=s, dtype=torch.float64) * 0.5 for s in (2, 3))
    with torch.no_grad():
        reused = linear_attention(q, k, v, fm, causal=causal, enable_gqa=True, chunk_size=8)
    recorded = linear_attention(
        q.requires_grad_(), k, v, fm, causal=causal, enable_gqa=True, chunk_size=8
    )
    assert recorded.requires_grad
    assert max_abs(reused, recorded.detach()) <= 1e-12


def test_gradient_through_a_carried_state():
    """A state that requires grad (inputs that do not) is recorded by autograd, not written
    into reused buffers: gradcheck through the state of earlier tokens."""
    q, k, v = (randn(1, 2, 70, 3, seed=s, dtype=torch.float64) for s in range(3))
    _, state = linear_attention_decode(q[:, :, :40], k[:, :, :40], v[:, :, :40], "elu")

    def tail(sums):
        later = LinearAttentionState(sums, state.length)
        out, _ = linear_attention_decode(q[:, :, 40:], k[:, :, 40:], v[:, :, 40:], "elu", later)
        return out

    assert torch.autograd.gradcheck(tail, (state.sums.clone().requires_grad_(),))
