# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Turn a volume into a bag of 2D slices and choose which slices a bag keeps.

A bag is ``[N, C, H, W]``: N slices (the instances of multiple-instance learning), each a
channel-first 2D image. A DataLoader stacks bags of equal N into the ``[B, N, C, H, W]`` batch that
MIMS-CNN takes.

Slice sampling follows the MIMS-CNN training protocol (S. Li et al., "Multi-Instance Multi-Scale CNN
for Medical Image Classification", MICCAI 2019, arXiv:1907.02413): during training each volume
contributes a random subset of 12 to 18 slices drawn from its central 30
(:py:class:`RandSampleSlicesd`); evaluation and inference use the fixed central window
(:py:class:`CentralSlicesd`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Resize, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, look_up_option

from ._utils import common_length, describe_source

__all__ = [
    "SLICE_AXIS_KEY",
    "RESIZE_MODES",
    "ToBag",
    "ToBagd",
    "ResizeSlices",
    "ResizeSlicesd",
    "SelectSlices",
    "CentralSlices",
    "CentralSlicesd",
    "RandSampleSlices",
    "RandSampleSlicesd",
]

#: ``meta`` key where :py:class:`ToBag` records the spatial axis it sliced along.
SLICE_AXIS_KEY = "slice_axis"
#: interpolation modes :py:class:`ResizeSlices` accepts (those of ``torch.nn.functional.interpolate`` for 2D).
RESIZE_MODES = ("area", "nearest", "nearest-exact", "bilinear", "bicubic")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_bag(bag: NdarrayOrTensor, transform: str) -> None:
    if bag.ndim != 4:
        raise ValueError(
            f"{describe_source(bag)}: {transform} expects a bag [N, C, H, W], got shape {tuple(bag.shape)}."
        )


class ToBag(Transform):
    """Cut a channel-first volume into a bag of 2D slices.

    ``[C, H, W, D]`` -> ``[N, C, h, w]``: N is the size of the spatial axis ``slice_axis`` and
    ``(h, w)`` are the two other spatial axes in their original order, e.g. ``slice_axis=2`` gives
    ``[D, C, H, W]`` and ``slice_axis=0`` gives ``[H, C, W, D]``. A 2D image ``[C, H, W]`` is a single
    slice along the last axis: ``[1, C, H, W]``.

    ``MetaTensor`` metadata is kept and ``meta["slice_axis"]`` records the axis used (0, 1 or 2; always
    2 for a 2D image). The affine is left untouched: it describes the volume, not the bag.

    Args:
        slice_axis: index among the three SPATIAL axes (0, 1 or 2; -3 to -1 count from the end).
            Defaults to 2, the last axis (B-scans of an OCT volume stored ``[C, H, W, D]``).

    Raises:
        ValueError: ``slice_axis`` out of range, or an input that is neither 3D nor 4D.

    Example::

        >>> ToBag(slice_axis=2)(torch.zeros(1, 64, 48, 30)).shape
        torch.Size([30, 1, 64, 48])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, slice_axis: int = 2) -> None:
        if isinstance(slice_axis, bool) or not isinstance(slice_axis, int) or not -3 <= slice_axis <= 2:
            raise ValueError(f"slice_axis must be a spatial axis in [-3, 2], got {slice_axis!r}.")
        self.slice_axis = slice_axis % 3

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: ``[C, H, W, D]`` volume or ``[C, H, W]`` image.

        Returns:
            bag ``[N, C, h, w]``, same container type as ``img``.
        """
        if img.ndim == 3:
            out, axis = img[None], 2
        elif img.ndim == 4:
            axis = self.slice_axis
            out = np.moveaxis(img, axis + 1, 0) if isinstance(img, np.ndarray) else torch.movedim(img, axis + 1, 0)
        else:
            raise ValueError(
                f"{describe_source(img)}: ToBag expects [C, H, W, D] or [C, H, W], got shape {tuple(img.shape)}."
            )
        if isinstance(out, MetaTensor):
            out.meta[SLICE_AXIS_KEY] = axis
        return out


class ToBagd(MapTransform):
    """Dictionary-based version of :py:class:`ToBag`; the same axis for every key.

    Args:
        keys: keys of the volumes to cut (image and mask alike).
        slice_axis: spatial axis to slice along, see :py:class:`ToBag`.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = ToBag.backend

    def __init__(self, keys: KeysCollection, slice_axis: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.to_bag = ToBag(slice_axis)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.to_bag(d[key])
        return d


class ResizeSlices(Transform):
    """Resize every slice of a bag: ``[N, C, H, W]`` -> ``[N, C, *spatial_size]``.

    The N slices are folded into the channel dimension (``[N * C, H, W]``), resized by MONAI's
    ``Resize`` and unfolded again. The output is float32 (as ``Resize`` gives); ``MetaTensor``
    metadata is kept, and no resize operation is traced (a bag is not a spatial image to invert).

    Args:
        spatial_size: output ``(h, w)`` of each slice, positive integers.
        mode: interpolation mode, one of ``"area"`` (default; averages when shrinking),
            ``"nearest"``, ``"nearest-exact"``, ``"bilinear"``, ``"bicubic"``.

    Raises:
        ValueError: a ``spatial_size`` that is not two positive integers, an unknown ``mode``, or an
            input that is not a bag ``[N, C, H, W]``.

    Example::

        >>> ResizeSlices((2, 2))(torch.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
        tensor([[ 2.5000,  4.5000],
                [10.5000, 12.5000]])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spatial_size: Sequence[int], mode: str = "area") -> None:
        size = tuple(spatial_size) if isinstance(spatial_size, Sequence) else (spatial_size,)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in size):
            raise ValueError(f"spatial_size must be two positive integers (h, w), got {spatial_size!r}.")
        self.spatial_size = tuple(int(s) for s in size)
        self.mode = look_up_option(mode, RESIZE_MODES)
        self.resizer = Resize(spatial_size=self.spatial_size, mode=self.mode)

    def __call__(self, bag: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            bag: ``[N, C, H, W]``.

        Returns:
            ``[N, C, *spatial_size]`` float32, same container type as ``bag``.
        """
        _check_bag(bag, "ResizeSlices")
        n, c, h, w = (int(s) for s in bag.shape)
        if (h, w) == self.spatial_size:  # nothing to resize: only the dtype contract applies
            result, *_ = convert_to_dst_type(bag, dst=bag, dtype=torch.float32)
            return result
        flat = convert_to_tensor(bag, track_meta=False).reshape(n * c, h, w)
        out = convert_to_tensor(self.resizer(flat), track_meta=False).reshape(n, c, *self.spatial_size)
        result, *_ = convert_to_dst_type(out, dst=bag, dtype=out.dtype)
        return result


class ResizeSlicesd(MapTransform):
    """Dictionary-based version of :py:class:`ResizeSlices`.

    Args:
        keys: keys of the bags to resize.
        spatial_size: output ``(h, w)`` of each slice.
        mode: interpolation mode for every key (use a separate instance with ``"nearest"`` for masks).
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = ResizeSlices.backend

    def __init__(
        self, keys: KeysCollection, spatial_size: Sequence[int], mode: str = "area", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.resizer = ResizeSlices(spatial_size, mode)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizer(d[key])
        return d


class SelectSlices(Transform):
    """Keep the slices ``indices`` of a bag, in that order: ``[N, C, H, W]`` -> ``[len(indices), C, H, W]``.

    Args:
        indices: slice indices in ``[0, N)``; a sequence or a 1-D integer tensor/array.

    Raises:
        ValueError: an index outside ``[0, N)`` (the message names the file), or an input that is not a
            bag.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, indices: Sequence[int] | NdarrayOrTensor) -> None:
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.int64).reshape(-1)

    def __call__(self, bag: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            bag: ``[N, C, H, W]``.

        Returns:
            ``[len(indices), C, H, W]``, same container type as ``bag`` (``MetaTensor`` meta kept).
        """
        _check_bag(bag, "SelectSlices")
        n = int(bag.shape[0])
        if self.indices.numel() and (int(self.indices.min()) < 0 or int(self.indices.max()) >= n):
            raise ValueError(
                f"{describe_source(bag)}: slice indices {self.indices.tolist()} out of range for a bag of {n} slices."
            )
        if isinstance(bag, np.ndarray):
            return np.take(bag, self.indices.numpy(), axis=0)
        return torch.index_select(bag, 0, self.indices.to(bag.device))


class CentralSlices(Transform):
    """Keep the central window of a bag: the fixed slice set for evaluation and inference.

    The window holds ``num_slices`` consecutive slices starting at ``(N - num_slices) // 2``; all N
    slices are kept when ``N <= num_slices`` or ``num_slices`` is None.

    Args:
        num_slices: window size, >= 1, or None for all slices. Defaults to 30 (MIMS-CNN).

    Example::

        >>> idx = CentralSlices(30).compute_indices(40)
        >>> idx[0].item(), idx[-1].item(), len(idx)
        (5, 34, 30)
    """

    backend = SelectSlices.backend

    def __init__(self, num_slices: int | None = 30) -> None:
        self.num_slices = None if num_slices is None else _check_int("num_slices", num_slices, 1)

    def compute_indices(self, n: int) -> torch.Tensor:
        """Indices of the central window of a bag of ``n`` slices, a 1-D int64 tensor."""
        if self.num_slices is None or n <= self.num_slices:
            return torch.arange(n, dtype=torch.int64)
        start = (n - self.num_slices) // 2
        return torch.arange(start, start + self.num_slices, dtype=torch.int64)

    def __call__(self, bag: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            bag: ``[N, C, H, W]``.

        Returns:
            ``[min(N, num_slices), C, H, W]``.
        """
        _check_bag(bag, "CentralSlices")
        return SelectSlices(self.compute_indices(int(bag.shape[0])))(bag)


class CentralSlicesd(MapTransform):
    """Dictionary-based version of :py:class:`CentralSlices`; the same window for every key.

    Args:
        keys: keys of the bags (image and mask alike); they must have the same N.
        num_slices: window size, or None for all slices.
        indices_key: where to write the kept ORIGINAL slice indices, a 1-D int64 tensor; None to skip.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = CentralSlices.backend

    def __init__(
        self,
        keys: KeysCollection,
        num_slices: int | None = 30,
        indices_key: str | None = "slice_indices",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.central = CentralSlices(num_slices)
        self.indices_key = indices_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        for key in keys:
            _check_bag(d[key], "CentralSlicesd")
        indices = self.central.compute_indices(common_length(d, keys, "slices"))
        select = SelectSlices(indices)
        for key in keys:
            d[key] = select(d[key])
        if self.indices_key is not None:
            d[self.indices_key] = indices
        return d


class RandSampleSlices(Randomizable, Transform):
    """Randomly sample a training bag from the central slices, as in the MIMS-CNN paper.

    Each call draws n uniformly in ``[min_slices, max_slices]`` and keeps n distinct slices, chosen
    uniformly and sorted ascending, out of the central window of ``num_central`` slices (start
    ``(N - num_central) // 2``). A bag with fewer than ``num_central`` slices uses all its slices as
    the window, and n is capped at the window size, so any N >= 1 works.

    Args:
        num_central: size of the central window, >= 1. Defaults to 30.
        min_slices: smallest n, >= 1. Defaults to 12.
        max_slices: largest n, >= ``min_slices``. Defaults to 18.

    Raises:
        ValueError: arguments violating ``1 <= min_slices <= max_slices`` or ``num_central >= 1``.

    Example::

        >>> sampler = RandSampleSlices().set_random_state(seed=0)
        >>> sampler(torch.zeros(49, 1, 8, 8)).shape[0] in range(12, 19)
        True
    """

    backend = SelectSlices.backend

    def __init__(self, num_central: int = 30, min_slices: int = 12, max_slices: int = 18) -> None:
        self.num_central = _check_int("num_central", num_central, 1)
        self.min_slices = _check_int("min_slices", min_slices, 1)
        self.max_slices = _check_int("max_slices", max_slices, 1)
        if self.min_slices > self.max_slices:
            raise ValueError(
                f"min_slices must be <= max_slices, got min_slices={min_slices}, max_slices={max_slices}."
            )
        self._indices = torch.zeros(0, dtype=torch.int64)

    def randomize(self, data: int) -> None:
        """Draw the slice indices for a bag of ``data`` slices; read them from :py:attr:`indices`."""
        n_total = int(data)
        if n_total < 1:
            raise ValueError(f"cannot sample slices from an empty bag (N={n_total}).")
        window = min(self.num_central, n_total)
        start = (n_total - window) // 2
        n = min(int(self.R.randint(self.min_slices, self.max_slices + 1)), window)
        chosen = np.sort(self.R.choice(window, size=n, replace=False)) + start
        self._indices = torch.as_tensor(chosen, dtype=torch.int64)

    @property
    def indices(self) -> torch.Tensor:
        """ORIGINAL slice indices of the last draw, a sorted 1-D int64 tensor."""
        return self._indices

    def __call__(self, bag: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            bag: ``[N, C, H, W]`` with N >= 1.
            randomize: draw new indices (True) or reuse the last draw (False, e.g. for a mask).

        Returns:
            ``[n, C, H, W]`` with n in ``[min(min_slices, window), min(max_slices, window)]``.
        """
        _check_bag(bag, "RandSampleSlices")
        if bag.shape[0] < 1:
            raise ValueError(f"{describe_source(bag)}: cannot sample slices from an empty bag.")
        if randomize:
            self.randomize(int(bag.shape[0]))
        return SelectSlices(self._indices)(bag)


class RandSampleSlicesd(Randomizable, MapTransform):
    """Dictionary-based version of :py:class:`RandSampleSlices`: one draw per call, shared by every key.

    Image and mask bags keep the same slices, so they stay aligned.

    Args:
        keys: keys of the bags; they must have the same N.
        num_central: size of the central window. Defaults to 30.
        min_slices: smallest number of slices drawn. Defaults to 12.
        max_slices: largest number of slices drawn. Defaults to 18.
        indices_key: where to write the kept ORIGINAL slice indices, a 1-D int64 tensor; None to skip.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = RandSampleSlices.backend

    def __init__(
        self,
        keys: KeysCollection,
        num_central: int = 30,
        min_slices: int = 12,
        max_slices: int = 18,
        indices_key: str | None = "slice_indices",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.sampler = RandSampleSlices(num_central, min_slices, max_slices)
        self.indices_key = indices_key

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandSampleSlicesd:
        super().set_random_state(seed, state)
        self.sampler.set_random_state(seed, state)
        return self

    def randomize(self, data: int) -> None:
        """Draw the slice indices for bags of ``data`` slices."""
        self.sampler.randomize(data)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        for key in keys:
            _check_bag(d[key], "RandSampleSlicesd")
        n = common_length(d, keys, "slices")
        if n < 1:
            raise ValueError(f"{describe_source(d[keys[0]])}: cannot sample slices from an empty bag.")
        self.randomize(n)
        for key in keys:
            d[key] = self.sampler(d[key], randomize=False)
        if self.indices_key is not None:
            d[self.indices_key] = self.sampler.indices.clone()
        return d
