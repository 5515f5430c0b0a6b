# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""How well a heatmap or a slice ranking finds the lesion: key-slice hit, pointing game, peak distance,
heatmap AUROC, average precision.

Pure functions on arrays (numpy arrays or torch tensors, any device; nothing is modified). Shapes follow
the bag layout of the bundle without the batch and channel axes: a bag's heatmap and lesion mask are
``[N, H, W]`` (N slices of ``H x W`` pixels; a 2-D image may be given as ``[H, W]``). A mask pixel is a
lesion pixel when it is non-zero.

What happens without a lesion: a hit ("is a lesion slice among the top", "is the maximum inside a
lesion") has no answer when there is no lesion, so :func:`key_slice_hit` and :func:`pointing_game_hit`
raise ``ValueError`` for an empty lesion, and so do :func:`peak_distances` (no nearest lesion pixel)
and :func:`average_precision` (no recall); the caller decides whether to skip such a case
(:mod:`bundle.localization.evaluation` skips it and counts it). :func:`heatmap_auroc` returns NaN when
the mask is all lesion or all background (an ROC curve needs both classes), so means can be taken with
``nanmean``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "average_precision",
    "dilate_mask",
    "heatmap_auroc",
    "instance_score_gap",
    "key_slice_hit",
    "lesion_slice_positions",
    "peak_distances",
    "pointing_game_hit",
]


def _to_numpy(array: object, name: str) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    try:
        return np.asarray(array)
    except Exception as e:  # pragma: no cover - only for exotic inputs
        raise ValueError(f"{name} must be an array or a tensor, got {type(array).__name__}") from e


def _as_bag(array: object, name: str) -> np.ndarray:
    """``[N, H, W]`` view of ``array`` (``[H, W]`` gets ``N = 1``)."""
    out = _to_numpy(array, name)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3:
        raise ValueError(f"{name} must be [N, H, W] (or [H, W]), got shape {tuple(out.shape)}")
    return out


def _check_pair(heatmap: np.ndarray, mask: np.ndarray) -> None:
    if heatmap.shape != mask.shape:
        raise ValueError(f"heatmap {tuple(heatmap.shape)} and mask {tuple(mask.shape)} must have the same shape")
    if heatmap.size == 0:
        raise ValueError("heatmap and mask are empty")
    if not np.all(np.isfinite(heatmap)):
        raise ValueError("heatmap holds NaN or infinite values")


def _require_lesion(mask: np.ndarray, what: str) -> None:
    if not np.any(mask != 0):
        raise ValueError(f"the mask has no lesion pixel: {what} is undefined without a lesion")


def key_slice_hit(ranked_slices: Sequence[int], lesion_slices: Collection[int], top: int = 1) -> bool:
    """Whether a lesion slice is among the ``top`` best-ranked slices.

    Args:
        ranked_slices: slice ids, best first (bag positions or original indices: the same kind as
            ``lesion_slices``). Fewer than ``top`` entries are allowed (all of them are looked at).
        lesion_slices: ids of the slices that hold a lesion (e.g. from :func:`lesion_slice_positions`).
        top: how many of the best-ranked slices count, >= 1. Defaults to 1.

    Returns:
        True when ``set(ranked_slices[:top])`` and ``lesion_slices`` share a slice.

    Raises:
        ValueError: ``top`` is not a positive integer, or ``lesion_slices`` is empty (no lesion: no answer).

    Example::

        >>> key_slice_hit([7, 3, 12], {3, 4}, top=1), key_slice_hit([7, 3, 12], {3, 4}, top=2)
        (False, True)
    """
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    lesions = {int(s) for s in lesion_slices}
    if not lesions:
        raise ValueError("lesion_slices is empty: a key-slice hit is undefined without a lesion")
    return any(int(s) in lesions for s in list(ranked_slices)[: int(top)])


def instance_score_gap(scores: object, lesion_positions: Collection[int]) -> float | None:
    """Mean instance score of the lesion instances minus that of the other instances of one bag.

    With attention weights as the scores (attention MIL) this is the "attention gap" between positive and
    negative instances that Liu et al. (2024) compare between softmax and squared-average attention.

    Args:
        scores: ``[N]`` instance scores (:func:`bundle.localization.slice_scores`); non-finite ones (padding)
            are left out.
        lesion_positions: bag positions of the instances with a lesion (:func:`lesion_slice_positions`).

    Returns:
        the gap, or None when the bag has no lesion instance or no other instance.
    """
    values = _to_numpy(scores, "scores").reshape(-1)
    finite = np.isfinite(values)
    lesion = np.zeros(values.shape, dtype=bool)
    lesion[[int(p) for p in lesion_positions]] = True
    positive, negative = values[lesion & finite], values[~lesion & finite]
    if positive.size == 0 or negative.size == 0:
        return None
    return float(positive.mean() - negative.mean())


def lesion_slice_positions(mask: object) -> list[int]:
    """Positions ``n`` of the slices of ``mask [N, H, W]`` that hold at least one lesion pixel, ascending."""
    m = _as_bag(mask, "mask") != 0
    return [int(n) for n in np.flatnonzero(m.reshape(m.shape[0], -1).any(axis=1))]


def dilate_mask(mask: object, tolerance_px: float = 0) -> np.ndarray:
    """Lesion mask grown by ``tolerance_px`` pixels within each slice (never across slices).

    A pixel joins the lesion when a lesion pixel of the same slice lies within Euclidean distance
    ``tolerance_px`` (a disk structuring element: with 1, the 4-neighbours; with 1.5, the 8-neighbours).

    Args:
        mask: ``[N, H, W]`` (or ``[H, W]``); non-zero = lesion.
        tolerance_px: radius in pixels, >= 0. Defaults to 0 (the mask itself).

    Returns:
        bool ``[N, H, W]``.
    """
    if not tolerance_px >= 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px!r}")
    m = _as_bag(mask, "mask") != 0
    r = int(math.floor(tolerance_px))
    if r == 0:
        return m
    offsets = np.arange(-r, r + 1, dtype=np.float64)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= float(tolerance_px) ** 2
    kernel = torch.from_numpy(disk.astype(np.float32))[None, None]
    grown = F.conv2d(torch.from_numpy(m.astype(np.float32))[:, None], kernel, padding=r)[:, 0]
    return grown.numpy() > 0.5


def pointing_game_hit(heatmap: object, mask: object, tolerance_px: float = 0) -> float:
    """Pointing game: is the heatmap's maximum over the whole bag inside a lesion?

    The maximum is taken over all slices and pixels of the evaluated bag at once. Ties: when several
    pixels share the maximum, the result is the fraction of them that lie inside the (dilated) lesion,
    i.e. the expected hit when the tie is broken uniformly at random. A unique maximum gives exactly
    1.0 (hit) or 0.0 (miss); a constant heatmap (e.g. all zero: no positive evidence) scores the lesion's
    share of the bag, the chance level.

    Args:
        heatmap: ``[N, H, W]`` (or ``[H, W]``), any real values; larger = more evidence.
        mask: same shape; non-zero = lesion.
        tolerance_px: a maximum within this Euclidean distance (pixels, same slice) of a lesion pixel
            counts as a hit (:func:`dilate_mask`). Defaults to 0.

    Returns:
        a float in ``[0, 1]``.

    Raises:
        ValueError: shapes differ, the heatmap holds NaN or infinity, or the mask has no lesion pixel.

    Example::

        >>> pointing_game_hit(np.array([[0.0, 2.0], [2.0, 1.0]]), np.array([[0, 1], [0, 0]]))
        0.5
    """
    h = _as_bag(heatmap, "heatmap").astype(np.float64)
    m = _as_bag(mask, "mask")
    _check_pair(h, m)
    _require_lesion(m, "the pointing game")
    peak = h == h.max()
    inside = dilate_mask(m, tolerance_px)
    return float(np.count_nonzero(peak & inside) / np.count_nonzero(peak))


def heatmap_auroc(heatmap: object, mask: object) -> float:
    """Pixel-level area under the ROC curve of the heatmap as a lesion detector.

    Every pixel of every evaluated slice is one sample: label = mask non-zero, score = heatmap value.
    The AUROC is the probability that a random lesion pixel scores higher than a random background
    pixel, ties counting one half (Mann-Whitney U with mid-ranks), so a constant heatmap gives 0.5.

    Args:
        heatmap: ``[N, H, W]`` (any shape equal to the mask's), real values.
        mask: same shape; non-zero = lesion.

    Returns:
        a float in ``[0, 1]``; NaN when the mask is all lesion or all background.

    Raises:
        ValueError: shapes differ or the heatmap holds NaN or infinity.

    Example::

        >>> heatmap_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        0.75
    """
    h = _to_numpy(heatmap, "heatmap")
    m = _to_numpy(mask, "mask")
    _check_pair(h, m)
    s = h.astype(np.float64).ravel()
    y = m.ravel() != 0
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid_ranks = (ends - counts + 1 + ends) / 2.0  # 1-based mean rank of each group of equal scores
    rank_sum = float(mid_ranks[inverse.ravel()][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def peak_distances(heatmap: object, mask: object, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance (pixels) from every pixel holding the heatmap's maximum to the nearest lesion pixel
    of the same slice.

    The maximum is taken over the whole bag, as in :func:`pointing_game_hit`, which equals the fraction
    of these distances that are ``<= tolerance_px``.

    Args:
        heatmap: ``[N, H, W]`` (or ``[H, W]``), real values.
        mask: same shape; non-zero = lesion.
        chunk: maxima processed at once (bounds the memory only).

    Returns:
        float64 ``[P]``: one distance per maximum (ties: every pixel at the maximum, in ``(n, y, x)`` order);
        0 for a maximum inside the lesion, infinity for one in a slice without lesion.

    Raises:
        ValueError: shapes differ, the heatmap holds NaN or infinity, or the mask has no lesion pixel.

    Example::

        >>> peak_distances(np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([[1, 0], [0, 0]]))
        array([1.41421356])
    """
    h = _as_bag(heatmap, "heatmap").astype(np.float64)
    m = _as_bag(mask, "mask") != 0
    _check_pair(h, m)
    _require_lesion(m, "the peak distance")
    peaks = np.argwhere(h == h.max())  # [P, 3]: (n, y, x), row-major
    out = np.full(len(peaks), np.inf)
    for n in np.unique(peaks[:, 0]):
        lesion = np.argwhere(m[n]).astype(np.float64)  # [L, 2]
        if not len(lesion):
            continue
        rows = np.flatnonzero(peaks[:, 0] == n)
        for start in range(0, len(rows), chunk):
            block = rows[start : start + chunk]
            d2 = ((peaks[block, None, 1:].astype(np.float64) - lesion[None, :, :]) ** 2).sum(axis=2)
            out[block] = np.sqrt(d2.min(axis=1))
    return out


def average_precision(heatmap: object, mask: object) -> float:
    """Pixel average precision of the heatmap as a lesion detector: ``sum_k (R_k - R_{k-1}) P_k`` over the
    distinct heatmap values, high to low (``P_k``, ``R_k``: precision and recall of the pixels ``>=`` the
    k-th value).

    Pixels of equal value enter together (one threshold), so ties are never broken in anyone's favour. A
    map that ranks every lesion pixel first scores 1; a constant map scores the lesion's share of pixels.

    Args:
        heatmap: any shape equal to the mask's (``[N, H, W]``, ``[H, W]``), real values.
        mask: same shape; non-zero = lesion.

    Returns:
        a float in ``(0, 1]``.

    Raises:
        ValueError: shapes differ, the heatmap holds NaN or infinity, or the mask has no lesion pixel.

    Example::

        >>> average_precision(np.array([0.9, 0.8, 0.1, 0.7]), np.array([1, 0, 0, 1]))  # 1/2 * 1 + 1/2 * 2/3
        0.8333333333333333
    """
    h = _to_numpy(heatmap, "heatmap")
    m = _to_numpy(mask, "mask")
    _check_pair(h, m)
    _require_lesion(m, "the average precision")
    values, inverse = np.unique(-h.astype(np.float64).ravel(), return_inverse=True)  # ascending -value
    inverse = inverse.ravel()
    tp = np.bincount(inverse, weights=(m.ravel() != 0).astype(np.float64), minlength=len(values)).cumsum()
    total = np.bincount(inverse, minlength=len(values)).cumsum()
    precision, recall = tp / total, tp / tp[-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
