# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""AUROC and its percentile-bootstrap interval over test cases, for the results pages.

:func:`auroc` is the Mann-Whitney statistic (a tie between a positive and a negative case counts one half),
which equals the area under the trapezoidal ROC curve. :func:`bootstrap_counts` draws the resamples of the
test cases once (``numpy.random.default_rng(seed)``, so pages are deterministic); every row of a table and
every seed of a row is evaluated on the same resamples (:func:`weighted_auroc`), so the bootstrap of a
difference between two rows is paired. :func:`percentile_interval` turns the resampled statistic into an
interval. Importing this module loads neither torch nor MONAI.

Example::

    counts = bootstrap_counts(labels)                      # [B, N]
    stat = mean_auroc(labels, [scores_seed0, scores_seed1], counts)   # [B]
    low, high = percentile_interval(stat)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_LEVEL",
    "DEFAULT_RNG_SEED",
    "auroc",
    "bootstrap_counts",
    "mean_auroc",
    "percentile_interval",
    "weighted_auroc",
]

#: resamples of the test cases
DEFAULT_BOOTSTRAP = 2000
#: seed of ``numpy.random.default_rng`` for the resamples
DEFAULT_RNG_SEED = 0
#: coverage of the intervals
DEFAULT_LEVEL = 0.95


def _check(labels: np.ndarray, scores: np.ndarray) -> None:
    if labels.ndim != 1 or scores.ndim not in (1, 2) or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"labels [N] and scores [N] or [N, K] expected, got {labels.shape} and {scores.shape}")


def _pair_matrix(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``[P, Q]``: 1 where the positive case scores higher, 0.5 for a tie, 0 otherwise."""
    diff = positive[:, None] - negative[None, :]
    return (diff > 0) + 0.5 * (diff == 0)


def _binary_parts(labels: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scored class (one-vs-rest; class 1 only for 1-D scores): (positive mask, negative mask, pair matrix)."""
    columns = [(1, scores)] if scores.ndim == 1 else [(c, scores[:, c]) for c in range(scores.shape[1])]
    parts = []
    for cls, s in columns:
        pos, neg = labels == cls, labels != cls
        parts.append((pos, neg, _pair_matrix(s[pos], s[neg])))
    return parts


def auroc(labels: Sequence[int], scores: Sequence[float] | Sequence[Sequence[float]]) -> float:
    """Area under the ROC curve (Mann-Whitney; ties count one half).

    Args:
        labels: class per case, ``[N]``.
        scores: probability of class 1 per case ``[N]`` (binary), or class probabilities ``[N, K]``: then
            the mean over classes of the one-vs-rest AUROC (macro).

    Raises:
        ValueError: mismatched shapes, or a class scored that has no case or every case.
    """
    return float(weighted_auroc(labels, scores, np.ones((1, len(labels))))[0])


def weighted_auroc(
    labels: Sequence[int], scores: Sequence[float] | Sequence[Sequence[float]], counts: np.ndarray
) -> np.ndarray:
    """AUROC of each resample given as case counts: the AUROC of the sample that holds case ``i`` ``counts[b, i]``
    times (what :func:`auroc` gives on that sample written out).

    Args:
        labels: class per case, ``[N]``.
        scores: ``[N]`` or ``[N, K]`` as in :func:`auroc`.
        counts: ``[B, N]`` non-negative case counts per resample (:func:`bootstrap_counts`).

    Returns:
        ``[B]`` AUROC per resample.

    Raises:
        ValueError: mismatched shapes, or a resample without a positive or a negative case of a scored class.
    """
    labels_a, scores_a = np.asarray(labels), np.asarray(scores, dtype=float)
    _check(labels_a, scores_a)
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[1] != labels_a.shape[0]:
        raise ValueError(f"counts [B, {labels_a.shape[0]}] expected, got {counts.shape}")
    areas = []
    for pos, neg, pairs in _binary_parts(labels_a, scores_a):
        w_pos, w_neg = counts[:, pos], counts[:, neg]
        total = w_pos.sum(axis=1) * w_neg.sum(axis=1)
        if np.any(total == 0):
            raise ValueError("AUROC needs positive and negative cases of every scored class in every sample")
        areas.append(np.einsum("bp,pq,bq->b", w_pos, pairs, w_neg) / total)
    return np.mean(areas, axis=0)


def bootstrap_counts(
    labels: Sequence[int], n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_RNG_SEED, classes: int = 2
) -> np.ndarray:
    """Resamples of the cases with replacement, as case counts; a resample lacking a class is drawn again.

    Args:
        labels: class per case, ``[N]``.
        n_boot: number of resamples ``B``.
        seed: seed of ``numpy.random.default_rng``.
        classes: every class ``0 .. classes-1`` must be in every resample.

    Returns:
        ``[B, N]`` integer counts (each row sums to ``N``).

    Raises:
        ValueError: a class has no case at all.
    """
    labels_a = np.asarray(labels)
    n = labels_a.shape[0]
    missing = [c for c in range(classes) if not np.any(labels_a == c)]
    if missing:
        raise ValueError(f"no case of class(es) {missing} among the {n} cases: no AUROC interval")
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, n), dtype=np.int64)
    for b in range(n_boot):
        while True:
            draw = rng.integers(0, n, size=n)
            if len(np.unique(labels_a[draw])) == classes:
                break
        counts[b] = np.bincount(draw, minlength=n)
    return counts


def mean_auroc(
    labels: Sequence[int], scores_per_seed: Sequence[Sequence[float] | Sequence[Sequence[float]]], counts: np.ndarray
) -> np.ndarray:
    """``[B]``: mean over seeds of each seed's AUROC on the same resamples (:func:`weighted_auroc`)."""
    if not scores_per_seed:
        raise ValueError("no seed to average")
    return np.mean([weighted_auroc(labels, s, counts) for s in scores_per_seed], axis=0)


def percentile_interval(values: Sequence[float], level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The percentile interval of ``values`` holding ``level`` of them (linear interpolation, numpy's default)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100.0 - tail])
    return float(low), float(high)
