"""The NumPy autograd: each rule against central finite differences, and multi-head attention and
a Pre-LN block built on it against PyTorch's autograd on attnlab's modules (float64)."""

import numpy as np
import pytest
import torch

from attnlab.nn import Block, MultiHeadAttention
from attnlab.ref.autograd import Tensor, gelu, layer_norm, linear, parameters, softmax
from attnlab.ref.transformer import BLOCK_NAMES, MHA_NAMES, multi_head_attention, pre_ln_block

RNG = np.random.default_rng(0)


def _numeric_grads(f, arrays, weight, h=1e-6):
    """∂/∂a of Σ f(arrays) ∘ weight for each array, by central differences."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            keep = a[i]
            a[i] = keep + h
            up = float(np.sum(f(*[Tensor(x) for x in arrays]).data * weight))
            a[i] = keep - h
            down = float(np.sum(f(*[Tensor(x) for x in arrays]).data * weight))
            a[i] = keep
            g[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def _check_rule(f, *shapes):
    arrays = [RNG.standard_normal(s) for s in shapes]
    inputs = [Tensor(a) for a in arrays]
    out = f(*inputs)
    weight = RNG.standard_normal(out.shape)
    out.backward(weight)
    for tensor, expected in zip(inputs, _numeric_grads(f, arrays, weight), strict=True):
        assert tensor.grad.shape == tensor.shape
        assert np.abs(tensor.grad - expected).max() < 1e-6


RULES = {
    "add, broadcast": (lambda a, b: a + b, (3, 4), (4,)),
    "sub, broadcast": (lambda a, b: a - b, (2, 1, 4), (3, 1)),
    "mul, broadcast": (lambda a, b: a * b, (2, 3, 4), (1, 3, 1)),
    "div": (lambda a, b: a / (b * b + 1.0), (3, 4), (3, 4)),
    "rsub, rtruediv": (lambda a: 2.0 - 1.0 / (a * a + 1.0), (5,)),
    "pow": (lambda a: (a * a + 0.5) ** -0.5, (3, 4)),
    "exp": (lambda a: a.exp(), (3, 4)),
    "erf": (lambda a: a.erf(), (3, 4)),
    "matmul, batched and broadcast": (lambda a, b: a @ b, (2, 3, 4), (4, 5)),
    "sum over an axis": (lambda a: a.sum(axis=1), (2, 3, 4)),
    "mean, keepdims": (lambda a: a.mean(axis=-1, keepdims=True), (2, 3, 4)),
    "sum of all": (lambda a: a.sum(), (2, 3)),
    "reshape, swapaxes": (lambda a: a.reshape(3, 2, 4).swapaxes(0, 2), (2, 3, 4)),
    "masked_fill": (lambda a: a.masked_fill(np.eye(3, dtype=bool), 7.0), (2, 3, 3)),
    "softmax": (lambda a: softmax(a), (2, 3, 5)),
    "softmax, axis 0": (lambda a: softmax(a, axis=0), (4, 3)),
    "layer_norm": (lambda a, w, b: layer_norm(a, w, b), (2, 3, 6), (6,), (6,)),
    "gelu": (lambda a: gelu(a), (3, 5)),
    "linear": (lambda x, w, b: linear(x, w, b), (2, 3, 4), (5, 4), (5,)),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_against_finite_differences(rule):
    f, *shapes = RULES[rule]
    _check_rule(f, *shapes)


def test_softmax_masked_rows_and_values():
    x = Tensor(RNG.standard_normal((2, 4)))
    y = softmax(x.masked_fill(np.array([[False, True, True, False], [True] * 4]), -np.inf))
    assert np.allclose(y.data[0].sum(), 1.0) and y.data[0, 1] == y.data[0, 2] == 0
    assert np.all(y.data[1] == 0)  # nothing to attend to: zeros, not NaN
    y.backward(np.ones((2, 4)))
    assert np.all(np.isfinite(x.grad)) and np.all(x.grad[1] == 0)


def test_gradients_accumulate_over_uses_and_calls():
    x = Tensor([1.5, -2.0])
    y = (x * x + x * 3.0).sum()  # x used three times: ∂y/∂x = 2x + 3
    y.backward()
    assert np.allclose(x.grad, 2 * x.data + 3)
    y.backward()  # a second backward adds, as in PyTorch
    assert np.allclose(x.grad, 2 * (2 * x.data + 3))


def test_deep_graphs_do_not_recurse():
    x = Tensor([0.5])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    assert np.allclose(x.grad, 1.0001**5000)


def _assert_same_as_torch(module, torch_forward, numpy_forward, names, shape):
    """Output, input gradient and every parameter gradient of ``numpy_forward`` (the NumPy
    autograd on ``module``'s weights) against torch's autograd on ``module``, to 1e-12."""
    x, dout = RNG.standard_normal(shape), RNG.standard_normal(shape)
    x_torch = torch.tensor(x, requires_grad=True)
    expected = torch_forward(x_torch)
    (expected * torch.tensor(dout)).sum().backward()
    params, X = parameters(module.state_dict()), Tensor(x)
    assert sorted(params) == sorted(names)
    out = numpy_forward(X, params)
    out.backward(dout)
    assert np.abs(out.data - expected.detach().numpy()).max() < 1e-12
    assert np.abs(X.grad - x_torch.grad.numpy()).max() < 1e-12
    for name, p in module.named_parameters():
        assert np.abs(params[name].grad - p.grad.numpy()).max() < 1e-12, name


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_against_torch_autograd(causal):
    torch.manual_seed(1)
    module = MultiHeadAttention(12, 3).double()
    _assert_same_as_torch(
        module,
        lambda x: module(x, is_causal=causal),
        lambda x, params: multi_head_attention(x, params, 3, causal=causal),
        MHA_NAMES,
        (2, 5, 12),
    )


@pytest.mark.parametrize("causal", [False, True])
def test_pre_ln_block_against_torch_autograd(causal):
    torch.manual_seed(2)
    module = Block(16, 4, norm="pre", ffn="gelu", causal=causal).double()
    with torch.no_grad():  # norms away from their initial ones and zeros, so they matter
        for name, p in module.named_parameters():
            if name.startswith("norm"):
                p.add_(torch.randn_like(p) * 0.3)
    _assert_same_as_torch(
        module,
        module,
        lambda x, params: pre_ln_block(x, params, 4, causal=causal),
        BLOCK_NAMES,
        (2, 6, 16),
    )


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="grad: required for a non-scalar tensor"):
        Tensor(np.ones(3)).backward()
    with pytest.raises(ValueError, match=r"grad: expected shape \(3,\), got \(2,\)"):
        Tensor(np.ones(3)).backward(np.ones(2))
    with pytest.raises(ValueError, match="w: expected finite numbers"):
        Tensor([1.0, np.nan], name="w")
    with pytest.raises(ValueError, match="matmul: expected operands of at least 2 dims"):
        Tensor(np.ones(3)) @ Tensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"mask: expected a shape broadcasting to \(2, 3\)"):
        Tensor(np.ones((2, 3))).masked_fill(np.ones((3, 2), dtype=bool), 0.0)
    with pytest.raises(ValueError, match=r"weight: expected \(out_features, 4\)"):
        linear(Tensor(np.ones((2, 4))), Tensor(np.ones((4, 3))))
    params = parameters({n: np.zeros((4, 4)) for n in MHA_NAMES})
    with pytest.raises(ValueError, match="n_heads: expected a divisor of d_model=4, got 3"):
        multi_head_attention(Tensor(np.ones((1, 2, 4))), params, 3)
    with pytest.raises(ValueError, match=r"x: expected \(batch, seq, d_model\)"):
        multi_head_attention(Tensor(np.ones((2, 4))), params, 2)
    with pytest.raises(ValueError, match=r"params: missing attn\.q_proj\.weight, .*norm1\.weight"):
        pre_ln_block(Tensor(np.ones((1, 2, 4))), {**params}, 2)
    with pytest.raises(TypeError, match="power: expected a number"):
        Tensor([1.0]) ** Tensor([2.0])
