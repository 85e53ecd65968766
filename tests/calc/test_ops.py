"""Operation counts of attention against a scalar implementation that counts what it does."""

import math
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.calc import attention_ops, head_split, length_ratio


class Scalar:
    """A float that records every *, +, / it takes part in, in a shared counter."""

    def __init__(self, value: float, ops: Counter):
        self.value, self.ops = value, ops

    def _other(self, other) -> float:
        return other.value if isinstance(other, Scalar) else other

    def __mul__(self, other):
        self.ops["multiplications"] += 1
        return Scalar(self.value * self._other(other), self.ops)

    def __add__(self, other):
        self.ops["additions"] += 1
        return Scalar(self.value + self._other(other), self.ops)

    def __truediv__(self, other):
        self.ops["divisions"] += 1
        return Scalar(self.value / self._other(other), self.ops)

    def exp(self):
        self.ops["exps"] += 1
        return Scalar(math.exp(self.value), self.ops)


def dot(xs, ys):
    """Textbook dot product: the first product starts the sum (m mults, m − 1 adds)."""
    total = xs[0] * ys[0]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        total = total + x * y
    return total


def counted_attention(Q, K, V):
    """softmax(Q·Kᵀ/√d_k)·V over lists of floats, counting each scalar operation."""
    ops = Counter()
    wrap = lambda rows: [[Scalar(x, ops) for x in row] for row in rows]  # noqa: E731
    Q, K, V = wrap(Q), wrap(K), wrap(V)
    root = math.sqrt(len(Q[0]))  # a constant, computed once, not counted
    out = []
    for q in Q:
        scores = [dot(q, k) / root for k in K]
        exps = [s.exp() for s in scores]
        total = exps[0]
        for e in exps[1:]:
            total = total + e
        weights = [e / total for e in exps]
        columns = list(zip(*V, strict=True))
        out.append([dot(weights, list(column)).value for column in columns])
    return out, ops


def random_rows(rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g, dtype=torch.float64).tolist()


@given(n_q=st.integers(1, 5), n_k=st.integers(1, 5), d_k=st.integers(1, 5), d_v=st.integers(1, 5))
def test_counts_match_an_instrumented_run(n_q, n_k, d_k, d_v):
    Q, K, V = random_rows(n_q, d_k, 0), random_rows(n_k, d_k, 1), random_rows(n_k, d_v, 2)
    out, ops = counted_attention(Q, K, V)
    count = attention_ops(n_q, n_k, d_k, d_v)
    assert ops == Counter(
        {
            name: value
            for name in ("multiplications", "additions", "divisions", "exps")
            if (value := getattr(count, name))
        }
    )
    assert count.total_ops == ops["multiplications"] + ops["additions"] + ops["divisions"]
    reference = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(m, dtype=torch.float64) for m in (Q, K, V))
    )
    assert torch.allclose(torch.tensor(out, dtype=torch.float64), reference, atol=1e-12)


def test_seed_002_exercise_2c_sizes():
    """Q 2×2, K 3×2, V 3×3 (exercise 3's matrices) with exercise 2c's formulas."""
    count = attention_ops(2, 3, 2, 3)
    assert count.multiplications == 2 * 3 * 2 + 2 * 3 * 3 == 30
    assert count.additions == 2 * 3 * 1 + 2 * 2 + 2 * 3 * 2 == 22
    assert count.divisions == 2 * 3 + 2 * 3 == 12
    assert count.exps == 6


@pytest.mark.parametrize(("heads", "d_model"), [(2, 8), (4, 8), (8, 64)])
def test_heads_of_d_over_h_cost_one_head_of_d(heads, d_model):
    """Seed 000, exercise 7: H heads of d/H do the products of one head of d."""
    n_q, n_k = 5, 7
    split = head_split(n_q, n_k, d_model // heads, heads)
    per_head = Counter()
    for h in range(heads):
        Q, K, V = (
            random_rows(n, d_model // heads, 10 * h + i) for i, n in enumerate((n_q, n_k, n_k))
        )
        per_head += counted_attention(Q, K, V)[1]
    assert per_head["multiplications"] == split.multi_head.multiplications
    assert per_head["additions"] == split.multi_head.additions
    assert split.multiplications_ratio == 1
    assert split.additions_difference == -(heads - 1) * n_q
    assert split.divisions_ratio == split.exps_ratio == heads


def test_seed_000_exercise_9_ratio_256():
    ratio = length_ratio(2048, 32768)
    assert ratio.quadratic_ratio == 256
    assert ratio.matmul_flops_ratio == 256
    assert ratio.multiplications_ratio == 256
    assert ratio.total_ops_ratio == pytest.approx(256, rel=1e-3)
