# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Private helpers shared by the transforms of this package."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.data import MetaTensor
from monai.utils import ImageMetaKey

__all__ = ["describe_source", "common_length"]


def describe_source(img: Any) -> str:
    """Name the file an image came from, for error messages.

    Args:
        img: an array-like; a ``MetaTensor`` with ``meta["filename_or_obj"]`` names its file.

    Returns:
        the file name, or ``"input image"`` when no file is known.
    """
    if isinstance(img, MetaTensor):
        name = img.meta.get(ImageMetaKey.FILENAME_OR_OBJ)
        if name:
            return str(name)
    return "input image"


def common_length(data: Mapping[Hashable, Any], keys: list[Hashable], what: str) -> int:
    """Size of dim 0 shared by ``data[k]`` for every key in ``keys``.

    Args:
        data: the dictionary being transformed.
        keys: the keys present in ``data`` (at least one).
        what: what dim 0 counts, for the error message (e.g. ``"slices"``).

    Raises:
        ValueError: when two keys disagree; the bags must stay aligned (image and mask).
    """
    first = keys[0]
    n = int(data[first].shape[0])
    for key in keys[1:]:
        other = int(data[key].shape[0])
        if other != n:
            raise ValueError(
                f"{describe_source(data[key])}: key '{key}' has {other} {what} but key '{first}' has {n}; "
                "all keys must have the same number to stay aligned."
            )
    return n
