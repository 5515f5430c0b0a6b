# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Ignite handlers that write a run's results: per-case predictions and the engine's final metrics.

- :class:`PredictionsWriter`: per-case probabilities, the decision threshold used and the predicted class
  as CSV and JSON (with a status and reason per case).
- :class:`MetricsWriter`: the engine's final metrics as JSON.

Every file is written to a temporary name first and renamed, so an interrupted run never leaves
a half-written file in place of a good one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from bundle.decision import decided_class
from bundle.distributed import gather_in_order
from bundle.reports import atomic_write

__all__ = ["PredictionsWriter", "MetricsWriter", "case_name", "to_python"]

logger = logging.getLogger(__name__)


def to_python(value: Any, squeeze: bool = True) -> Any:
    """Tensors and arrays to Python numbers or lists; ``squeeze`` turns one-element arrays into numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 or (squeeze and value.size == 1) else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def case_name(item: Mapping, batch_item: Mapping | None, key: str) -> str:
    """The source file of a case (``filename_or_obj`` of ``key``'s metadata) in a decollated ``item`` or its
    ``batch_item``; ``""`` when neither carries one."""
    for source in (item, batch_item or {}):
        value = source.get(key)
        meta = getattr(value, "meta", None)
        if meta and meta.get("filename_or_obj"):
            return str(meta["filename_or_obj"])
        meta_dict = source.get(f"{key}_meta_dict")
        if meta_dict and meta_dict.get("filename_or_obj"):
            return str(meta_dict["filename_or_obj"])
    return ""


class PredictionsWriter:
    """Write one row per case: case path, label (when known), class probabilities, threshold, prediction, status.

    Attach to an evaluator whose postprocessing turns ``pred`` into probabilities ``[num_classes]``
    per case (``Activationsd(softmax=True)``). Files: ``<output_dir>/<name>.csv`` and ``.json``.
    ``prediction`` follows ``threshold`` (:func:`bundle.decision.decided_class`: class 1 when
    ``p[1] >= threshold``, argmax when it is None); the column ``threshold`` says which (empty in the CSV
    and null in the JSON for argmax).

    The last two columns are ``status`` (``ok``, or ``failed`` for a case that could not be read or used) and
    ``reason`` (empty, or one line naming the file, the problem and the transform). Failed cases come from
    ``engine.state.failed_cases`` (:class:`bundle.case_errors.CaseReportingEvaluator`, inference with
    ``fail_fast`` false) and keep their place in the dataset's order; their probabilities and prediction are
    empty (null in the JSON).

    Args:
        output_dir: folder of the files (created).
        class_names: names of the classes, used in the column names ``prob_<name>``; defaults to
            the class indices.
        name: file name without extension.
        pred_key: key of the probabilities in ``engine.state.output``.
        label_key: key of the label (optional: inference has none).
        image_key: key whose meta data give the case's file name.
        extra_keys: further per-case keys of the output or the batch to write (e.g. ``slice_indices``).
        threshold: decision threshold on the positive-class probability (binary tasks; ``@threshold`` of the
            configs); None: argmax.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        name: str = "predictions",
        pred_key: str = "pred",
        label_key: str = "label",
        image_key: str = "image",
        extra_keys: Sequence[str] = (),
        threshold: float | None = None,
    ) -> None:
        from transforms import check_threshold

        self.output_dir = Path(output_dir)
        self.threshold = check_threshold(threshold, "threshold")
        self.class_names = list(class_names) if class_names is not None else None
        self.name = name
        self.pred_key = pred_key
        self.label_key = label_key
        self.image_key = image_key
        self.extra_keys = tuple(extra_keys)
        self.rows: list[dict] = []

    @property
    def csv_path(self) -> Path:
        """The CSV file written."""
        return self.output_dir / f"{self.name}.csv"

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output
        batches = engine.state.batch
        if isinstance(outputs, Mapping):  # not decollated: split the batch dimension
            raise TypeError("PredictionsWriter needs decollated outputs (set decollate=True on the engine)")
        if not isinstance(batches, list):
            batches = [None] * len(outputs)
        failed = sorted(getattr(engine.state, "failed_cases", None) or [], key=lambda f: f["position"])
        start = len(self.rows)
        for item, batch_item in zip(outputs, batches):
            probs = np.asarray(to_python(item[self.pred_key]), dtype=float).reshape(-1)
            names = self.class_names or [str(c) for c in range(len(probs))]
            if len(names) != len(probs):
                raise ValueError(f"{len(names)} class names given for {len(probs)} predicted classes")
            row: dict[str, Any] = {"case": case_name(item, batch_item, self.image_key)}
            label = item.get(self.label_key)
            if label is None and batch_item is not None:
                label = batch_item.get(self.label_key)
            if label is not None:
                row["label"] = int(np.asarray(to_python(label)).reshape(-1)[0])
            for cls_name, p in zip(names, probs):
                row[f"prob_{cls_name}"] = round(float(p), 6)
            row["threshold"] = self.threshold
            row["prediction"] = decided_class(probs, self.threshold)
            row["predicted_class"] = names[row["prediction"]]
            for key in self.extra_keys:
                value = item.get(key, batch_item.get(key) if batch_item is not None else None)
                if value is not None:
                    value = to_python(value, squeeze=False)
                    if isinstance(value, list):  # drop the -1 padding of per-slice indices
                        value = [v for v in value if not (isinstance(v, int) and v < 0)]
                    row[key] = value
            row["status"], row["reason"] = "ok", ""
            self.rows.append(row)
        for record in failed:  # at their place in the batch among the good cases
            row = {"case": record.get("case", "")}
            if record.get("label") is not None:
                row["label"] = int(np.asarray(to_python(record["label"])).reshape(-1)[0])
            row.update(status="failed", reason=record.get("reason", ""))
            self.rows.insert(min(start + int(record["position"]), len(self.rows)), row)

    def write(self, engine: Engine | None = None) -> None:
        """Write the collected rows (CSV and JSON).

        In a multi-process evaluation attach it on every rank: rank 0 writes the rows of every rank in the
        dataset's order (:func:`bundle.distributed.gather_in_order`), the other ranks write nothing.
        """
        dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
        rows = gather_in_order(self.rows, len(dataset) if hasattr(dataset, "__len__") else None)
        if rows is None:
            return
        self.rows = rows
        if not self.rows:
            logger.warning("PredictionsWriter: no predictions to write")
            return
        columns: list[str] = []
        for row in sorted(self.rows, key=lambda r: r.get("status") == "failed"):  # ok rows give the order
            columns.extend(c for c in row if c not in columns and c not in ("status", "reason"))
        columns += ["status", "reason"]
        failed = 0
        for i, row in enumerate(self.rows):
            if row.get("status") == "failed":  # every column, empty ones null
                self.rows[i] = {c: row.get(c, self.threshold if c == "threshold" else None) for c in columns}
                failed += 1
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in row.items()})
        self.output_dir.mkdir(parents=True, exist_ok=True)
        csv_path = atomic_write(self.output_dir / f"{self.name}.csv", buf.getvalue())
        json_path = atomic_write(self.output_dir / f"{self.name}.json", json.dumps(self.rows, indent=2) + "\n")
        logger.info(f"wrote {len(self.rows)} predictions to {csv_path} and {json_path}")
        if failed:
            logger.warning(f"{failed} of {len(self.rows)} case(s) failed (status 'failed', reason in {csv_path})")


class MetricsWriter:
    """Write ``engine.state.metrics`` (and the number of cases) as JSON when the engine completes.

    ``configs/evaluate.json`` records the decision threshold the metrics were computed with among the
    ``extra`` values: ``decision_threshold`` (null: argmax).

    Args:
        output_dir: folder of the file (created).
        name: file name.
        extra: further values to record (e.g. the checkpoint, datalist and ``decision_threshold`` evaluated).
    """

    def __init__(self, output_dir: str | os.PathLike, name: str = "metrics.json", extra: Mapping | None = None) -> None:
        self.path = Path(output_dir) / name
        self.extra = dict(extra or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        content = {k: to_python(v) for k, v in engine.state.metrics.items()}
        dataloader = getattr(engine, "data_loader", None)
        dataset = getattr(dataloader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            content["num_cases"] = len(dataset)
        content.update({k: to_python(v) for k, v in self.extra.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(content, indent=2, default=str) + "\n")
        logger.info(f"metrics written to {self.path}: " + json.dumps(content, default=str))
