"""One incremental decoding step: compute, memory traffic and arithmetic intensity.

Following Shazeer (2019), "Fast Transformer Decoding: One Write-Head is All You Need", and
seed 003, problem 4: a batch of ``b`` new tokens, each attending to ``n`` cached keys, through
one attention layer of width ``d`` with ``h`` query heads. Compute is ``O(b·d² + b·n·d)`` for
every layout. Memory traffic is the weights ``O(d²)``, the tokens ``O(b·d)`` and the cache:
``O(b·n·d)`` for MHA, ``O(b·n·d/h)`` for MQA (one key/value head), ``O(b·n·d·g/h)`` for GQA
with ``g`` key/value heads. Memory over compute is ``O(n/d + 1/b)`` for MHA, so a long cache
makes decoding memory-bound; MQA brings it to ``O(1/d + n/(d·h) + 1/b)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import head_layouts, layout_name
from .figures import Figures, Part, check_divides, check_positive_int, figure
from .kv_cache import canonical_dtype, dtype_bytes

BIG_O = {
    "mha": ("O(b·d² + b·n·d)", "O(d² + b·d + b·n·d)", "O(n/d + 1/b)"),
    "gqa": ("O(b·d² + b·n·d)", "O(d² + b·d + b·n·d·g/h)", "O(1/d + n·g/(d·h) + 1/b)"),
    "mqa": ("O(b·d² + b·n·d)", "O(d² + b·d + b·n·d/h)", "O(1/d + n/(d·h) + 1/b)"),
}


@dataclass(frozen=True)
class DecodeStep(Figures):
    """One decoding step of ``n_layers`` attention layers for one head layout."""

    layout: str
    batch: int
    context: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_layers: int
    dtype: str
    flops: int = figure("L·(2·b·d·(h + 2·g)·d_head + 2·b·h·d_head·d + 4·b·h·d_head·n)", "flops")
    memory_bytes: int = figure("bytes · L·(weights + 2·b·d + 2·b·n·g·d_head)", "bytes")
    arithmetic_intensity: float = figure("flops / memory_bytes", "flops_per_byte")
    compute_big_o: str = figure("Shazeer (2019), seed 003 P4 (f)", "text")
    memory_big_o: str = figure("Shazeer (2019), seed 003 P4 (g)", "text")
    memory_to_compute_big_o: str = figure("memory / compute, Shazeer (2019)", "text")
    parts: tuple[Part, ...] = ()


def decode_step(
    batch: int,
    context: int,
    d_model: int,
    n_heads: int,
    n_kv_heads: int | None = None,
    *,
    n_layers: int = 1,
    dtype: str = "fp16",
) -> DecodeStep:
    """Compute and memory traffic of one decoding step.

    Args:
        batch: sequences decoded together ``b``, one new token each.
        context: keys each new query attends to ``n`` (the cache, new token included).
        d_model: width ``d``; ``n_heads`` must divide it (``d_head = d / h``).
        n_heads: query heads ``h``.
        n_kv_heads: key/value heads ``g`` (default ``h``: MHA; 1: MQA).
        n_layers: layers (default 1: the figures of seed 003 are per layer).
        dtype: storage type of weights, activations and cache (bytes per element).

    Memory traffic counts what must be read or written at least once: every weight, the input
    and output tokens ``2·b·d`` and the cached keys and values ``2·b·n·g·d_head``; the new
    token's ``q, k, v`` and scores are assumed to stay on chip.
    """
    b = check_positive_int("batch", batch)
    n = check_positive_int("context", context)
    d = check_positive_int("d_model", d_model)
    h = check_positive_int("n_heads", n_heads)
    check_divides("n_heads", h, "d_model", d)
    g = h if n_kv_heads is None else check_positive_int("n_kv_heads", n_kv_heads)
    check_divides("n_kv_heads", g, "n_heads", h)
    L = check_positive_int("n_layers", n_layers)
    size = dtype_bytes(dtype)
    hd = d // h
    layout = layout_name(h, g)

    projections = L * (2 * b * d * (h + 2 * g) * hd + 2 * b * h * hd * d)
    attention = L * 4 * b * h * hd * n  # scores and weighted values, 2·b·h·d_head·n each
    weights = L * (2 * d * h * hd + 2 * d * g * hd) * size
    tokens = L * 2 * b * d * size
    cache = L * 2 * b * n * g * hd * size
    compute_o, memory_o, ratio_o = BIG_O[layout]
    return DecodeStep(
        layout=layout,
        batch=b,
        context=n,
        d_model=d,
        n_heads=h,
        n_kv_heads=g,
        head_dim=hd,
        n_layers=L,
        dtype=canonical_dtype(dtype),
        flops=projections + attention,
        memory_bytes=weights + tokens + cache,
        arithmetic_intensity=(projections + attention) / (weights + tokens + cache),
        compute_big_o=compute_o,
        memory_big_o=memory_o,
        memory_to_compute_big_o=ratio_o,
        parts=(
            Part("projection_flops", projections, "L·(2·b·d·(h + 2g)·d_head + 2·b·d²)", "flops"),
            Part("attention_flops", attention, "L·4·b·h·d_head·n  (Q·Kᵀ and A·V)", "flops"),
            Part("weight_bytes", weights, "L·(2·d² + 2·d·g·d_head)·bytes", "bytes"),
            Part("token_bytes", tokens, "L·2·b·d·bytes  (x in, y out)", "bytes"),
            Part("cache_bytes", cache, "L·2·b·n·g·d_head·bytes  (K and V)", "bytes"),
        ),
    )


def decode_layouts(
    batch: int, context: int, d_model: int, n_heads: int, n_kv_heads: int | None = None, **kw
) -> tuple[DecodeStep, ...]:
    """:func:`decode_step` for MHA, GQA and MQA side by side."""
    h = check_positive_int("n_heads", n_heads)
    if n_kv_heads is not None:
        check_divides("n_kv_heads", check_positive_int("n_kv_heads", n_kv_heads), "n_heads", h)
    return tuple(
        decode_step(batch, context, d_model, h, g, **kw) for _, g in head_layouts(h, n_kv_heads)
    )
