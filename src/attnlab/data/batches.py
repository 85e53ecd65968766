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


IGNORE = -100  # the target of a position no loss is taken at (torch's cross_entropy default)


def mask_tokens(
    ids: torch.Tensor,
    maskable: torch.Tensor,
    generator: torch.Generator,
    *,
    mask_id: int,
    vocab_size: int,
    rate: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked-LM inputs and targets (BERT: Devlin et al., 2019, Section 3.1).

    Each position where ``maskable`` is True is chosen with probability ``rate`` (and every row
    gets at least one); a chosen token becomes ``mask_id`` 80% of the time, a random token 10%,
    and stays 10%. Targets hold the original id at chosen positions and :data:`IGNORE`
    elsewhere.

    Returns:
        ``(inputs, targets)``, both shaped like ``ids``.
    """
    if ids.shape != maskable.shape or maskable.dtype != torch.bool:
        raise ValueError(
            f"maskable: expected a bool tensor of shape {tuple(ids.shape)} like ids, got "
            f"{maskable.dtype} {tuple(maskable.shape)}"
        )
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate: expected a number in (0, 1), got {rate!r}")
    if not bool(maskable.any(dim=-1).all()):
        raise ValueError("maskable: every row needs at least one position that may be masked")
    scores = torch.rand(ids.shape, generator=generator)
    chosen = maskable & (scores < rate)
    first = torch.where(maskable, scores, 2.0).argmin(dim=-1, keepdim=True)
    chosen.scatter_(-1, first, True)  # the row's lowest score: at least one per row
    kind = torch.rand(ids.shape, generator=generator)
    randoms = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (kind < 0.8), mask_id, ids)
    inputs = torch.where(chosen & (kind >= 0.8) & (kind < 0.9), randoms, inputs)
    targets = torch.where(chosen, ids, IGNORE)
    return inputs, targets
