# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A data loader whose random transforms are seeded from the run's seed, not from what was built before it.

MONAI's :class:`monai.data.DataLoader` with ``num_workers=0`` seeds the random transforms of its dataset with a
number drawn from torch's global generator at the moment the loader is built (and then resets that generator
to its initial seed). The draw therefore depends on everything that consumed random numbers before the loader
was built: building the network first (as the pre-flight check does, :mod:`bundle.preflight`) gave the same
seed a different training trajectory. :class:`SeededDataLoader` draws that number from a fresh generator seeded
with ``seed`` instead, which is the number MONAI's loader draws when nothing was built before it: the order in
which the configuration builds its components no longer changes the augmentation.

Only the transforms' seed changes: the shuffling order (``shuffle=True``) still comes from torch's global
generator at the start of each epoch, as in MONAI's and PyTorch's loaders, and with ``num_workers > 0`` the
workers are seeded by MONAI's ``worker_init_fn`` as before.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.data import DataLoader
from monai.data.utils import set_rnd

__all__ = ["transform_seed", "SeededDataLoader"]


def transform_seed(seed: int) -> int:
    """The seed given to a dataset's random transforms for the run seed ``seed``.

    It is the first 64-bit draw of a torch generator seeded with ``seed``: what MONAI's ``DataLoader`` draws from
    torch's global generator right after ``monai.utils.set_determinism(seed)``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


class SeededDataLoader(DataLoader):
    """MONAI's ``DataLoader`` whose dataset's random transforms are seeded from ``seed``.

    Args:
        dataset: the dataset (its random transforms are seeded when ``num_workers`` is 0).
        seed: the run's seed (``seed`` in the configs); ``None``: MONAI's behaviour (a draw from torch's global
            generator).
        num_workers: worker processes; with more than 0 the workers seed the transforms (MONAI's
            ``worker_init_fn``) and ``seed`` is not used.
        kwargs: the other arguments of :class:`monai.data.DataLoader` (batch size, shuffle, sampler, collate).
    """

    def __init__(self, dataset: Any, seed: int | None = None, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(dataset, num_workers=num_workers, **kwargs)
        if seed is not None and num_workers == 0 and kwargs.get("generator") is None:
            set_rnd(dataset, transform_seed(seed))
