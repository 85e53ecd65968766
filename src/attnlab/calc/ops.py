"""Exact operation counts of scaled dot-product attention, ``softmax(Q·Kᵀ/√d_k)·V``.

For ``Q`` ``(n_q, d_k)``, ``K`` ``(n_k, d_k)`` and ``V`` ``(n_k, d_v)`` with textbook matrix
products (a dot product of length ``m`` is ``m`` multiplications and ``m − 1`` additions) and
the softmax as written, ``exp(s_j) / Σ exp(s_i)`` (seed 002, exercise 2c):

=================  =====================  ======================  ==============  ========
stage              multiplications        additions               divisions       exps
=================  =====================  ======================  ==============  ========
``Q·Kᵀ``           ``n_q·n_k·d_k``        ``n_q·n_k·(d_k − 1)``
``/ √d_k``                                                        ``n_q·n_k``
softmax                                   ``n_q·(n_k − 1)``       ``n_q·n_k``     ``n_q·n_k``
``A·V``            ``n_q·d_v·n_k``        ``n_q·d_v·(n_k − 1)``
=================  =====================  ======================  ==============  ========

The numerically stable softmax also subtracts each row's maximum (``n_q·n_k`` subtractions,
``n_q·(n_k − 1)`` comparisons); the exercise leaves that out and so do these counts. Tested
against a scalar implementation that counts every operation it performs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .figures import Figures, Part, check_positive_int, figure


@dataclass(frozen=True)
class AttentionOps(Figures):
    """Exact operation counts of ``n_heads`` independent scaled dot-product attentions."""

    n_q: int
    n_k: int
    d_k: int
    d_v: int
    n_heads: int
    multiplications: int = figure("H·(n_q·n_k·d_k + n_q·d_v·n_k)")
    additions: int = figure("H·(n_q·n_k·(d_k−1) + n_q·(n_k−1) + n_q·d_v·(n_k−1))")
    divisions: int = figure("H·(n_q·n_k scaling + n_q·n_k softmax)")
    exps: int = figure("H·n_q·n_k")
    total_ops: int = figure("multiplications + additions + divisions (exps not counted)")
    matmul_flops: int = figure("2·H·n_q·n_k·(d_k + d_v): FLOP-counter convention", "flops")
    parts: tuple[Part, ...] = ()


def attention_ops(
    n_q: int, n_k: int, d_k: int, d_v: int | None = None, *, n_heads: int = 1
) -> AttentionOps:
    """Count the multiplications, additions, divisions and exps of attention.

    Args:
        n_q, n_k: queries and keys (``seq_q``, ``seq_k``).
        d_k: width of a query/key head.
        d_v: width of a value head (default ``d_k``).
        n_heads: heads computed side by side; every count is multiplied by it.
    """
    n_q = check_positive_int("n_q", n_q)
    n_k = check_positive_int("n_k", n_k)
    d_k = check_positive_int("d_k", d_k)
    d_v = d_k if d_v is None else check_positive_int("d_v", d_v)
    h = check_positive_int("n_heads", n_heads)
    parts = (
        Part("scores_multiplications", h * n_q * n_k * d_k, "n_q·n_k·d_k"),
        Part("scores_additions", h * n_q * n_k * (d_k - 1), "n_q·n_k·(d_k − 1)"),
        Part("scaling_divisions", h * n_q * n_k, "n_q·n_k"),
        Part("softmax_exps", h * n_q * n_k, "n_q·n_k"),
        Part("softmax_additions", h * n_q * (n_k - 1), "n_q·(n_k − 1)"),
        Part("softmax_divisions", h * n_q * n_k, "n_q·n_k"),
        Part("values_multiplications", h * n_q * d_v * n_k, "n_q·d_v·n_k"),
        Part("values_additions", h * n_q * d_v * (n_k - 1), "n_q·d_v·(n_k − 1)"),
    )
    by = {p.name: p.value for p in parts}
    mults = by["scores_multiplications"] + by["values_multiplications"]
    adds = by["scores_additions"] + by["softmax_additions"] + by["values_additions"]
    divs = by["scaling_divisions"] + by["softmax_divisions"]
    return AttentionOps(
        n_q=n_q,
        n_k=n_k,
        d_k=d_k,
        d_v=d_v,
        n_heads=h,
        multiplications=mults,
        additions=adds,
        divisions=divs,
        exps=by["softmax_exps"],
        total_ops=mults + adds + divs,
        matmul_flops=2 * h * n_q * n_k * (d_k + d_v),
        parts=parts,
    )


@dataclass(frozen=True)
class HeadSplit(Figures):
    """``H`` heads of width ``d/H`` against one head of width ``d`` (seed 000, exercise 7)."""

    multi_head: AttentionOps
    one_head: AttentionOps
    multiplications_ratio: float = figure("H·T²·(d/H) / (T²·d) = 1 exactly", "ratio")
    additions_difference: int = figure("−(H−1)·n_q: shorter dot products, more softmax sums")
    divisions_ratio: float = figure("H: scaling and softmax run once per head", "ratio")
    exps_ratio: float = figure("H: one softmax per head", "ratio")
    total_ops_ratio: float = figure("multi-head total / one-head total", "ratio")


def head_split(
    n_q: int, n_k: int, head_dim: int, n_heads: int, d_v: int | None = None
) -> HeadSplit:
    """Compare ``n_heads`` heads of ``head_dim`` with one head of ``n_heads·head_dim``.

    The products cost the same, ``H·T²·(d/H) = T²·d``; the softmax runs per head, so divisions
    and exps grow ``H``-fold: a term linear in ``T²`` but not in ``d``, small next to ``T²·d``.
    """
    multi = attention_ops(n_q, n_k, head_dim, d_v, n_heads=n_heads)
    one = attention_ops(n_q, n_k, multi.d_k * multi.n_heads, multi.d_v * multi.n_heads)
    return HeadSplit(
        multi_head=multi,
        one_head=one,
        multiplications_ratio=multi.multiplications / one.multiplications,
        additions_difference=multi.additions - one.additions,
        divisions_ratio=multi.divisions / one.divisions,
        exps_ratio=multi.exps / one.exps,
        total_ops_ratio=multi.total_ops / one.total_ops,
    )


@dataclass(frozen=True)
class LengthRatio(Figures):
    """How attention's cost grows from length ``n_from`` to ``n_to`` (``n_q = n_k = n``)."""

    n_from: int
    n_to: int
    quadratic_ratio: float = figure("(n_to / n_from)²: the O(T²) estimate", "ratio")
    matmul_flops_ratio: float = figure("2·n²·(d_k + d_v) grows exactly as n²", "ratio")
    multiplications_ratio: float = figure("exact", "ratio")
    total_ops_ratio: float = figure("exact: the n·(…) terms make it slightly off n²", "ratio")


def length_ratio(
    n_from: int, n_to: int, d_k: int = 64, d_v: int | None = None, *, n_heads: int = 1
) -> LengthRatio:
    """The cost ratio of self-attention at two lengths (seed 000, exercise 9).

    ``length_ratio(2048, 32768)``: ``(32768 / 2048)² = 16² = 256``.
    """
    short = attention_ops(n_from, n_from, d_k, d_v, n_heads=n_heads)
    long = attention_ops(n_to, n_to, d_k, d_v, n_heads=n_heads)
    return LengthRatio(
        n_from=short.n_q,
        n_to=long.n_q,
        quadratic_ratio=(long.n_q / short.n_q) ** 2,
        matmul_flops_ratio=long.matmul_flops / short.matmul_flops,
        multiplications_ratio=long.multiplications / short.multiplications,
        total_ops_ratio=long.total_ops / short.total_ops,
    )
