# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Helpers on networks' weights shared by the networks and the bundle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["state_dict_mismatch"]


def state_dict_mismatch(
    expected: Mapping[str, Any], found: Mapping[str, Any]
) -> tuple[list[str], list[str], list[str]]:
    """How the state dict ``found`` differs from ``expected``, by key and shape.

    Args:
        expected: the state dict a network needs (name -> tensor, or anything with a ``shape``).
        found: the state dict of a file.

    Returns:
        ``(missing, unexpected, mismatched)``: the keys of ``expected`` absent from ``found`` (in ``expected``'s
        order), the keys of ``found`` absent from ``expected`` (in ``found``'s order), and the keys in both whose
        shapes differ (in ``expected``'s order). All empty: ``found`` fits.

    Example::

        >>> expected = {"w": torch.zeros(2, 3), "b": torch.zeros(2)}
        >>> state_dict_mismatch(expected, {"w": torch.zeros(3, 3), "x": torch.zeros(1)})
        (['b'], ['x'], ['w'])
    """
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    mismatched = [
        name for name in expected if name in found and tuple(found[name].shape) != tuple(expected[name].shape)
    ]
    return missing, unexpected, mismatched
