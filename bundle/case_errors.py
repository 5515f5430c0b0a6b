# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Bad cases: one readable line per case, and going on without them where the user asks for it.

A case fails when a transform of the data pipeline raises on it: a missing, unreadable or corrupt file,
NaN/inf voxels, an empty volume, a wrong dimensionality (:class:`transforms.LoadVolume` checks these), or
anything else a later transform refuses. MONAI wraps such an error in ``RuntimeError("applying transform
<transforms.io.LoadVolumed object at 0x...>")`` (``monai.transforms.apply_transform``; with the environment
variable ``MONAI_DEBUG=1`` it re-raises the original error unwrapped instead), and neither MONAI's datasets nor
PyTorch's ``DataLoader`` can leave a case out. This module turns the error into a :class:`CaseError` whose
message names the file, the transform and the problem (:func:`case_error`), and provides the datasets and
the evaluator that act on it:

- :class:`CheckedDataset` (inference): with ``fail_fast=False`` a bad case becomes a *failure record*
  (``{"image": <path>, "label": ..., FAILURE_KEY: <reason>}``) instead of an exception;
  :class:`bundle.collate.PadBagCollate` (``keep_failed=True``) collates the good cases of a batch and carries
  the failed ones under :data:`FAILED_CASES_KEY`; :class:`CaseReportingEvaluator` takes them out of the batch
  (``engine.state.failed_cases``) and skips a batch without any good case;
  :class:`bundle.result_writers.PredictionsWriter` writes them with ``status`` ``failed`` and the ``reason``;
  :func:`exit_if_failed` ends the run with a non-zero exit status after the predictions file is written. With
  ``fail_fast=True`` the first bad case stops the run with a :class:`CaseError`.
- :class:`CheckedCacheDataset` (training, validation, evaluation): every case is loaded into the cache;
  by default the bad cases are all reported at once in one :class:`CaseError`; with ``skip_bad_cases=True``
  they are logged, left out, and listed in :attr:`CheckedCacheDataset.skipped_cases`, which
  :class:`SkippedCasesLogger` records in the run's MLflow run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ignite.engine import Engine, Events
from monai.data import CacheDataset, Dataset
from monai.engines import SupervisedEvaluator

from bundle.config import as_bool
from bundle.errors import BundleUserError
from bundle.mlflow_handlers import MLflowRunUser

__all__ = [
    "FAILURE_KEY",
    "FAILED_CASES_KEY",
    "CaseError",
    "case_error",
    "case_path",
    "failure_record",
    "is_failure",
    "CheckedDataset",
    "CheckedCacheDataset",
    "CaseReportingEvaluator",
    "SkippedCasesLogger",
    "exit_if_failed",
]

logger = logging.getLogger(__name__)

#: key of a dataset item that marks it as a failed case; its value is the one-line reason
FAILURE_KEY = "case_failure"
#: key of a collated batch holding its failed cases: ``[{"position", "case", "reason"[, "label"]}, ...]``
FAILED_CASES_KEY = "failed_cases"

# MONAI's wrapper around a transform's error (monai.transforms.transform.apply_transform)
_WRAPPER = re.compile(r"^applying transform (.+)$", re.DOTALL)
# the class name in a repr: <package.module.Class object at 0x7f...>, or Class(arguments)
_DEFAULT_REPR = re.compile(r"^<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>$")
_CALL_REPR = re.compile(r"^(\w+)\(")
# at most this many bad cases are listed one per line in a message (all are in the predictions file / log)
_MAX_LISTED = 20


class CaseError(BundleUserError, ValueError):
    """One case of a dataset cannot be used; the message names the file, the problem and the transform.

    Attributes:
        path: the case's file (or folder), ``""`` when unknown.
        transform: the name of the transform that failed, ``""`` when unknown.
        problem: the problem in one line, without the path.
    """

    def __init__(self, path: str, problem: str, transform: str = "") -> None:
        self.path = path
        self.problem = problem
        self.transform = transform
        where = f" (in {transform})" if transform else ""
        super().__init__(f"{path or 'a case'}: {problem}{where}")

    @property
    def reason(self) -> str:
        """The message: ``"<path>: <problem> (in <transform>)"``, one line."""
        return str(self)


def case_path(data: Any) -> str:
    """The file of a case: the ``image`` of a datalist entry (a path, or an image's ``filename_or_obj``)."""
    if isinstance(data, Mapping):
        data = data.get("image", "")
    if isinstance(data, (str, os.PathLike)):
        return str(data)
    meta = getattr(data, "meta", None)
    if meta and meta.get("filename_or_obj"):
        return str(meta["filename_or_obj"])
    return ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _transform_name(text: str) -> str:
    """``LoadVolumed`` from ``<transforms.io.LoadVolumed object at 0x...>`` or ``LoadVolumed(keys=...)``."""
    text = text.strip()
    match = _DEFAULT_REPR.match(text) or _CALL_REPR.match(text)
    return match.group(1) if match else _one_line(text)


def case_error(data: Any, error: BaseException) -> CaseError:
    """A :class:`CaseError` for the case ``data`` from the exception a transform pipeline raised on it.

    Follows the chain of causes: MONAI's wrappers (``"applying transform <...>"``) give the name of the
    innermost transform that failed (a ``Compose`` is never the one named); the first error that is not such a
    wrapper gives the problem (the transform's own message, which wraps the error of a library it called).
    A path at the start of the problem (our transforms name the file) is not repeated.

    Args:
        data: the case as the dataset holds it (a datalist entry ``{"image": <path>, ...}``, or a cached item).
        error: what the pipeline raised.

    Example::

        >>> e = RuntimeError("applying transform <transforms.io.LoadVolumed object at 0x7f00>")
        >>> e.__cause__ = ValueError("/d/a.nii.gz: contains 3 NaN/inf voxels")
        >>> str(case_error({"image": "/d/a.nii.gz"}, e))
        '/d/a.nii.gz: contains 3 NaN/inf voxels (in LoadVolumed)'
    """
    if isinstance(error, CaseError):
        return error
    path = case_path(data)
    transform, root = "", error
    while type(root) is RuntimeError and root.__cause__ is not None and _WRAPPER.match(str(root)):
        name = _transform_name(_WRAPPER.match(str(root)).group(1))
        if name != "Compose":
            transform = name
        root = root.__cause__
    problem = _one_line(str(root)) or type(root).__name__
    if path and problem.startswith(f"{path}:"):
        problem = problem[len(path) + 1 :].strip()
    elif not isinstance(root, (ValueError, FileNotFoundError)):
        problem = f"{type(root).__name__}: {problem}"
    return CaseError(path, problem, transform)


def failure_record(data: Any, error: CaseError) -> dict:
    """The item a dataset gives for a failed case: its path, its label when known, and :data:`FAILURE_KEY`."""
    record: dict[str, Any] = {"image": error.path or case_path(data), FAILURE_KEY: error.reason}
    if isinstance(data, Mapping) and data.get("label") is not None:
        record["label"] = data["label"]
    return record


def is_failure(item: Any) -> bool:
    """Whether a dataset item is a failure record (:func:`failure_record`)."""
    return isinstance(item, Mapping) and FAILURE_KEY in item


def _listing(reasons: Sequence[str]) -> str:
    shown = "\n  ".join(reasons[:_MAX_LISTED])
    more = f"\n  ... and {len(reasons) - _MAX_LISTED} more" if len(reasons) > _MAX_LISTED else ""
    return f"  {shown}{more}"


class CheckedDataset(Dataset):
    """MONAI ``Dataset`` whose bad cases raise a readable :class:`CaseError`, or are passed on as failure records.

    Args:
        data: the cases (datalist entries).
        transform: the preprocessing.
        fail_fast: True: the first bad case raises :class:`CaseError` (naming file, problem and transform);
            False: a bad case is returned as :func:`failure_record` (logged as a WARNING) for
            :class:`bundle.collate.PadBagCollate` with ``keep_failed=True`` to carry on.
    """

    def __init__(self, data: Sequence, transform: Any = None, fail_fast: bool | str = True) -> None:
        super().__init__(data=data, transform=transform)
        self.fail_fast = as_bool(fail_fast, "fail_fast")

    def _transform(self, index: int) -> Any:
        try:
            return super()._transform(index)
        except Exception as e:
            error = case_error(self.data[index], e)
            if self.fail_fast:
                raise error from e
            logger.warning(f"case {index} failed, going on without it: {error}")
            return failure_record(self.data[index], error)


class CheckedCacheDataset(CacheDataset):
    """MONAI ``CacheDataset`` that reports every bad case at once, or leaves them out (``skip_bad_cases``).

    Every cached case is loaded (the deterministic transforms) while the cache fills; a case that raises is
    recorded instead of stopping the fill. Then:

    - ``skip_bad_cases=False`` (default): one :class:`CaseError` lists every bad case (file, problem,
      transform), one per line;
    - ``skip_bad_cases=True``: each bad case is logged as a WARNING and left out (``data`` and the cache
      hold the good cases only; ``len`` counts them), and :attr:`skipped_cases` lists them for
      :class:`SkippedCasesLogger`. An error if no case is left.

    Errors of the transforms run after the cache (the random ones) and of cases beyond the cache
    (``cache_rate`` < 1) raise :class:`CaseError` for that case; they cannot be skipped.

    Args:
        data: the cases (datalist entries).
        transform: the preprocessing (a ``Compose``).
        skip_bad_cases: leave bad cases out instead of raising.
        name: what the messages call the data (e.g. the split, ``"training"``).
        kwargs: the other arguments of MONAI's ``CacheDataset`` (``hash_as_key`` and ``runtime_cache`` are not
            supported with ``skip_bad_cases``).

    Attributes:
        skipped_cases: ``[{"case": <path>, "reason": <one line>}, ...]`` of the cases left out.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Any,
        skip_bad_cases: bool | str = False,
        name: str = "dataset",
        **kwargs: Any,
    ) -> None:
        self.skip_bad_cases = as_bool(skip_bad_cases, "skip_bad_cases")
        self.name = str(name)
        self.skipped_cases: list[dict[str, str]] = []
        if self.skip_bad_cases and (kwargs.get("hash_as_key") or kwargs.get("runtime_cache")):
            raise ValueError("skip_bad_cases needs a cache filled at construction (no hash_as_key, no runtime_cache)")
        super().__init__(data=data, transform=transform, **kwargs)

    def _load_cache_item(self, idx: int) -> Any:
        try:
            return super()._load_cache_item(idx)
        except Exception as e:
            return failure_record(self.data[idx], case_error(self.data[idx], e))

    def set_data(self, data: Sequence) -> None:
        """Set the cases, fill the cache, then raise for or leave out the bad ones (see the class docstring)."""
        self.skipped_cases = []
        super().set_data(data)
        bad = [i for i, item in enumerate(self._cache) if is_failure(item)]
        if not bad:
            return
        reasons = [self._cache[i][FAILURE_KEY] for i in bad]
        total = len(self.data)
        if not self.skip_bad_cases:
            raise CaseError(
                f"{self.name} data",
                f"{len(bad)} of {total} case(s) cannot be used (set skip_bad_cases true to leave them out):\n"
                + _listing(reasons),
            )
        for reason in reasons:
            logger.warning(f"{self.name}: skipped bad case: {reason}")
        self.skipped_cases = [{"case": self._cache[i]["image"], "reason": self._cache[i][FAILURE_KEY]} for i in bad]
        dropped = set(bad)
        self.data = [item for i, item in enumerate(self.data) if i not in dropped]
        self._cache = [item for i, item in enumerate(self._cache) if i not in dropped]
        self.cache_num = len(self._cache)
        if not self.data:
            raise CaseError(f"{self.name} data", f"all {total} case(s) are bad, none left:\n" + _listing(reasons))
        logger.warning(f"{self.name}: {len(bad)} of {total} case(s) skipped (skip_bad_cases), {len(self.data)} left")

    def _transform(self, index: int) -> Any:
        try:
            return super()._transform(index)
        except Exception as e:
            raise case_error(self.data[index], e) from e


class CaseReportingEvaluator(SupervisedEvaluator):
    """MONAI ``SupervisedEvaluator`` that passes the failed cases of a batch on and skips batches without a case.

    Each iteration takes the failed cases that :class:`bundle.collate.PadBagCollate` (``keep_failed=True``)
    put under :data:`FAILED_CASES_KEY` out of the batch into ``engine.state.failed_cases`` (``[]`` when none),
    where :class:`bundle.result_writers.PredictionsWriter` finds them. A batch whose cases all failed runs nothing:
    the iteration's output and batch are empty lists. Takes the arguments of ``SupervisedEvaluator``.
    """

    def _iteration(self, engine: SupervisedEvaluator, batchdata: dict[str, Any]) -> Any:
        failed = batchdata.pop(FAILED_CASES_KEY, []) if isinstance(batchdata, dict) else []
        engine.state.failed_cases = list(failed)
        if isinstance(batchdata, dict) and not batchdata:
            engine.state.batch = []
            engine.state.output = []
            return []
        return super()._iteration(engine, batchdata)


class SkippedCasesLogger(MLflowRunUser):
    """Record the cases that :class:`CheckedCacheDataset` left out (``skip_bad_cases``) in the run's MLflow run.

    When the trainer's first iteration starts (the run of the ``MLFlowHandler`` that ``--tracking mlflow``
    attaches is open then; see :class:`bundle.mlflow_handlers.MLflowRunUser`), logs the parameter ``skipped_cases``
    (their number) and the artifact ``skipped_cases.json`` (``{<name>: [{"case", "reason"}, ...]}``). Without
    tracking it does nothing (the datasets already logged every skipped case).

    Args:
        datasets: the datasets by name (e.g. ``{"training": @train#dataset, "validation": @dataset}``).
    """

    def __init__(self, datasets: Mapping[str, Any]) -> None:
        self.datasets = dict(datasets)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED(once=1), self)

    def skipped(self) -> dict[str, list[dict[str, str]]]:
        """The skipped cases of every dataset, by name."""
        return {name: list(getattr(ds, "skipped_cases", [])) for name, ds in self.datasets.items()}

    def __call__(self, engine: Engine) -> None:
        from mlflow.entities import Param

        skipped = self.skipped()
        count = sum(len(cases) for cases in skipped.values())
        for handler in self.open_mlflow_handlers():
            run_id = handler.cur_run.info.run_id
            handler.client.log_batch(run_id=run_id, metrics=[], params=[Param("skipped_cases", str(count))], tags=[])
            handler.client.log_text(run_id, json.dumps(skipped, indent=2) + "\n", "skipped_cases.json")


def exit_if_failed(rows: Sequence[Mapping[str, Any]], predictions: str | os.PathLike | None = None) -> None:
    """End the run with exit status 1 when a case failed, after its predictions file was written.

    For the ``run`` list of ``configs/inference.json`` after the evaluator: ``SystemExit`` passes through
    MONAI's config expressions and ignite (they catch ``Exception`` only), so ``python -m monai.bundle run``
    exits with status 1 and its last lines are the message: one line per failed case (file, problem,
    transform), then a summary naming the predictions file.

    Args:
        rows: the rows :class:`bundle.result_writers.PredictionsWriter` wrote (``status`` ``"ok"`` or ``"failed"``).
        predictions: the predictions file, for the message.

    Raises:
        SystemExit: at least one row has ``status`` ``"failed"``.
    """
    failed = [row for row in rows if row.get("status") == "failed"]
    if not failed:
        return
    where = f" (status and reason per case in {predictions})" if predictions else ""
    names = ", ".join(os.path.basename(str(row.get("case", ""))) or "?" for row in failed[:_MAX_LISTED])
    more = ", ..." if len(failed) > _MAX_LISTED else ""
    message = (
        _listing([str(row.get("reason", "")) for row in failed])
        + f"\ninference: {len(failed)} of {len(rows)} case(s) failed: {names}{more}; "
        + f"the {len(rows) - len(failed)} other(s) were predicted{where}"
    )
    raise SystemExit(message)
