# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A WARNING, and MLflow metrics, when every case of a validation run is predicted as the same class (a
collapsed model)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import torch
from ignite.engine import Engine, Events

from bundle.distributed import gather_in_order
from bundle.mlflow_handlers import MLflowRunUser

__all__ = ["SingleClassMonitor"]

logger = logging.getLogger(__name__)


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
