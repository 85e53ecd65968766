"""Seed 003 problem 4: einsum decoding steps reproduce the module's causal output token by token."""

import pytest
import torch

from attnlab.functional.decoding import mha_decode_step, mqa_decode_step, weights_from_module
from attnlab.nn import MultiHeadAttention
from helpers import max_abs, randn

B, T, D, H = 2, 8, 16, 4


def build(n_kv_heads=None, **kwargs) -> MultiHeadAttention:
    torch.manual_seed(0)
    return MultiHeadAttention(D, H, n_kv_heads, bias=False, **kwargs).double()


def reference(module, x):
    """The module's causal output and its projected keys and values (split into heads)."""
    recorded = {}
    module.recorder = lambda name, tensor: recorded.setdefault(name, tensor.detach())
    with torch.no_grad():
        y = module(x, is_causal=True)
    module.recorder = None
    return y, recorded["k split into heads"], recorded["v split into heads"]


@pytest.mark.parametrize("d_value", [None, 32])
def test_mha_steps_match_the_module_row_by_row(d_value):
    module = build(d_value=d_value)
    x = randn(B, T, D, seed=1)
    y_full, keys, values = reference(module, x)
    W_q, W_k, W_v, W_o = weights_from_module(module)
    assert W_q.shape == (H, D, D // H) and W_v.shape == (H, D, module.value_head_dim)
    K = torch.zeros(B, H, 0, D // H, dtype=torch.float64)
    V = torch.zeros(B, H, 0, module.value_head_dim, dtype=torch.float64)
    with torch.no_grad():
        for t in range(T):
            y, K, V = mha_decode_step(x[:, t], K, V, W_q, W_k, W_v, W_o)
            assert K.shape[2] == V.shape[2] == t + 1
            assert max_abs(y, y_full[:, t]) <= 1e-10
    assert max_abs(K, keys) <= 1e-12
    assert max_abs(V, values) <= 1e-12


def test_mqa_steps_match_the_module_row_by_row():
    module = build(n_kv_heads=1)
    x = randn(B, T, D, seed=2)
    y_full, keys, values = reference(module, x)
    W_q, W_k, W_v, W_o = weights_from_module(module)
    assert W_k.shape == (D, D // H) and W_v.shape == (D, D // H)
    K = torch.zeros(B, 0, D // H, dtype=torch.float64)
    V = torch.zeros(B, 0, D // H, dtype=torch.float64)
    with torch.no_grad():
        for t in range(T):
            y, K, V = mqa_decode_step(x[:, t], K, V, W_q, W_k, W_v, W_o)
            assert K.shape == (B, t + 1, D // H) and V.shape == (B, t + 1, D // H)
            assert max_abs(y, y_full[:, t]) <= 1e-10
    assert max_abs(K, keys[:, 0]) <= 1e-12
    assert max_abs(V, values[:, 0]) <= 1e-12


def test_mqa_cache_is_h_times_smaller():
    x = randn(B, D, seed=3)
    _, K_mha, V_mha = mha_decode_step(
        x,
        torch.zeros(B, H, 5, D // H, dtype=torch.float64),
        torch.zeros(B, H, 5, D // H, dtype=torch.float64),
        *weights_from_module(build()),
    )
    _, K_mqa, V_mqa = mqa_decode_step(
        x,
        torch.zeros(B, 5, D // H, dtype=torch.float64),
        torch.zeros(B, 5, D // H, dtype=torch.float64),
        *weights_from_module(build(n_kv_heads=1)),
    )
    assert K_mha.numel() + V_mha.numel() == H * (K_mqa.numel() + V_mqa.numel())


def test_weights_keep_the_autograd_link():
    module = build()
    x = randn(B, D, seed=4)
    K = torch.zeros(B, H, 0, D // H, dtype=torch.float64)
    y, _, _ = mha_decode_step(x, K, K, *weights_from_module(module))
    y.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def mha_args(n=3):
    k = D // H
    return {
        "x": randn(B, D),
        "prev_K": randn(B, H, n, k),
        "prev_V": randn(B, H, n, k),
        "W_q": randn(H, D, k),
        "W_k": randn(H, D, k),
        "W_v": randn(H, D, k),
        "W_o": randn(H, k, D),
    }


def mqa_args(n=3):
    k = D // H
    return {
        "x": randn(B, D),
        "prev_K": randn(B, n, k),
        "prev_V": randn(B, n, k),
        "W_q": randn(H, D, k),
        "W_k": randn(D, k),
        "W_v": randn(D, k),
        "W_o": randn(H, k, D),
    }


@pytest.mark.parametrize(
    ("step", "make", "name", "bad", "words"),
    [
        (mha_decode_step, mha_args, "x", randn(B, 1, D), ["x:", "[b, d]", "(2, 1, 16)"]),
        (mha_decode_step, mha_args, "W_k", randn(H, D, 3), ["W_k:", "[h, d, k]", "(4, 16, 4)"]),
        (mha_decode_step, mha_args, "W_o", randn(H, 4, D + 1), ["W_o:", "(4, 4, 16)"]),
        (mha_decode_step, mha_args, "prev_K", randn(B, 2, 3, 4), ["prev_K:", "(2, 4, n, 4)"]),
        (mha_decode_step, mha_args, "prev_V", randn(B, H, 2, 4), ["prev_V:", "(2, 4, 3, 4)"]),
        (mha_decode_step, mha_args, "prev_K", randn(B, 3, 4), ["prev_K:", "[b, h, n, k]"]),
        (mqa_decode_step, mqa_args, "W_k", randn(H, D, 4), ["W_k:", "[d, k]", "(16, 4)"]),
        (mqa_decode_step, mqa_args, "prev_K", randn(B, H, 3, 4), ["prev_K:", "[b, n, k]"]),
        (
            mqa_decode_step,
            mqa_args,
            "prev_V",
            randn(B + 1, 3, 4),
            ["prev_V:", "[b, n, v]", "(2, 3, 4)", "(3, 3, 4)"],
        ),
    ],
)
def test_shape_errors_name_the_argument(step, make, name, bad, words):
    args = make()
    args[name] = bad
    with pytest.raises(ValueError) as error:
        step(**args)
    for word in words:
        assert word in str(error.value)


def test_dtype_and_type_errors():
    args = mha_args()
    args["W_v"] = args["W_v"].float()
    with pytest.raises(TypeError, match=r"W_v: expected dtype torch\.float64 like x"):
        mha_decode_step(**args)
    args = mqa_args()
    args["x"] = [[1.0]]
    with pytest.raises(TypeError, match=r"x: expected a torch\.Tensor"):
        mqa_decode_step(**args)


@pytest.mark.parametrize(
    ("module", "words"),
    [
        (MultiHeadAttention(D, H, bias=True), ["bias", "q_proj"]),
        (MultiHeadAttention(D, H, 2, bias=False), ["n_kv_heads", "2"]),
        (MultiHeadAttention(D, H, bias=False, positions="rope"), ["positions", "rope"]),
        (MultiHeadAttention(D, H, bias=False, d_context=8), ["d_context=8"]),
    ],
)
def test_weights_from_module_rejects_what_the_step_cannot_express(module, words):
    with pytest.raises(ValueError) as error:
        weights_from_module(module)
    for word in words:
        assert word in str(error.value)


def test_weights_from_module_needs_a_module():
    with pytest.raises(TypeError, match=r"mha: expected an attnlab\.nn\.MultiHeadAttention"):
        weights_from_module(torch.nn.Linear(2, 2))
