"""Attention masks. Boolean masks say True where a query may attend; additive masks hold 0
there and −inf elsewhere. Both follow ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import torch

from .validation import check_length

ALIGNMENTS = ("top_left", "bottom_right")


def causal_mask(
    seq_q: int,
    seq_k: int | None = None,
    *,
    align: str = "top_left",
    additive: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(seq_q, seq_k)`` causal mask.

    ``align="top_left"`` lets query i see keys ``j ≤ i`` (what ``is_causal=True`` means in
    torch). ``align="bottom_right"`` lines the last query up with the last key, so query i
    sees keys ``j ≤ i + seq_k − seq_q``: that is the mask for new queries appended after a
    KV cache of ``seq_k − seq_q`` earlier tokens. When ``seq_q > seq_k`` a bottom-right mask
    leaves the first ``seq_q − seq_k`` queries with nothing to attend to.

    Returns:
        bool ``(seq_q, seq_k)`` (True = may attend), or with ``additive=True`` a ``dtype`` tensor
        of 0 and −inf.
    """
    check_length("seq_q", seq_q)
    seq_k = seq_q if seq_k is None else check_length("seq_k", seq_k)
    if align not in ALIGNMENTS:
        raise ValueError(f"align: expected one of {ALIGNMENTS}, got {align!r}")
    offset = 0 if align == "top_left" else seq_k - seq_q
    rows = torch.arange(seq_q, device=device)[:, None]
    cols = torch.arange(seq_k, device=device)[None, :]
    allowed = cols <= rows + offset
    return to_additive(allowed, dtype) if additive else allowed


def padding_mask(
    lengths, seq_len: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Key-padding mask for a batch of sequences of the given lengths.

    Args:
        lengths: ``(batch,)`` integers with ``0 ≤ length ≤ seq_len`` (list or tensor).
        seq_len: padded length of the keys.

    Returns:
        bool ``(batch, 1, 1, seq_len)``: True at key positions ``< length``. It broadcasts
        against scores ``(batch, heads, seq_q, seq_k)``; combine with a causal mask by ``&``.
    """
    check_length("seq_len", seq_len)
    if isinstance(lengths, torch.Tensor):
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise TypeError(f"lengths: expected integers, got dtype {lengths.dtype}")
        lengths = lengths.to(device=device)
    else:
        try:
            lengths = torch.as_tensor(list(lengths), device=device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"lengths: expected a sequence of integers, got {lengths!r}") from None
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise TypeError(f"lengths: expected integers, got {lengths.tolist()!r}")
    if lengths.dim() != 1:
        raise ValueError(f"lengths: expected shape (batch,), got {tuple(lengths.shape)}")
    if bool(((lengths < 0) | (lengths > seq_len)).any()):
        raise ValueError(f"lengths: expected values in [0, {seq_len}], got {lengths.tolist()}")
    positions = torch.arange(seq_len, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def to_additive(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boolean mask (True = may attend) → additive mask (0 allowed, −inf blocked)."""
    zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return zeros.masked_fill(~mask, float("-inf"))


def merge_masks(*masks: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Combine masks so that a position is allowed only where every mask allows it.

    ``None`` entries are skipped. Boolean masks combine by ``&``; if any mask is additive the
    result is additive (``dtype``), the boolean ones turned into 0/−inf first. Shapes broadcast.
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    if all(m.dtype == torch.bool for m in present):
        merged = present[0]
        for m in present[1:]:
            merged = merged & m
        return merged
    merged = None
    for m in present:
        additive = to_additive(m, dtype) if m.dtype == torch.bool else m.to(dtype)
        merged = additive if merged is None else merged + additive
    return merged
