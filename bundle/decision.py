# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The decision threshold of a binary model: chosen on the validation split, stored with the model, used everywhere.

A binary model's decision is "positive (class 1) when ``p[1] >= threshold``" (:mod:`transforms.decision`).
Argmax is the same rule at 0.5, which on an imbalanced task can call every case negative (F1 = 0) while the
probabilities still rank the cases well. So:

- training (``configs/train.json``): :class:`bundle.threshold_selection.ThresholdSelector` chooses a threshold
  on each validation (:func:`choose_threshold`, Youden's J) and writes the one of the kept model's epoch to the
  **sidecar** ``<run_dir>/model.decision.json`` next to ``<run_dir>/model.pt`` (:func:`decision_path`);
  ``PromoteCheckpoint`` copies it with the model to ``models/model.decision.json``. Validation metrics during
  training stay argmax (``decision_threshold`` is null in ``train.json``), so the best-model choice does not
  depend on it;
- evaluation and inference (``configs/common.json``): the option ``decision_threshold`` is ``"auto"`` (the
  sidecar of ``ckpt_path`` when it exists, else argmax), a number in (0, 1), or null (argmax);
  :func:`resolve_threshold` turns it into the threshold (None: argmax) that accuracy, F1 and the predictions
  files use;
- the TorchScript archive (:mod:`bundle.export`) carries the decision in its ``metadata.json`` (``"decision"``),
  which the MONAI Deploy app reads (:func:`archive_decision`).

A sidecar holds, e.g.::

    {"positive_class": 1, "threshold": 0.3126, "criterion": "youden", "split": "validation", "num_cases": 40,
     "sensitivity": 0.9, "specificity": 0.8667, "epoch": 7}
"""

from __future__ import annotations

import json
import logging
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bundle.reports import atomic_write

__all__ = [
    "DECISION_SUFFIX",
    "POSITIVE_CLASS",
    "archive_decision",
    "check_decision_threshold",
    "choose_threshold",
    "decided_class",
    "decision_path",
    "load_decision",
    "resolve_decision",
    "resolve_threshold",
    "save_decision",
]

logger = logging.getLogger(__name__)

#: the sidecar of ``model.pt`` is ``model`` + this suffix
DECISION_SUFFIX = ".decision.json"
#: the class a threshold is about (binary tasks)
POSITIVE_CLASS = 1


def _rates(positive: np.ndarray, labels: np.ndarray) -> tuple[float | None, float | None]:
    """Sensitivity and specificity of the decisions ``positive`` (bool) against ``labels`` (None: no such class)."""
    pos, neg = labels == 1, labels == 0
    sensitivity = float(positive[pos].mean()) if pos.any() else None
    specificity = float((~positive[neg]).mean()) if neg.any() else None
    return sensitivity, specificity


def choose_threshold(probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict:
    """The threshold on the positive-class probability that maximises Youden's J on these cases.

    J = sensitivity + specificity - 1, a case being positive when ``p >= threshold``. The candidates are the
    midpoints between consecutive distinct sorted probabilities, plus the extremes 0.0 (every case positive)
    and 1.0 (no case positive unless ``p == 1``). J is compared exactly (on the counts, not on rounded
    rates). Among candidates of equal J the one closest to 0.5 wins (the argmax rule, when it is among the
    best), and of two equally close the lower one.

    When the cases hold only one class, J is undefined: the threshold is 0.5 with the criterion
    ``"default (validation had one class)"`` and a logged warning.

    Args:
        probabilities: positive-class probability of each case ``[n]``, in [0, 1].
        labels: true class of each case ``[n]``, 0 or 1.

    Returns:
        ``{"positive_class": 1, "threshold", "criterion": "youden", "split": "validation", "num_cases",
        "sensitivity", "specificity"}`` (rates at the chosen threshold; None for a class with no case).

    Raises:
        ValueError: no cases, lengths that differ, labels other than 0/1, probabilities outside [0, 1].

    Example::

        >>> choose_threshold([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])["threshold"]
        0.25
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if p.size == 0:
        raise ValueError("choose_threshold needs at least one case")
    if p.size != y.size:
        raise ValueError(f"{p.size} probabilities for {y.size} labels")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1 (binary task), got {sorted(set(y.tolist()))}")
    if not ((p >= 0.0) & (p <= 1.0)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    y = y.astype(int)
    result: dict[str, Any] = {"positive_class": POSITIVE_CLASS, "split": "validation", "num_cases": int(p.size)}
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        logger.warning(
            f"decision threshold: the {p.size} validation cases are all of class {int(y[0])}; Youden's J is "
            "undefined, using 0.5"
        )
        sensitivity, specificity = _rates(p >= 0.5, y)
        return {**result, "threshold": 0.5, "criterion": "default (validation had one class)",
                "sensitivity": sensitivity, "specificity": specificity}
    distinct = np.unique(p)
    candidates = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2.0, [1.0]])
    best_key, best = None, 0.0
    for threshold in candidates:
        positive = p >= threshold
        tp, tn = int((positive & (y == 1)).sum()), int((~positive & (y == 0)).sum())
        # J * n_pos * n_neg, an integer: exact comparison
        score = tp * n_neg + tn * n_pos - n_pos * n_neg
        key = (score, -abs(float(threshold) - 0.5), -float(threshold))
        if best_key is None or key > best_key:
            best_key, best = key, float(threshold)
    sensitivity, specificity = _rates(p >= best, y)
    return {**result, "threshold": best, "criterion": "youden", "sensitivity": sensitivity,
            "specificity": specificity}


def decision_path(ckpt_path: str | os.PathLike) -> Path:
    """The sidecar of a checkpoint: ``model.pt`` -> ``model.decision.json`` in the same folder."""
    path = Path(ckpt_path)
    return path.with_name(path.stem + DECISION_SUFFIX) if path.suffix else path.with_name(path.name + DECISION_SUFFIX)


def _sidecar(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.name.endswith(DECISION_SUFFIX) else decision_path(path)


def _check_decision(decision: Any, source: str) -> dict:
    if not isinstance(decision, Mapping):
        raise ValueError(f"{source}: a decision must be a JSON object, got {type(decision).__name__}")
    threshold = decision.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{source}: 'threshold' must be a number in [0, 1], got {threshold!r}")
    if decision.get("positive_class", POSITIVE_CLASS) != POSITIVE_CLASS:
        raise ValueError(f"{source}: positive_class must be {POSITIVE_CLASS}, got {decision.get('positive_class')!r}")
    return dict(decision)


def save_decision(decision: Mapping[str, Any], ckpt_path_or_sidecar: str | os.PathLike) -> Path:
    """Write ``decision`` as the sidecar of a checkpoint (or to the given ``*.decision.json``), atomically.

    Returns:
        the sidecar's path.

    Raises:
        ValueError: a decision without a ``threshold`` in [0, 1].
    """
    path = _sidecar(ckpt_path_or_sidecar)
    decision = _check_decision(decision, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(decision, indent=2) + "\n")


def load_decision(ckpt_path_or_sidecar: str | os.PathLike) -> dict:
    """Read the sidecar of a checkpoint (or the given ``*.decision.json``).

    Raises:
        FileNotFoundError: no such sidecar (the message names it).
        ValueError: naming the file when it is not JSON or has no ``threshold`` in [0, 1].
    """
    path = _sidecar(ckpt_path_or_sidecar)
    if not path.is_file():
        raise FileNotFoundError(f"no decision file {path}")
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a valid decision file ({err})") from err
    return _check_decision(decision, str(path))


def check_decision_threshold(setting: Any, num_classes: int) -> Any:
    """``setting`` when it is a valid ``decision_threshold``: ``"auto"``, None (argmax), or a number in (0, 1) for a
    binary task (``num_classes`` 2).

    Raises:
        ValueError: naming ``decision_threshold``, for any other setting or for a number with ``num_classes``
            above 2.
    """
    numeric = isinstance(setting, numbers.Real) and not isinstance(setting, bool)
    if setting is not None and setting != "auto" and not (numeric and 0.0 < setting < 1.0):
        raise ValueError(f"decision_threshold must be 'auto', null (argmax) or a number in (0, 1), got {setting!r}")
    if numeric and int(num_classes) > 2:
        raise ValueError(
            f"decision_threshold {setting} applies to binary tasks only; num_classes is {num_classes}: "
            "use 'auto' or null (argmax)"
        )
    return setting


def resolve_decision(setting: Any, ckpt_path: str | os.PathLike | None, num_classes: int) -> dict | None:
    """The decision that the option ``decision_threshold`` asks for; None: argmax.

    Args:
        setting: ``"auto"`` (the sidecar of ``ckpt_path`` when it exists, with ``"source"`` its path; else
            None), a number in (0, 1) (``"criterion": "configured"``), or None (argmax).
        ckpt_path: the checkpoint evaluated (``@ckpt_path``).
        num_classes: classes of the task; above 2 the decision is always argmax.

    Raises:
        ValueError: naming ``decision_threshold`` for any other setting, for a number with ``num_classes``
            above 2, or naming the sidecar when it is malformed.
    """
    numeric = check_decision_threshold(setting, num_classes) not in (None, "auto")
    if int(num_classes) > 2:
        logger.info(f"decision: argmax ({num_classes} classes)")
        return None
    if setting is None:
        logger.info("decision: argmax (decision_threshold null)")
        return None
    if numeric:
        logger.info(f"decision: threshold {float(setting):.4g} on class {POSITIVE_CLASS} (decision_threshold)")
        return {"positive_class": POSITIVE_CLASS, "threshold": float(setting), "criterion": "configured",
                "source": "decision_threshold"}
    sidecar = decision_path(ckpt_path) if ckpt_path is not None else None
    if sidecar is None or not sidecar.is_file():
        logger.info(f"decision: argmax (decision_threshold 'auto' and no decision file {sidecar})")
        return None
    decision = {**load_decision(sidecar), "source": str(sidecar)}
    logger.info(
        f"decision: threshold {decision['threshold']:.4g} on class {POSITIVE_CLASS} "
        f"({decision.get('criterion', '?')} on {decision.get('split', '?')}, epoch {decision.get('epoch', '?')}) "
        f"from {sidecar}"
    )
    return decision


def resolve_threshold(setting: Any, ckpt_path: str | os.PathLike | None, num_classes: int) -> float | None:
    """The threshold of :func:`resolve_decision` (None: argmax); what ``configs/common.json``'s ``threshold`` is."""
    decision = resolve_decision(setting, ckpt_path, num_classes)
    return None if decision is None else float(decision["threshold"])


def archive_decision(metadata: Mapping[str, Any]) -> dict | None:
    """The decision a TorchScript archive carries (``metadata.json``'s ``"decision"``); None: argmax.

    Archives exported before decisions existed have no such key: argmax.

    Raises:
        ValueError: a ``"decision"`` that is neither null nor a decision with a ``threshold`` in [0, 1].
    """
    decision = metadata.get("decision")
    return None if decision is None else _check_decision(decision, "archive metadata 'decision'")


def decided_class(probabilities: Any, threshold: float | None) -> int:
    """The class decided for one case's probabilities ``[C]``: ``p[1] >= threshold`` (binary), or argmax (None)."""
    from transforms import ThresholdDecision

    probs = torch.as_tensor(np.asarray(probabilities, dtype=np.float64)).reshape(-1)
    return int(ThresholdDecision(threshold)(probs).argmax())
