# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Class weights of the training loss, computed from the training split.

``configs/train.json`` gives the loss ``"weight": "@class_weights"``, where ``class_weights`` is
:func:`class_weights` of the training entries that ``train#dataset`` trains on (``@train#dataset#data``: the
same list, read once) and of the option ``class_weighting``:

- ``"auto"`` (default): inverse-frequency weights when the training split is imbalanced
  (:func:`is_imbalanced`), none when it is balanced;
- ``"balanced"``: inverse-frequency weights whatever the class counts;
- ``"none"``: no weights (plain cross-entropy).

"No weights" is ``None``, so ``CrossEntropyLoss(weight=None)`` trains exactly as the unweighted loss does.
In a multi-process run every rank reads the same datalist and computes the same weights.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch

__all__ = ["CLASS_WEIGHTING", "IMBALANCE_RATIO", "check_class_weighting", "class_counts", "is_imbalanced",
           "inverse_frequency_weights", "class_weights"]

logger = logging.getLogger(__name__)

#: values of the ``class_weighting`` option
CLASS_WEIGHTING = ("auto", "balanced", "none")

#: a training split is imbalanced when its smallest class has fewer cases than this fraction of its largest class.
#: 2/3 is where a two-class split's minority falls below 40 % of the cases, the upper end of what is commonly
#: called a mild imbalance (minority 20-40 %). Above it, weights would mostly follow the sampling noise of a
#: small split (a 9 / 11 split of a balanced population), and leaving the loss unweighted keeps such runs
#: identical to plain cross-entropy; AdrenalMNIST3D's training split (ratio about 0.28) is well below it.
IMBALANCE_RATIO = 2.0 / 3.0


def check_class_weighting(class_weighting: str) -> str:
    """``class_weighting`` if it is one of :data:`CLASS_WEIGHTING`.

    Raises:
        ValueError: any other value (the message names the value and the allowed ones).
    """
    if class_weighting not in CLASS_WEIGHTING:
        allowed = ", ".join(repr(v) for v in CLASS_WEIGHTING)
        raise ValueError(f"class_weighting must be one of {allowed}, got {class_weighting!r}")
    return class_weighting


def class_counts(labels: Iterable[int], num_classes: int) -> list[int]:
    """The number of cases of each class ``0 .. num_classes - 1`` among ``labels``.

    Raises:
        ValueError: a label outside ``0 .. num_classes - 1``.
    """
    counts = Counter(int(label) for label in labels)
    outside = sorted(c for c in counts if not 0 <= c < num_classes)
    if outside:
        raise ValueError(f"labels {outside} are not classes: allowed 0..{num_classes - 1}")
    return [counts.get(c, 0) for c in range(num_classes)]


def is_imbalanced(counts: Sequence[int], ratio: float = IMBALANCE_RATIO) -> bool:
    """Whether the smallest of ``counts`` is below ``ratio`` times the largest (see :data:`IMBALANCE_RATIO`).

    Examples: ``[80, 80]``, ``[9, 11]`` and ``[6, 4]`` (4 / 6 is not below 2/3) are balanced; ``[7, 4]`` (ratio
    0.57) and ``[929, 259]`` (0.28) are imbalanced.
    """
    return min(counts) < ratio * max(counts)


def inverse_frequency_weights(counts: Sequence[int]) -> list[float]:
    """Inverse class frequency weights whose mean over the cases is 1.

    With ``N`` cases in ``K`` classes and ``n_c`` cases of class ``c``::

        w_c = N / (K * n_c)

    so ``(1 / N) * sum_i w_{y_i} = (1 / N) * sum_c n_c * N / (K * n_c) = 1``: every class carries the same total
    weight ``N / K``, and the loss keeps the scale of the unweighted one. (``CrossEntropyLoss(weight=w)`` with
    ``reduction="mean"`` divides by the weights of each batch, so only the ratios between the weights change the
    training.) Example: counts ``[3, 1]`` give ``[4 / 6, 4 / 2] = [0.667, 2.0]``.

    Args:
        counts: cases per class, ``[K]``.

    Raises:
        ValueError: a class has no case (its weight would be infinite).
    """
    empty = [c for c, n in enumerate(counts) if n <= 0]
    if empty:
        raise ValueError(
            f"classes {empty} have no training case, so no class weight can be computed: "
            "add cases of every class to the training split, or set class_weighting to 'none'"
        )
    total, num_classes = sum(counts), len(counts)
    return [total / (num_classes * n) for n in counts]


def class_weights(
    data: Iterable[Mapping],
    num_classes: int,
    class_weighting: str = "auto",
    device: torch.device | str | None = None,
    class_names: Sequence[str] | None = None,
    label_key: str = "label",
) -> torch.Tensor | None:
    """The ``weight`` of the training loss for the entries ``data`` of the training split, or None.

    Logs one line saying which weighting applies, the class counts and the weights.

    Args:
        data: the training entries (``bundle.datalist.load_datalist(datalist, "training", num_classes)``).
        num_classes: number of classes ``K``.
        class_weighting: ``"auto"``, ``"balanced"`` or ``"none"`` (see the module's docstring).
        device: device of the weights: the training device (a loss on a CUDA model needs them there).
        class_names: names of the classes in the log line; default the class indices.
        label_key: key of the class index in each entry.

    Returns:
        float32 weights ``[K]`` (:func:`inverse_frequency_weights`) on ``device``, or None when no weighting
        applies (``"none"``, or ``"auto"`` on a balanced split).

    Raises:
        ValueError: an unknown ``class_weighting``, a label outside the classes, or (when weights apply) a class
            without training cases.
    """
    check_class_weighting(class_weighting)
    counts = class_counts((entry[label_key] for entry in data), num_classes)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    described = ", ".join(f"{n} {name!r}" for n, name in zip(counts, names))
    if class_weighting == "none":
        logger.info(f"class weighting 'none': training split {described}; loss without class weights")
        return None
    if class_weighting == "auto":
        ratio = min(counts) / max(counts) if max(counts) else 1.0
        if not is_imbalanced(counts):
            logger.info(
                f"class weighting 'auto': training split {described} is balanced (smallest / largest class "
                f"{ratio:.2f} >= {IMBALANCE_RATIO:.2f}); loss without class weights"
            )
            return None
        reason = f"is imbalanced (smallest / largest class {ratio:.2f} < {IMBALANCE_RATIO:.2f})"
    else:
        reason = "(weights always applied)"
    weights = inverse_frequency_weights(counts)
    shown = ", ".join(f"{name!r}: {w:.4f}" for name, w in zip(names, weights))
    logger.info(f"class weighting {class_weighting!r}: training split {described} {reason}; loss weights {shown}")
    return torch.tensor(weights, dtype=torch.float32, device=device)
