"""Hard (argmax) attention: the lookup, ties, masks and where gradients go."""

import numpy as np
import torch

from attnlab import ref
from attnlab.functional import argmax_attention, scaled_dot_product_attention
from helpers import max_abs, randn

SEED_003_Q = [[1.0, 1, 2]]
SEED_003_K = [[1.0, 2, 0], [0, 3, 4], [5, 0, 0], [0, 0, 1]]
SEED_003_V = [[2.0, 0, 1], [1, 4, 3], [0, -1, 4], [1, 0, -1]]


def test_seed_003_problem_2():
    q, k, v = (torch.tensor(x, dtype=torch.float64) for x in (SEED_003_Q, SEED_003_K, SEED_003_V))
    out, weights = argmax_attention(q, k, v, return_weights=True)
    assert out.tolist() == [[1.0, 4.0, 3.0]]
    assert weights.tolist() == [[0.0, 1.0, 0.0, 0.0]]
    assert ref.argmax_attention(SEED_003_Q, SEED_003_K, SEED_003_V).tolist() == [[1.0, 4.0, 3.0]]


def test_matches_the_reference_and_is_the_limit_of_sharp_softmax():
    q, k, v = randn(2, 5, 6), randn(2, 7, 6, seed=1), randn(2, 7, 3, seed=2)
    out = argmax_attention(q, k, v)
    assert max_abs(out, ref.argmax_attention(q.numpy(), k.numpy(), v.numpy())) == 0
    sharp = scaled_dot_product_attention(q, k, v, scale=1e4)
    assert max_abs(out, sharp) < 1e-6


def test_ties_go_to_the_lowest_key_index():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    v = torch.tensor([[1.0], [2.0], [3.0]])
    assert argmax_attention(q, k, v).item() == 2.0
    assert ref.argmax_attention(q.numpy(), k.numpy(), v.numpy()).item() == 2.0


def test_masks_and_causality():
    q, k, v = randn(1, 4, 3), randn(1, 4, 3, seed=1), randn(1, 4, 2, seed=2)
    _, weights = argmax_attention(q, k, v, is_causal=True, return_weights=True)
    assert torch.all(weights.triu(1) == 0) and torch.all(weights.sum(-1) == 1)
    empty = torch.ones(4, 4, dtype=torch.bool)
    empty[1] = False
    out = argmax_attention(q, k, v, attn_mask=empty)
    assert torch.all(out[:, 1] == 0)


def test_gradient_reaches_only_the_values():
    q, k, v = (randn(1, 3, 4, seed=i).requires_grad_() for i in range(3))
    argmax_attention(q, k, v).sum().backward()
    assert q.grad is None and k.grad is None
    assert v.grad is not None and v.grad.abs().sum() > 0
    # every query picks one key, so the value gradient counts how often each key was chosen
    picks = (q @ k.transpose(-1, -2)).argmax(-1)
    counts = np.bincount(picks.flatten().numpy(), minlength=3)
    assert v.grad[0, :, 0].tolist() == counts.tolist()


def test_gqa():
    q, k, v = randn(1, 4, 3, 5), randn(1, 2, 6, 5, seed=1), randn(1, 2, 6, 2, seed=2)
    expected = argmax_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1))
    assert torch.equal(argmax_attention(q, k, v, enable_gqa=True), expected)
