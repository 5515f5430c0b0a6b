# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The decision of a classifier: class probabilities to a one-hot class, by argmax or by a threshold.

The threshold rule (binary tasks, positive class 1) is defined here once: a case is positive when its
positive-class probability ``p[1] >= threshold``. ``threshold=None`` is the argmax (the first class on a tie),
i.e. the rule of a threshold of 0.5 except for a case at exactly 0.5, which argmax calls negative.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

__all__ = ["ThresholdDecision", "ThresholdDecisiond", "check_threshold"]


def check_threshold(threshold: float | None, name: str = "threshold") -> float | None:
    """``threshold`` as a float if it is None (argmax) or a real number in [0, 1].

    Raises:
        ValueError: any other value (the message names ``name`` and the value).
    """
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must be null (argmax) or a number in [0, 1], got {threshold!r}")
    return float(threshold)


class ThresholdDecision(Transform):
    """Class probabilities ``[C, *spatial]`` (channel first) to the one-hot decision ``[C, *spatial]``.

    ``threshold`` None: the argmax over the channels (as ``AsDiscrete(argmax=True, to_onehot=C)``). A number:
    binary only (``C == 2``), class 1 where ``p[1] >= threshold``, else class 0. The output has the dtype of
    the input when it is floating point (else float32), and its container type (numpy in, numpy out).

    Args:
        threshold: decision threshold on the positive-class probability, in [0, 1]; None: argmax.

    Raises:
        ValueError: a threshold outside [0, 1]; a threshold for an input without exactly 2 channels.

    Example::

        >>> ThresholdDecision(0.3)(torch.tensor([0.75, 0.25]))
        tensor([1., 0.])
        >>> ThresholdDecision(0.2)(torch.tensor([0.75, 0.25]))
        tensor([0., 1.])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = check_threshold(threshold)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: class probabilities ``[C, *spatial]`` (a per-case vector ``[C]`` in the bundle).

        Returns:
            one-hot ``[C, *spatial]``, same container type as ``img``.
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        num_classes = int(img_t.shape[0])
        if self.threshold is None:
            index = img_t.argmax(dim=0)
        elif num_classes != 2:
            raise ValueError(f"a decision threshold needs 2 classes (binary task), got {num_classes} channels")
        else:
            index = (img_t[1] >= self.threshold).long()
        dtype = img_t.dtype if img_t.is_floating_point() else torch.float32
        out = torch.nn.functional.one_hot(torch.as_tensor(index).as_subclass(torch.Tensor), num_classes)
        out = out.movedim(-1, 0).to(dtype)
        result, *_ = convert_to_dst_type(out, dst=img, dtype=dtype)
        return result


class ThresholdDecisiond(MapTransform):
    """Dictionary-based version of :py:class:`ThresholdDecision`.

    In ``configs/common.json`` it turns the copy ``pred_onehot`` of the probabilities into the decision that
    accuracy and F1 score, with the threshold resolved from ``decision_threshold``.

    Args:
        keys: keys of the class probabilities to replace by their one-hot decision.
        threshold: decision threshold on the positive-class probability; None: argmax.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = ThresholdDecision.backend

    def __init__(self, keys: KeysCollection, threshold: float | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.decision = ThresholdDecision(threshold)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.decision(d[key])
        return d
