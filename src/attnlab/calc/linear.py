"""Matmul FLOPs of kernelized (linear) attention beside those of softmax attention.

Softmax attention forms every query-key score: ``Q·Kᵀ`` and ``A·V`` cost
``2·T²·(d + d_v)`` FLOPs per head, O(T²·D). Linear attention with a feature map ``φ`` of ``r``
features (seed 003 problem 6, seed 004 exercise 13.32; Katharopoulos et al., 2020) computes
``φ(Q)·(φ(K)ᵀ[V | 1])`` instead, O(T·r·D). The counts follow
:func:`attnlab.functional.linear_attention` product by product, in the convention of
``torch.utils.flop_counter.FlopCounterMode`` (a product of ``(m, k)`` by ``(k, n)`` is
``2·m·k·n`` FLOPs; element-wise work is not counted):

==============================  ==========================================================
not causal                      ``φ(K)ᵀV``: ``2·T·r·d_v``; ``φ(Q)·[S | z]``: ``2·T·r·(d_v + 1)``
causal, per chunk of ``c``      ``φ(K_c)ᵀ[V_c | 1]`` and ``φ(Q_c)·state``: ``4·c·r·(d_v + 1)``;
                                masked ``φ(Q_c)φ(K_c)ᵀ`` and its product with ``[V_c | 1]``:
                                ``2·c²·(r + d_v + 1)``
FAVOR+ projections              ``Q·ω`` and ``K·ω``: ``4·T·d·r``
==============================  ==========================================================

The causal form runs ``⌊T/C⌋`` chunks of ``C = min(chunk, T)`` tokens and one last chunk of
``T mod C``, so its chunk term is ``2·(r + d_v + 1)·(C·(T − T mod C) + (T mod C)²)``: linear in
T for a fixed chunk. The softmax count beside it is ``2·T²·(d + d_v)`` per head
(:func:`attnlab.calc.attention_ops`'s ``matmul_flops``) and, causal, that of the pairs
``j ≤ i`` only, ``T·(T + 1)/2`` of them: what a causal kernel needs, not what
``FlopCounterMode`` reports for ``scaled_dot_product_attention(is_causal=True)`` (the full T²).
Heads are counted as independent (no key/value heads shared between query heads).
"""

from __future__ import annotations

from dataclasses import dataclass

from .figures import Figures, Part, check_bool, check_positive_int, figure

# Tokens per causal chunk: attnlab.functional.linear.CHUNK (tests keep the two equal; calc
# imports no torch).
CHUNK = 64


# Feature dimension r of each map of attnlab.functional.feature_maps from the head width d (and
# the number of random features for FAVOR+), and whether the map first projects by a (d, r)
# matrix. Tests keep r equal to FeatureMap.output_dim.
FEATURE_MAPS = ("elu", "relu", "poly2", "favor+")


def feature_dim(feature_map: str, head_dim: int, n_features: int = 256) -> tuple[int, bool]:
    """``(r, projection)`` of a feature map by name: ``d`` for elu and relu, ``1 + d +
    d·(d+1)/2`` for poly2, ``n_features`` (with a projection) for FAVOR+."""
    d = check_positive_int("head_dim", head_dim)
    if feature_map in ("elu", "relu"):
        return d, False
    if feature_map == "poly2":
        return 1 + d + d * (d + 1) // 2, False
    if feature_map == "favor+":
        return check_positive_int("n_features", n_features), True
    raise ValueError(f"feature_map: expected one of {FEATURE_MAPS}, got {feature_map!r}")


@dataclass(frozen=True)
class LinearAttentionOps(Figures):
    """Matmul FLOPs of one linear-attention forward and of softmax attention on the same shape."""

    seq: int
    head_dim: int
    d_value: int
    n_features: int
    causal: bool
    chunk: int
    projection: bool
    n_heads: int
    matmul_flops: int = figure(
        "H·2·T·r·(2·d_v + 1); causal H·(4·T·r·(d_v + 1) + 2·(r + d_v + 1)·Σ c²); "
        "FAVOR+ adds H·4·T·d·r: O(N·r·D)",
        "flops",
    )
    softmax_matmul_flops: int = figure(
        "H·2·T²·(d + d_v); causal H·T·(T + 1)·(d + d_v): O(N²·D)", "flops"
    )
    flop_ratio: float = figure("softmax_matmul_flops / matmul_flops", "ratio")
    parts: tuple[Part, ...] = ()


def linear_attention_ops(
    seq: int,
    head_dim: int,
    n_features: int,
    *,
    d_value: int | None = None,
    causal: bool = False,
    chunk: int = CHUNK,
    projection: bool = False,
    n_heads: int = 1,
) -> LinearAttentionOps:
    """Count the matmul FLOPs of linear attention and of softmax attention on ``seq`` tokens.

    Args:
        seq: tokens ``T`` (queries and keys alike: self-attention).
        head_dim: width ``d`` of a query/key head.
        n_features: ``r``, the feature dimension of ``φ`` (``FeatureMap.output_dim(d)``:
            ``d`` for elu, ``1 + d + d·(d+1)/2`` for poly2, the number of random features for
            FAVOR+).
        d_value: width of a value head (default ``head_dim``).
        causal: each query sums over keys ``j ≤ i`` (chunked prefix sums).
        chunk: tokens per causal chunk (``attnlab.functional.linear.CHUNK``).
        projection: ``φ`` first multiplies queries and keys by a ``(d, r)`` matrix (FAVOR+).
        n_heads: heads (times batch) computed side by side; every count is multiplied by it.
    """
    T = check_positive_int("seq", seq)
    d = check_positive_int("head_dim", head_dim)
    r = check_positive_int("n_features", n_features)
    dv = d if d_value is None else check_positive_int("d_value", d_value)
    causal = check_bool("causal", causal)
    chunk = check_positive_int("chunk", chunk)
    projection = check_bool("projection", projection)
    h = check_positive_int("n_heads", n_heads)
    state_products = h * 2 * T * r * (dv + 1)  # every token's features times an (r, d_v + 1)
    if causal:
        c = min(chunk, T)
        last = T % c
        chunk_terms = c * (T - last) + last * last  # Σ over chunks of (chunk length)²
        parts = [
            Part("chunk_sums", state_products, "2·T·r·(d_v + 1): φ(K_c)ᵀ[V_c | 1]", "flops"),
            Part("earlier_chunks", state_products, "2·T·r·(d_v + 1): φ(Q_c)·state", "flops"),
            Part("chunk_scores", h * 2 * r * chunk_terms, "2·r·Σ c²: φ(Q_c)φ(K_c)ᵀ", "flops"),
            Part("chunk_values", h * 2 * (dv + 1) * chunk_terms, "2·(d_v + 1)·Σ c²", "flops"),
        ]
    else:
        parts = [
            Part("key_value_sum", h * 2 * T * r * dv, "2·T·r·d_v: φ(K)ᵀV", "flops"),
            Part("query_product", state_products, "2·T·r·(d_v + 1): φ(Q)·[S | z]", "flops"),
        ]
    if projection:
        parts.append(Part("projections", h * 4 * T * d * r, "2 · 2·T·d·r: Q·ω and K·ω", "flops"))
    flops = sum(p.value for p in parts)
    pairs = T * (T + 1) // 2 if causal else T * T  # the (query, key) pairs scored
    softmax = 2 * h * pairs * (d + dv)  # not causal: attention_ops(T, T, d, d_v).matmul_flops
    return LinearAttentionOps(
        seq=T,
        head_dim=d,
        d_value=dv,
        n_features=r,
        causal=causal,
        chunk=chunk,
        projection=projection,
        n_heads=h,
        matmul_flops=flops,
        softmax_matmul_flops=softmax,
        flop_ratio=softmax / flops,
        parts=tuple(parts),
    )
