# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Ignite handlers the bundle configs attach to MONAI engines.

- :class:`PredictionsWriter`: per-case probabilities, the decision threshold used and the predicted class
  as CSV and JSON.
- :class:`MetricsWriter`: the engine's final metrics as JSON.
- :class:`PromoteCheckpoint`: after a run completes, offer its kept model for promotion to the bundle's
  ``models/`` folder (:func:`bundle.model_selection.promote_model`: when it beats the current model, or as
  ``promote`` says; with its decision sidecar and provenance; a failed run never touches it).
- :class:`MLflowRunExtras`: when the run is tracked with ``--tracking mlflow``, record the run's
  parameters, process and checkpoint in the same MLflow run (a resumed run: in the interrupted one), close
  runs left ``RUNNING`` by killed processes, and mark the run failed when training raises.
- :func:`share_mlflow_run`: hand the ``MLFlowHandler`` that ``--tracking mlflow`` adds to an engine to
  the handlers (:class:`MLflowRunUser`) that log into its run.
- :class:`IterationTimer`: wall time of each trainer iteration and model step, without data loading
  (the training cost the method comparison reports).
- :class:`SingleClassMonitor`: a WARNING, and MLflow metrics, when every case of a validation run is
  predicted as the same class (a collapsed model).

Every file is written to a temporary name first and renamed, so an interrupted run never leaves
a half-written file in place of a good one.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from bundle.decision import decided_class
from bundle.distributed import gather_in_order
from bundle.reports import atomic_write

__all__ = [
    "PredictionsWriter",
    "MetricsWriter",
    "PromoteCheckpoint",
    "MLflowRunExtras",
    "MLflowRunUser",
    "case_name",
    "share_mlflow_run",
    "IterationTimer",
    "SingleClassMonitor",
]

logger = logging.getLogger(__name__)


def _to_python(value: Any, squeeze: bool = True) -> Any:
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
            probs = np.asarray(_to_python(item[self.pred_key]), dtype=float).reshape(-1)
            names = self.class_names or [str(c) for c in range(len(probs))]
            if len(names) != len(probs):
                raise ValueError(f"{len(names)} class names given for {len(probs)} predicted classes")
            row: dict[str, Any] = {"case": case_name(item, batch_item, self.image_key)}
            label = item.get(self.label_key)
            if label is None and batch_item is not None:
                label = batch_item.get(self.label_key)
            if label is not None:
                row["label"] = int(np.asarray(_to_python(label)).reshape(-1)[0])
            for cls_name, p in zip(names, probs):
                row[f"prob_{cls_name}"] = round(float(p), 6)
            row["threshold"] = self.threshold
            row["prediction"] = decided_class(probs, self.threshold)
            row["predicted_class"] = names[row["prediction"]]
            for key in self.extra_keys:
                value = item.get(key, batch_item.get(key) if batch_item is not None else None)
                if value is not None:
                    value = _to_python(value, squeeze=False)
                    if isinstance(value, list):  # drop the -1 padding of per-slice indices
                        value = [v for v in value if not (isinstance(v, int) and v < 0)]
                    row[key] = value
            row["status"], row["reason"] = "ok", ""
            self.rows.append(row)
        for record in failed:  # at their place in the batch among the good cases
            row = {"case": record.get("case", "")}
            if record.get("label") is not None:
                row["label"] = int(np.asarray(_to_python(record["label"])).reshape(-1)[0])
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
        content = {k: _to_python(v) for k, v in engine.state.metrics.items()}
        dataloader = getattr(engine, "data_loader", None)
        dataset = getattr(dataloader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            content["num_cases"] = len(dataset)
        content.update({k: _to_python(v) for k, v in self.extra.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(content, indent=2, default=str) + "\n")
        logger.info(f"metrics written to {self.path}: " + json.dumps(content, default=str))


class MLflowRunUser:
    """Base of the handlers that log into the MLflow run of MONAI's ``MLFlowHandler`` (``--tracking mlflow``).

    How such a handler finds the run, through public interfaces only: ``--tracking mlflow`` (MONAI's
    ``ConfigWorkflow.patch_bundle_tracking``) appends an ``MLFlowHandler`` config, without an id, to
    ``train#handlers`` and ``validate#handlers``. An ignite engine does not list its handlers publicly, and
    the MLflow run is not the active run of MLflow's fluent API (``MLFlowHandler`` opens it through its
    own ``MlflowClient``, ``mlflow.active_run()`` is None), so the configs pass each engine's handler list
    through :func:`share_mlflow_run`, which sets :attr:`mlflow_handlers` of every :class:`MLflowRunUser`
    in the list to the ``MLFlowHandler`` objects of the same list::

        "train_handlers": "$bundle.handlers.share_mlflow_run(@train#handlers)"

    Each ``MLFlowHandler`` opens its run when its engine starts (``cur_run``, whose ``info.run_id`` and
    ``client`` are what the subclasses log with) and closes it on completion. Without tracking the list
    stays empty and the subclasses log nothing to MLflow.

    Attributes:
        mlflow_handlers: the ``MLFlowHandler`` objects attached to the same engine (empty: not tracked).
    """

    mlflow_handlers: Sequence[Any] = ()

    def open_mlflow_handlers(self) -> list[Any]:
        """The :attr:`mlflow_handlers` whose run is open (``cur_run`` set)."""
        return [handler for handler in self.mlflow_handlers if handler.cur_run is not None]


class PromoteCheckpoint(MLflowRunUser):
    """After the engine completes, offer ``source`` (the run's kept model) for promotion to ``target``.

    :func:`bundle.model_selection.promote_model` decides with ``promote`` (``"better"``: only when this run's
    validation metric beats the one recorded for the current model on the same validation data; ``"always"``;
    ``"never"``), replaces ``target`` atomically under a lock, moves the decision sidecar
    (``model.decision.json``, :func:`bundle.decision.decision_path`) with it, writes the provenance
    ``model.provenance.json`` beside it, and logs what it decided and why.

    A run that raises never reaches COMPLETED, so it never replaces the model a previous run promoted; the
    previous model also stays in its own run folder.

    What it records of this run's model: with ``validator`` (the validation evaluator), the key metric and epoch
    of the validation whose model was kept: for ``keep_model="best"`` the last validation after which the
    evaluator's key-metric saver (``BestModelSaver``) saved ``source`` (ignite's ``SAVED_CHECKPOINT`` event), for
    ``"final"`` the validation of the last epoch (none when the last epoch was not validated); the validation
    data's hash (:func:`bundle.model_selection.validation_data_hash` of ``datalist``'s ``split``); the run's
    name, folder and MLflow run id (when ``--tracking mlflow`` attached an ``MLFlowHandler`` to the same engine,
    see :class:`MLflowRunUser`; the outcome is then also set as the run's tags ``promotion`` and
    ``promotion_reason``).

    Multi-process: rank 0 only (``rank0_only_handlers``).

    Args:
        source: checkpoint written during the run.
        target: bundle path to promote it to (e.g. ``models/model.pt``).
        promote: ``"better"``, ``"always"`` or ``"never"`` (the ``promote`` option of ``configs/train.json``).
        validator: the validation evaluator (``@validate#evaluator``); None: no metric is known, so ``"better"``
            keeps an existing model.
        keep_model: ``"best"`` or ``"final"`` (which model ``source`` is).
        datalist: the run's datalist.
        split: the validation split of ``datalist``.
        run_name: the run's name (``@run_name``).
        run_dir: the run's folder (``@run_dir``).
        lock_timeout: seconds to wait for another run's promotion.

    Attributes:
        outcome: what :func:`bundle.model_selection.promote_model` returned (None before completion).
    """

    def __init__(
        self,
        source: str | os.PathLike,
        target: str | os.PathLike,
        promote: str = "better",
        validator: Engine | None = None,
        keep_model: str = "best",
        datalist: str | os.PathLike | None = None,
        split: str = "validation",
        run_name: str | None = None,
        run_dir: str | os.PathLike | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        from bundle.model_selection import check_keep_model, check_promote

        self.source = Path(source)
        self.target = Path(target)
        self.promote = check_promote(promote)
        self.validator = validator
        self.keep_model = check_keep_model(keep_model)
        self.datalist = datalist
        self.split = split
        self.run_name = run_name
        self.run_dir = run_dir
        self.lock_timeout = lock_timeout
        self.outcome: dict | None = None
        self._saved: dict | None = None
        self._last: dict | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)
        if self.validator is not None:
            from ignite.handlers.checkpoint import CheckpointEvents

            if not self.validator.has_registered_events(CheckpointEvents.SAVED_CHECKPOINT):
                self.validator.register_events(*CheckpointEvents)
            self.validator.add_event_handler(Events.EPOCH_COMPLETED, self._validated)
            self.validator.add_event_handler(CheckpointEvents.SAVED_CHECKPOINT, self._model_saved)

    def _validation(self, engine: Engine) -> dict:
        name = getattr(engine.state, "key_metric_name", None)
        value = engine.state.metrics.get(name) if name else None
        return {"metric": {"name": name, "value": None if value is None else float(_to_python(value))},
                "epoch": int(engine.state.epoch)}

    def _validated(self, engine: Engine) -> None:
        self._last = self._validation(engine)

    def _model_saved(self, engine: Engine) -> None:
        self._saved = self._validation(engine)

    def state_dict(self) -> dict[str, Any]:
        """The validations of the kept model and of the last epoch so far, saved in the resumable checkpoint
        (:class:`bundle.resume.ResumeState`)."""
        return {"saved": self._saved, "last": self._last}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed run knows the metric of a model kept before the interruption)."""
        self._saved, self._last = state_dict.get("saved"), state_dict.get("last")

    def _record(self, engine: Engine | None) -> dict:
        from bundle.model_selection import validation_data_hash

        validation = self._saved if self.keep_model == "best" else None
        if self.keep_model == "final" and self._last is not None and engine is not None:
            validation = self._last if self._last["epoch"] == engine.state.epoch else None
        validation = validation or {"metric": {"name": None, "value": None}, "epoch": None}
        handlers = self.open_mlflow_handlers()
        return {
            "run_name": self.run_name,
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "mlflow_run_id": handlers[0].cur_run.info.run_id if handlers else None,
            "keep_model": self.keep_model,
            **validation,
            "validation": {
                "datalist": None if self.datalist is None else str(self.datalist),
                "split": self.split,
                "sha256": None if self.datalist is None else validation_data_hash(self.datalist, self.split),
            },
        }

    def __call__(self, engine: Engine | None) -> None:
        from bundle.model_selection import promote_model

        self.outcome = promote_model(self.source, self.target, self.promote, self._record(engine), self.lock_timeout)
        for handler in self.open_mlflow_handlers():
            run_id = handler.cur_run.info.run_id
            handler.client.set_tag(run_id, "promotion", "promoted" if self.outcome["promoted"] else "kept")
            handler.client.set_tag(run_id, "promotion_reason", self.outcome["reason"][:4000])


def share_mlflow_run(handlers: Sequence[Any] | None) -> list[Any]:
    """Give the ``MLFlowHandler`` objects among an engine's ``handlers`` to the :class:`MLflowRunUser` among them.

    Pass an engine's handler list through it in the config (``"train_handlers":
    "$bundle.handlers.share_mlflow_run(@train#handlers)"``); see :class:`MLflowRunUser` for why.

    Args:
        handlers: the instantiated handlers of one engine (e.g. ``@train#handlers``); None: none.

    Returns:
        the same handlers, in order, as a list.
    """
    from monai.handlers import MLFlowHandler

    handlers = list(handlers or [])
    tracking = [h for h in handlers if isinstance(h, MLFlowHandler)]
    for handler in handlers:
        if isinstance(handler, MLflowRunUser):
            handler.mlflow_handlers = list(tracking)
    return handlers


class MLflowRunExtras(MLflowRunUser):
    """Complete the MLflow run that ``--tracking mlflow`` attaches to a trainer.

    When the run's first epoch starts (the run is open then), it tags the run with the process that runs it
    (:func:`bundle.mlflow_runs.process_tags`), logs ``params`` and closes as ``KILLED`` the runs of the same
    experiment that a process that is gone left ``RUNNING`` (:func:`bundle.mlflow_runs.close_killed_runs`). It
    logs the files in ``artifacts`` (those that exist) when training completes, and marks the run ``FAILED`` if
    training raises, so that a later run never appends to it. It works on the ``MLFlowHandler`` objects
    :func:`share_mlflow_run` gives it (see :class:`MLflowRunUser`) and does nothing without them.

    A resumed run (``resume_run_id``, the run id of the checkpoint's resume state) continues the interrupted
    MLflow run: when the trainer starts, before MONAI's ``MLFlowHandler`` opens a run, the run with that id is
    reopened (status ``RUNNING``; tags ``mims.resumed_from``, ``mims.resume_count`` and the new process) and given
    to the handler; the validation's handler finds it by its name, the interrupted run's. Of ``params`` it logs
    those the run does not have yet; a value that differs from the logged one cannot be changed in MLflow, so it
    is named in a WARNING and in the tag ``mims.params_changed_on_resume``. When the run is not in the tracking
    store, a WARNING says so and a new MLflow run is started.

    Put it first in the handler list: it must see an exception before handlers that re-raise it, and the trainer's
    start before the ``MLFlowHandler``.

    Args:
        params: run parameters (values are converted to strings by MLflow).
        artifacts: files to log at completion (missing ones are skipped with a log line).
        resume_run_id: the MLflow run to continue (``bundle.resume.resumed_mlflow_run_id(@resume_state)``); None:
            a new run.
        resumed_from: the checkpoint resumed from (for the tag).
    """

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        artifacts: Sequence[str | os.PathLike] = (),
        resume_run_id: str | None = None,
        resumed_from: str | os.PathLike | None = None,
    ) -> None:
        self.params = {str(k): _to_python(v) for k, v in (params or {}).items()}
        self.artifacts = [Path(a) for a in artifacts]
        self.resume_run_id = resume_run_id
        self.resumed_from = resumed_from
        self._starting = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._first_epoch)
        engine.add_event_handler(Events.COMPLETED, self._log_artifacts)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._mark_failed)

    def _started(self, engine: Engine) -> None:
        self._starting = True
        if self.resume_run_id is None:
            return
        for handler in self.mlflow_handlers:
            if handler.cur_run is None:
                self._reopen(handler)

    def _reopen(self, handler: Any) -> None:
        from mlflow.exceptions import MlflowException

        from bundle.mlflow_runs import process_tags

        client, run_id = handler.client, self.resume_run_id
        try:
            run = client.get_run(run_id)
        except MlflowException:
            run = None
        if run is None or run.info.lifecycle_stage != "active":
            logger.warning(f"MLflow: the run {run_id} of the resumed checkpoint is not in the tracking store "
                           f"{client.tracking_uri}: the resumed training is tracked as a new MLflow run")
            return
        if run.info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        count = int(run.data.tags.get("mims.resume_count", "0")) + 1
        tags = {**process_tags(), "mims.resume_count": str(count),
                "mims.resumed_from": f"{self.resumed_from} (the run was {run.info.status})"}
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        handler.cur_run = client.get_run(run_id)
        logger.info(f"MLflow: continuing run {run.info.run_name} ({run_id}), which was {run.info.status}")

    def _first_epoch(self, engine: Engine) -> None:
        if not self._starting:
            return
        self._starting = False
        from bundle.mlflow_runs import close_killed_runs, process_tags

        for handler in self.open_mlflow_handlers():
            run_id = handler.cur_run.info.run_id
            for key, value in process_tags().items():
                handler.client.set_tag(run_id, key, value)
            self._log_params(handler)
            close_killed_runs(handler.client, handler.cur_run.info.experiment_id, keep={run_id},
                              closer=handler.cur_run.info.run_name)

    def _log_params(self, handler: Any) -> None:
        from mlflow.entities import Param

        run_id = handler.cur_run.info.run_id
        logged = handler.client.get_run(run_id).data.params
        values = {key: str(value) for key, value in self.params.items()}
        new = [Param(key, value) for key, value in values.items() if key not in logged]
        if new:
            handler.client.log_batch(run_id=run_id, metrics=[], params=new, tags=[])
        changed = {key: (logged[key], value) for key, value in values.items() if key in logged and logged[key] != value}
        if changed:
            text = "; ".join(f"{key}: {old} -> {value}" for key, (old, value) in changed.items())
            logger.warning(f"MLflow: run parameters changed on resume (MLflow keeps the logged values): {text}")
            handler.client.set_tag(run_id, "mims.params_changed_on_resume", text[:5000])

    def _log_artifacts(self, engine: Engine) -> None:
        for handler in self.open_mlflow_handlers():
            for path in self.artifacts:
                if path.is_file():
                    handler.client.log_artifact(handler.cur_run.info.run_id, str(path))
                else:
                    logger.info(f"MLflow: artifact {path} does not exist, not logged")

    def _mark_failed(self, engine: Engine, e: BaseException) -> None:
        for handler in self.open_mlflow_handlers():
            handler.client.set_terminated(handler.cur_run.info.run_id, "FAILED")
            handler.cur_run = None  # its close() would mark the run FINISHED
        raise e


class IterationTimer:
    """Wall time of each trainer iteration, without data loading.

    ``ITERATION_STARTED`` fires after the batch was fetched; the iteration time runs to
    ``ITERATION_COMPLETED`` (the trainer's step and its iteration handlers, e.g. MLflow logging), the model
    step to MONAI's ``IterationEvents.MODEL_COMPLETED`` (prepare batch, forward, loss, backward, optimizer
    step, and the engine's own handlers of that event: decollation and postprocessing).

    Args:
        synchronize: called before each clock reading (``torch.cuda.synchronize`` on a GPU); None: nothing.

    Attributes:
        iteration_s: seconds of each iteration, in order.
        model_step_s: seconds of each model step, in order.
    """

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self.synchronize = synchronize or (lambda: None)
        self.iteration_s: list[float] = []
        self.model_step_s: list[float] = []
        self._start = 0.0

    def attach(self, engine: Engine) -> None:
        """Time the iterations of ``engine`` (a MONAI trainer: it fires ``IterationEvents``)."""
        from monai.engines.utils import IterationEvents

        engine.add_event_handler(Events.ITERATION_STARTED, self._started)
        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self._model_completed)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._completed)

    def _now(self) -> float:
        self.synchronize()
        return time.perf_counter()

    def _started(self, engine: Engine) -> None:
        self._start = self._now()

    def _model_completed(self, engine: Engine) -> None:
        self.model_step_s.append(self._now() - self._start)

    def _completed(self, engine: Engine) -> None:
        self.iteration_s.append(self._now() - self._start)


class SingleClassMonitor(MLflowRunUser):
    """Say loudly when every case of a validation run is predicted as the same class.

    A model that answers one class for everything (collapsed training) has F1 = 0 and the accuracy of the
    majority class, yet its AUROC can look fair, since AUROC only ranks the probabilities. At the end of each
    run of the engine (``EPOCH_COMPLETED``; for the validation evaluator ``engine.state.epoch`` is the trainer's
    epoch), when at least two cases were evaluated and the argmax of ``pred`` is the same class for all of them,
    it logs a WARNING::

        validation epoch 3: all 40 validation cases predicted 'normal' (class 0): the model answers one class
        for everything (collapsed); AUROC may still rank them

    and, on every epoch, records the MLflow metrics ``<metric_prefix>single_class`` (1: one class for all cases,
    else 0) and ``<metric_prefix>distinct_classes`` (the number of distinct predicted classes), with the epoch as
    step, in the run of the ``MLFlowHandler`` that ``--tracking mlflow`` attaches to the same engine (see
    :class:`MLflowRunUser`; pass the engine's handler list through :func:`share_mlflow_run`).

    Multi-process: attach it on every rank (collective operation: do not list it in ``rank0_only_handlers``);
    every rank's predicted classes are gathered onto rank 0 (:func:`bundle.distributed.gather_in_order`), which
    decides, logs and records.

    Args:
        class_names: names of the classes in the log line; defaults to the class indices.
        pred_key: key of the per-case class probabilities ``[num_classes]`` (or logits) in the decollated
            ``engine.state.output``.
        name: what the log line calls the run.
        metric_prefix: prefix of the MLflow metric names.

    Attributes:
        predicted: predicted class of each case this rank evaluated in the current epoch.
        distinct_classes: number of distinct classes predicted in the last completed run (over all ranks; None
            before the first run, and on ranks other than 0).
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        pred_key: str = "pred",
        name: str = "validation",
        metric_prefix: str = "val_",
    ) -> None:
        self.class_names = list(class_names) if class_names is not None else None
        self.pred_key = pred_key
        self.name = name
        self.metric_prefix = metric_prefix
        self.predicted: list[int] = []
        self.distinct_classes: int | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._check)

    def _reset(self, engine: Engine) -> None:
        self.predicted = []

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output
        if isinstance(outputs, Mapping):
            raise TypeError("SingleClassMonitor needs decollated outputs (set decollate=True on the engine)")
        for item in outputs:
            self.predicted.append(int(torch.as_tensor(item[self.pred_key]).detach().reshape(-1).argmax()))

    def _class_name(self, cls: int) -> str:
        return self.class_names[cls] if self.class_names is not None and cls < len(self.class_names) else str(cls)

    def _check(self, engine: Engine) -> None:
        dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
        predicted = gather_in_order(self.predicted, len(dataset) if hasattr(dataset, "__len__") else None)
        if predicted is None or not predicted:  # another rank, or no case evaluated
            return
        epoch = engine.state.epoch
        classes = sorted(set(predicted))
        self.distinct_classes = len(classes)
        single = len(classes) == 1 and len(predicted) > 1
        if single:
            cls = classes[0]
            logger.warning(
                f"{self.name} epoch {epoch}: all {len(predicted)} {self.name} cases predicted "
                f"{self._class_name(cls)!r} (class {cls}): the model answers one class for everything (collapsed); "
                "AUROC may still rank them"
            )
        self._log_mlflow({"single_class": float(single), "distinct_classes": float(len(classes))}, epoch)

    def _log_mlflow(self, values: Mapping[str, float], step: int) -> None:
        handlers = self.open_mlflow_handlers()
        if not handlers:
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        metrics = [Metric(f"{self.metric_prefix}{key}", value, timestamp, step) for key, value in values.items()]
        for handler in handlers:
            handler.client.log_batch(run_id=handler.cur_run.info.run_id, metrics=metrics, params=[], tags=[])
