"""Token streams for training: a contiguous train/validation split and random-window batches."""

from __future__ import annotations

import torch


def split_ids(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``1 − val_fraction`` of the stream for training, the rest for validation.

    A contiguous split (not a shuffle) keeps validation text unseen as a whole passage.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction}")
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:]


def check_length_for_context(name: str, ids: torch.Tensor, context: int) -> None:
    if len(ids) < context + 1:
        raise ValueError(
            f"{name}: {len(ids)} tokens is too short for context {context} (need at least "
            f"{context + 1}); use a longer text or a smaller --context"
        )


def random_batch(
    ids: torch.Tensor, batch_size: int, context: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: inputs ``(batch, context)`` and targets shifted by one."""
    starts = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)
    offsets = torch.arange(context)
    x = ids[starts[:, None] + offsets]  # (batch, context)
    y = ids[starts[:, None] + offsets + 1]
    return x, y
