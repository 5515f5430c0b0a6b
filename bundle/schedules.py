# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The learning-rate schedule of training: an optional linear warm-up, then cosine annealing.

``configs/train.json`` builds ``lr_scheduler`` with :func:`warmup_cosine_schedule` from ``epochs`` and
``warmup_epochs``; ``LrScheduleHandler`` steps it once per epoch (after the epoch), so epoch ``e`` (1-based)
trains at the rate the schedule gives after ``e - 1`` steps. With ``warmup_epochs = 0`` (default) the schedule
is torch's ``CosineAnnealingLR(optimizer, T_max=epochs)`` itself, the same object and rates as before the
option existed. With ``W > 0`` warm-up epochs, for a configured rate ``lr`` (per parameter group)::

    epoch e = 1 .. W:           lr * e / (W + 1)                             (torch LinearLR)
    epoch e = W + 1 .. epochs:  lr * (1 + cos(pi * (e - W - 1) / (epochs - W))) / 2   (CosineAnnealingLR)

chained by torch's ``SequentialLR``: the warm-up climbs in equal steps to the full rate, reached at epoch
``W + 1``, where the cosine over the remaining ``epochs - W`` epochs starts. Both are torch schedulers, so
the resumable checkpoint (``lr_scheduler`` in ``checkpoint_final.pt``) restores the position in either.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

__all__ = ["check_warmup_epochs", "warmup_cosine_schedule"]


def check_warmup_epochs(warmup_epochs: int, epochs: int) -> int:
    """``warmup_epochs`` if it is an integer from 0 to ``epochs - 1``.

    Raises:
        ValueError: any other value (the message names the key, the value and the allowed range).
    """
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs < epochs:
        raise ValueError(
            f"warmup_epochs must be an integer from 0 to epochs - 1 = {epochs - 1}, got {warmup_epochs!r}"
        )
    return warmup_epochs


def warmup_cosine_schedule(optimizer: Optimizer, epochs: int, warmup_epochs: int = 0) -> LRScheduler:
    """A per-epoch schedule: ``warmup_epochs`` epochs of linear warm-up, then cosine annealing to 0.

    Args:
        optimizer: the optimizer whose parameter groups' rates the schedule sets.
        epochs: number of training epochs (``max_epochs`` of the trainer).
        warmup_epochs: epochs of linear warm-up, ``0 <= warmup_epochs < epochs``; 0: cosine annealing over
            all epochs, exactly ``CosineAnnealingLR(optimizer, T_max=epochs)``.

    Returns:
        ``CosineAnnealingLR`` when ``warmup_epochs`` is 0, else a ``SequentialLR`` of ``LinearLR`` and
        ``CosineAnnealingLR`` (rates in the module docstring).

    Raises:
        ValueError: ``warmup_epochs`` outside ``0 .. epochs - 1``.
    """
    check_warmup_epochs(warmup_epochs, epochs)
    if warmup_epochs == 0:
        return CosineAnnealingLR(optimizer, T_max=epochs)
    warmup = LinearLR(optimizer, start_factor=1.0 / (warmup_epochs + 1), end_factor=1.0, total_iters=warmup_epochs)
    cosine = CosineAnnealingLR(optimizer, T_max=epochs - warmup_epochs)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_epochs])
