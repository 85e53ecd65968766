"""Positional modules: shapes, parameter counts, and equality with the functions they wrap."""

import pytest
import torch

from attnlab.functional import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    relative_attention,
    sinusoidal_encoding,
)
from attnlab.nn import (
    ALiBi,
    LearnedPositions,
    RelativePositions,
    RotaryEmbedding,
    SinusoidalPositions,
)
from helpers import max_abs, randn


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def test_sinusoidal_positions():
    module = SinusoidalPositions(10, max_len=32)
    assert n_parameters(module) == 0
    assert "encoding" not in module.state_dict()
    assert torch.equal(module(7), sinusoidal_encoding(7, 10))
    assert torch.equal(module(5, offset=27), sinusoidal_encoding(5, 10, offset=27))
    assert module.double()(3).dtype == torch.float64


def test_learned_positions():
    module = LearnedPositions(16, 6)
    assert n_parameters(module) == 16 * 6
    out = module(4, offset=3)
    assert out.shape == (4, 6)
    assert torch.equal(out, module.embedding.weight[3:7])
    out.sum().backward()
    assert module.embedding.weight.grad[3:7].abs().sum() > 0
    assert module.embedding.weight.grad[:3].abs().sum() == 0


@pytest.mark.parametrize("module", [SinusoidalPositions(4, max_len=8), LearnedPositions(8, 4)])
def test_positions_past_max_len(module):
    module(8)
    module(2, offset=6)
    with pytest.raises(ValueError, match=r"max_len=8, got 9 \(offset=0, seq_len=9\)"):
        module(9)
    with pytest.raises(ValueError, match=r"max_len=8, got 10 \(offset=7, seq_len=3\)"):
        module(3, offset=7)
    with pytest.raises(ValueError, match="offset"):
        module(3, offset=-1)


@pytest.mark.parametrize("interleaved", [True, False])
def test_rotary_embedding(interleaved):
    module = RotaryEmbedding(8, base=500.0, interleaved=interleaved)
    assert n_parameters(module) == 0
    x = randn(2, 3, 5, 8)
    expected = apply_rope(x, offset=4, base=500.0, interleaved=interleaved)
    assert torch.equal(module(x, offset=4), expected)
    with pytest.raises(ValueError, match=r"head_dim=8.*\(2, 3, 5, 6\)"):
        module(randn(2, 3, 5, 6))
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_alibi():
    module = ALiBi(6)
    assert n_parameters(module) == 0
    assert "slopes" not in module.state_dict()
    assert torch.equal(module.slopes, alibi_slopes(6))
    assert torch.equal(module(3, 7), alibi_bias(6, 3, 7))
    bias = module(2, 4, dtype=torch.float64)
    assert bias.shape == (6, 2, 4) and bias.dtype == torch.float64


def test_relative_positions():
    d_model, n_heads = 12, 3
    module = RelativePositions(d_model, n_heads).double()
    assert n_parameters(module) == d_model**2 + 2 * d_model
    assert module.bias_u.shape == module.bias_v.shape == (n_heads, 4)
    torch.nn.init.normal_(module.W_kR.weight, generator=torch.Generator().manual_seed(0))
    pos_embed = module(7)
    assert pos_embed.shape == (n_heads, 7, 4)
    # Row m is distance 7 − 1 − m: the projected sinusoid of that distance, split into heads.
    sinusoid = sinusoidal_encoding(7, d_model, dtype=torch.float64)
    for m in range(7):
        projected = module.W_kR.weight @ sinusoid[7 - 1 - m]
        assert max_abs(pos_embed[:, m], projected.view(n_heads, 4)) <= 1e-12
    # Descending order: the last rows of a longer table are a shorter one.
    assert max_abs(module(10)[:, 10 - 7 :], pos_embed) <= 1e-12


def test_relative_positions_feed_relative_attention():
    module = RelativePositions(8, 2).double()
    q, k, v = randn(1, 2, 3, 4), randn(1, 2, 5, 4, seed=1), randn(1, 2, 5, 4, seed=2)
    out = relative_attention(q, k, v, module(5), module.bias_u, module.bias_v)
    assert out.shape == (1, 2, 3, 4)
    out.sum().backward()
    assert module.W_kR.weight.grad is not None and module.bias_u.grad is not None


def test_relative_positions_bad_heads():
    with pytest.raises(
        ValueError, match=r"n_heads: expected a divisor of d_model=10, got n_heads=4"
    ):
        RelativePositions(10, 4)
