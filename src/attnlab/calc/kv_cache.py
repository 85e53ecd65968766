"""Key/value cache memory: bytes per token, per sequence and per batch, for MHA, GQA and MQA.

Decoding keeps the keys *and* the values of every earlier token in every layer, so one token
costs ``2 · L · n_kv · d_head · bytes(dtype)``. Sharing key/value heads between query heads
(GQA, Ainslie et al., 2023; MQA, Shazeer, 2019) divides that by ``n_heads / n_kv``. Checked
against the tensors of a filled ``attnlab.nn.KVCache``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import head_layouts, layout_name
from .figures import Figures, Part, check_divides, check_positive_int, figure

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1, "fp64": 8}
DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
                 "float64": "fp64", "float8": "fp8"}  # fmt: skip


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a storage type: fp32 4, fp16 and bf16 2, int8 and fp8 1, fp64 8."""
    if not isinstance(dtype, str):
        raise TypeError(f"dtype: expected a name such as 'fp16', got {type(dtype).__name__}")
    name = DTYPE_ALIASES.get(dtype.lower(), dtype.lower())
    if name not in DTYPE_BYTES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    return DTYPE_BYTES[name]


def canonical_dtype(dtype: str) -> str:
    dtype_bytes(dtype)
    return DTYPE_ALIASES.get(dtype.lower(), dtype.lower())


@dataclass(frozen=True)
class KVCacheSize(Figures):
    """Memory of a KV cache for one head layout."""

    layout: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    value_dim: int
    context: int
    batch: int
    dtype: str
    bytes_per_element: int
    bytes_per_token: int = figure(
        "L·n_kv·(d_head + d_value)·bytes = 2·L·n_kv·d_head·bytes", "bytes"
    )
    bytes_per_sequence: int = figure("bytes_per_token · context", "bytes")
    total_bytes: int = figure("bytes_per_sequence · batch", "bytes")
    fraction_of_mha: float = figure("n_kv / n_heads", "fraction")
    parts: tuple[Part, ...] = ()


def kv_cache(
    n_layers: int,
    n_heads: int,
    head_dim: int,
    n_kv_heads: int | None = None,
    *,
    context: int = 1,
    batch: int = 1,
    dtype: str = "fp16",
    value_dim: int | None = None,
) -> KVCacheSize:
    """Bytes of the key/value cache of ``batch`` sequences of ``context`` tokens.

    Args:
        n_layers: attention layers ``L``.
        n_heads: query heads (for naming the layout and the saving against MHA).
        head_dim: width of one key head ``d_head``.
        n_kv_heads: key/value heads (default ``n_heads``); must divide ``n_heads``.
        context: tokens cached per sequence.
        batch: sequences.
        dtype: storage type: fp32, fp16, bf16, int8, fp8 (or fp64).
        value_dim: width of one value head (default ``head_dim``).

    Exercise 13.14: ``kv_cache(80, 64, 128, context=32768, dtype="fp16")`` is 2,621,440 bytes
    per token (2.62 MB) and 85,899,345,920 bytes (85.9 GB, 80 GiB) per sequence.
    """
    n_layers = check_positive_int("n_layers", n_layers)
    n_heads = check_positive_int("n_heads", n_heads)
    head_dim = check_positive_int("head_dim", head_dim)
    n_kv_heads = n_heads if n_kv_heads is None else check_positive_int("n_kv_heads", n_kv_heads)
    check_divides("n_kv_heads", n_kv_heads, "n_heads", n_heads)
    context = check_positive_int("context", context)
    batch = check_positive_int("batch", batch)
    value_dim = head_dim if value_dim is None else check_positive_int("value_dim", value_dim)
    size = dtype_bytes(dtype)
    keys = n_layers * n_kv_heads * head_dim * size
    values = n_layers * n_kv_heads * value_dim * size
    per_token = keys + values
    scale = context * batch
    return KVCacheSize(
        layout=layout_name(n_heads, n_kv_heads),
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        value_dim=value_dim,
        context=context,
        batch=batch,
        dtype=canonical_dtype(dtype),
        bytes_per_element=size,
        bytes_per_token=per_token,
        bytes_per_sequence=per_token * context,
        total_bytes=per_token * scale,
        fraction_of_mha=n_kv_heads / n_heads,
        parts=(
            Part("keys", keys * scale, "L·n_kv·d_head·bytes·context·batch", "bytes"),
            Part("values", values * scale, "L·n_kv·d_value·bytes·context·batch", "bytes"),
        ),
    )


def kv_cache_layouts(
    n_layers: int,
    n_heads: int,
    head_dim: int,
    n_kv_heads: int | None = None,
    **kwargs,
) -> tuple[KVCacheSize, ...]:
    """:func:`kv_cache` for MHA, GQA and MQA side by side (see
    :func:`~attnlab.calc.architecture.head_layouts` for the GQA row)."""
    n_heads = check_positive_int("n_heads", n_heads)
    if n_kv_heads is not None:
        check_divides(
            "n_kv_heads", check_positive_int("n_kv_heads", n_kv_heads), "n_heads", n_heads
        )
    return tuple(
        kv_cache(n_layers, n_heads, head_dim, kv, **kwargs)
        for _, kv in head_layouts(n_heads, n_kv_heads)
    )
