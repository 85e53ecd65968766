"""Boundary checks shared by the attention functions: each error names the argument, what was
expected and what was given."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(name: str, x, *, min_dim: int = 2, finite: bool = True) -> torch.Tensor:
    """``x`` must be a finite floating-point tensor with at least ``min_dim`` dims.

    ``finite=False`` leaves the finiteness check to the caller (:func:`check_finite`), for a
    caller that checks the values block by block as it reads them.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a floating-point tensor (float16, bfloat16, float32 or "
            f"float64), got dtype {x.dtype}"
        )
    if x.dim() < min_dim:
        raise ValueError(
            f"{name}: expected at least {min_dim} dims (..., seq, head_dim), got shape "
            f"{tuple(x.shape)}"
        )
    if finite:
        check_finite(name, x)
    return x


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or an infinite value."""
    if not all_finite(x):
        raise ValueError(f"{name}: contains NaN or infinite values")


def all_finite(x: torch.Tensor) -> bool:
    """Whether every element is finite, at the cost of one reduction in the common case.

    NaN and ±inf propagate through a sum, so a finite sum proves every element finite. Only a
    non-finite sum (which may also be an overflow of large finite values) needs the full
    elementwise check, which costs a pass and a temporary as large as ``x``.
    """
    with torch.no_grad():
        if bool(torch.isfinite(x.sum())):
            return True
        return bool(torch.isfinite(x).all())


def check_qkv(query, key, value, *, enable_gqa: bool = False, finite: bool = True) -> None:
    """Check shapes, dtypes and devices of ``(..., heads, seq, head_dim)`` query, key, value.

    Batch dims must match exactly (nothing is broadcast); with ``enable_gqa`` the head dim
    (``-3``) of the query may be a multiple of that of key and value. ``finite=False``: the
    caller checks the values itself (see :func:`check_tensor`).
    """
    check_tensor("query", query, finite=finite)
    check_tensor("key", key, finite=finite)
    check_tensor("value", value, finite=finite)
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            f"query, key, value: expected one dtype, got {query.dtype}, {key.dtype}, {value.dtype}"
        )
    if not query.device == key.device == value.device:
        raise ValueError(
            "query, key, value: expected one device, got "
            f"{query.device}, {key.device}, {value.device}"
        )
    if not query.dim() == key.dim() == value.dim():
        raise ValueError(
            "query, key, value: expected the same number of dims, got shapes "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            "query and key: expected the same head_dim (last dim), got query "
            f"{tuple(query.shape)} and key {tuple(key.shape)}"
        )
    if key.shape[:-1] != value.shape[:-1]:
        raise ValueError(
            "key and value: expected the same shape except the last dim, got key "
            f"{tuple(key.shape)} and value {tuple(value.shape)}"
        )
    q_heads, k_heads = query.shape[:-2], key.shape[:-2]
    if enable_gqa:
        if query.dim() < 3:
            raise ValueError(
                f"query: enable_gqa needs a heads dim (..., heads, seq, head_dim), got shape "
                f"{tuple(query.shape)}"
            )
        if q_heads[:-1] != k_heads[:-1]:
            raise ValueError(
                "query and key: expected the same batch dims, got query "
                f"{tuple(query.shape)} and key {tuple(key.shape)}"
            )
        if q_heads[-1] % k_heads[-1]:
            raise ValueError(
                f"key: enable_gqa needs the number of key/value heads to divide the number of "
                f"query heads ({q_heads[-1]}), got {k_heads[-1]} key/value heads"
            )
    elif q_heads != k_heads:
        hint = (
            " (for grouped-query attention pass enable_gqa=True)"
            if query.dim() >= 3 and q_heads[:-1] == k_heads[:-1]
            else ""
        )
        raise ValueError(
            "query and key: expected the same batch and head dims, got query "
            f"{tuple(query.shape)} and key {tuple(key.shape)}{hint}"
        )


def check_mask(attn_mask, query: torch.Tensor, key: torch.Tensor) -> None:
    """``attn_mask`` must be bool or the query's dtype and broadcast to the scores' shape."""
    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(f"attn_mask: expected a torch.Tensor, got {type(attn_mask).__name__}")
    if attn_mask.dtype != torch.bool and attn_mask.dtype != query.dtype:
        raise TypeError(
            f"attn_mask: expected dtype torch.bool (True = may attend) or the query's dtype "
            f"{query.dtype} (added to the scores), got {attn_mask.dtype}"
        )
    if attn_mask.device != query.device:
        raise ValueError(f"attn_mask: expected device {query.device}, got {attn_mask.device}")
    scores_shape = (*query.shape[:-1], key.shape[-2])
    try:
        broadcast = torch.broadcast_shapes(attn_mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(scores_shape):
        raise ValueError(
            f"attn_mask: expected a shape that broadcasts to the scores' shape "
            f"{tuple(scores_shape)} (..., seq_q, seq_k), got {tuple(attn_mask.shape)}"
        )
    if attn_mask.dtype != torch.bool and bool(torch.isnan(attn_mask).any()):
        raise ValueError("attn_mask: contains NaN")


def check_probability(name: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {p!r}")
    return float(p)


def check_scale(scale) -> None:
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"scale: expected a float or None, got {type(scale).__name__}")
    if scale != scale or scale in (float("inf"), float("-inf")):
        raise ValueError(f"scale: expected a finite number, got {scale!r}")


def check_length(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name}: expected a positive integer, got {n!r}")
    return n
