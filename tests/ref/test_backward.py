"""The hand-written attention backward pass against torch autograd, in float64."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlab import ref
from helpers import max_abs


@given(
    batch=st.integers(1, 3),
    seq_q=st.integers(1, 7),
    seq_k=st.integers(1, 7),
    d_k=st.integers(1, 8),
    d_v=st.integers(1, 8),
    mask_kind=st.sampled_from(["none", "causal", "bool", "additive"]),
    seed=st.integers(0, 10_000),
)
def test_backward_matches_autograd(batch, seq_q, seq_k, d_k, d_v, mask_kind, seed):
    rng = np.random.default_rng(seed)
    Q, K = rng.standard_normal((batch, seq_q, d_k)), rng.standard_normal((batch, seq_k, d_k))
    V, dout = rng.standard_normal((batch, seq_k, d_v)), rng.standard_normal((batch, seq_q, d_v))
    mask = None
    if mask_kind == "causal":
        K = rng.standard_normal((batch, seq_q, d_k))  # a causal mask is square
        V = rng.standard_normal((batch, seq_q, d_v))
        mask = ref.create_causal_mask(seq_q)
    elif mask_kind == "bool":
        mask = rng.random((seq_q, seq_k)) > 0.4  # may leave a row with nothing: zero gradient
    elif mask_kind == "additive":
        mask = rng.standard_normal((batch, seq_q, seq_k))

    leaves = [torch.tensor(a, requires_grad=True) for a in (Q, K, V)]
    torch_mask = None if mask is None else torch.from_numpy(np.asarray(mask))
    if torch_mask is not None and torch_mask.dtype != torch.bool:
        torch_mask = torch_mask.double()
    out = F.scaled_dot_product_attention(*leaves, attn_mask=torch_mask)
    (out * torch.from_numpy(dout)).sum().backward()  # loss whose ∂loss/∂out is dout

    grads = ref.attention_backward(Q, K, V, dout, mask)
    for mine, leaf in zip(grads, leaves, strict=True):
        assert mine.shape == leaf.shape
        assert max_abs(mine, leaf.grad) <= 1e-10


def test_forward_cache_backward_pair():
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    out, cache = ref.attention_forward(Q, K, V)
    assert np.allclose(out, ref.attention(Q, K, V), atol=1e-15, rtol=0)
    dout = rng.standard_normal(out.shape)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            ref.attention_backward_from_cache(dout, cache),
            ref.attention_backward(Q, K, V, dout),
            strict=True,
        )
    )
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(2, 4, 3\)"):
        ref.attention_backward_from_cache(np.ones((2, 4)), cache)


def test_finite_differences():
    """An independent check without torch: central differences of loss = Σ out ∘ dout."""
    rng = np.random.default_rng(1)
    Q, K, V = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    dout = rng.standard_normal((3, 3))
    grads = ref.attention_backward(Q, K, V, dout)
    eps = 1e-6
    for index, array in enumerate((Q, K, V)):
        numeric = np.zeros_like(array)
        for pos in np.ndindex(array.shape):
            args = [Q.copy(), K.copy(), V.copy()]
            args[index][pos] += eps
            plus = (ref.attention(*args) * dout).sum()
            args[index][pos] -= 2 * eps
            minus = (ref.attention(*args) * dout).sum()
            numeric[pos] = (plus - minus) / (2 * eps)
        assert np.abs(numeric - grads[index]).max() < 1e-8
