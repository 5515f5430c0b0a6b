# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The handler that chooses the decision threshold on each validation during training and stores the kept
model's next to it (:mod:`bundle.decision`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from bundle.decision import POSITIVE_CLASS, choose_threshold, save_decision
from bundle.distributed import gather_in_order
from bundle.mlflow_handlers import MLflowRunUser
from bundle.model_selection import check_keep_model

__all__ = ["ThresholdSelector"]

logger = logging.getLogger(__name__)


def _label(item: Mapping, batch_item: Mapping | None, key: str) -> int | None:
    label = item.get(key)
    if label is None and batch_item is not None:
        label = batch_item.get(key)
    if label is None:
        return None
    return int(np.asarray(torch.as_tensor(label).detach().cpu()).reshape(-1)[0])


class ThresholdSelector(MLflowRunUser):
    """Choose the decision threshold on each validation run and store the kept model's as its sidecar.

    Attach it to the validation evaluator (``validate#handlers`` of ``configs/train.json``). On each run it
    collects the positive-class probability and the label of every case (gathered over ranks onto rank 0,
    :func:`bundle.distributed.gather_in_order`) and chooses a threshold (:func:`choose_threshold`), recorded
    with the trainer's epoch as :attr:`decision`. Rank 0 writes it to ``decision_path(path)``:

    - ``keep_model="best"``: when this validation's model became the best model, i.e. when the evaluator's
      key-metric ``CheckpointSaver`` (``bundle.model_selection.BestModelSaver``) saved ``path`` during this run.
      The saver says so itself: ignite's ``Checkpoint`` fires ``CheckpointEvents.SAVED_CHECKPOINT`` on the
      engine after each save, so the selector follows ``best_model_min_epoch`` and the saver's tie rule
      (``key_metric_greater_or_equal``) exactly, without repeating them;
    - ``keep_model="final"``: after every validation, so the sidecar holds the last validation's decision
      (``FinalModelSaver`` keeps the model of the end of training; when the last epoch is not validated the
      sidecar's ``epoch`` says which validation it came from).

    Each written threshold is also logged as the MLflow metric ``decision_threshold`` (step: the epoch) in the
    run of the ``MLFlowHandler`` that ``--tracking mlflow`` attaches to the evaluator (see
    :class:`bundle.mlflow_handlers.MLflowRunUser`): its last value is the kept model's. A validation whose
    probabilities have other than 2 classes is skipped (binary tasks only).

    Multi-process: attach it on every rank (collective; not in ``rank0_only_handlers``).

    Args:
        path: the kept model's file (``@best_model_path``); the sidecar goes next to it.
        keep_model: ``"best"`` or ``"final"`` (``@keep_model``).
        pred_key: key of the per-case class probabilities ``[num_classes]`` in the decollated output.
        label_key: key of the label in the output or the batch.

    Attributes:
        decision: the decision of the last validation (None before the first, and on ranks other than 0).
        written: the decision last written to the sidecar (None: none yet).
    """

    def __init__(
        self, path: str | os.PathLike, keep_model: str = "best", pred_key: str = "pred", label_key: str = "label"
    ) -> None:
        self.path = Path(path)
        self.keep_model = check_keep_model(keep_model)
        self.pred_key = pred_key
        self.label_key = label_key
        self.decision: dict | None = None
        self.written: dict | None = None
        self._cases: list[tuple[float, int]] = []
        self._saved = False
        self._binary = True

    def attach(self, engine: Engine) -> None:
        from ignite.handlers.checkpoint import CheckpointEvents

        if not engine.has_registered_events(CheckpointEvents.SAVED_CHECKPOINT):
            engine.register_events(*CheckpointEvents)
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(CheckpointEvents.SAVED_CHECKPOINT, self._model_saved)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._choose)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._cases, self._saved, self._binary, self.decision = [], False, True, None

    def _model_saved(self, engine: Engine) -> None:
        self._saved = True

    def state_dict(self) -> dict:
        """The decision last written to the sidecar, saved in the resumable checkpoint
        (:class:`bundle.resume.ResumeState`)."""
        return {"written": self.written}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore :meth:`state_dict`."""
        self.written = state_dict.get("written")

    def _collect(self, engine: Engine) -> None:
        outputs, batches = engine.state.output, engine.state.batch
        if isinstance(outputs, Mapping):
            raise TypeError("ThresholdSelector needs decollated outputs (set decollate=True on the engine)")
        if not isinstance(batches, list):
            batches = [None] * len(outputs)
        for item, batch_item in zip(outputs, batches):
            probs = torch.as_tensor(item[self.pred_key]).detach().float().reshape(-1)
            label = _label(item, batch_item, self.label_key)
            if probs.numel() != 2 or label is None:
                self._binary = False
                continue
            self._cases.append((float(probs[POSITIVE_CLASS]), label))

    def _choose(self, engine: Engine) -> None:
        dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
        cases = gather_in_order(self._cases, len(dataset) if hasattr(dataset, "__len__") else None)
        binary = gather_in_order([self._binary])
        if cases is None or not cases:  # another rank, or no case evaluated
            return
        if not all(binary):
            logger.info("decision threshold: not a binary task with labels, none chosen")
            return
        probabilities, labels = zip(*cases)
        self.decision = {**choose_threshold(probabilities, labels), "epoch": int(engine.state.epoch)}

    def _write(self, engine: Engine) -> None:
        if self.decision is None or (self.keep_model == "best" and not self._saved):
            return
        sidecar = save_decision(self.decision, self.path)
        self.written = self.decision
        d = self.decision
        rates = ", ".join(f"{k} {'n/a' if d[k] is None else format(d[k], '.3f')}" for k in ("sensitivity",
                                                                                              "specificity"))
        logger.info(
            f"validation epoch {d['epoch']}: decision threshold {d['threshold']:.4f} ({d['criterion']}; {rates}) "
            f"written to {sidecar}"
        )
        self._log_mlflow(float(d["threshold"]), int(d["epoch"]))

    def _log_mlflow(self, threshold: float, step: int) -> None:
        handlers = self.open_mlflow_handlers()
        if not handlers:
            return
        from mlflow.entities import Metric

        metric = Metric("decision_threshold", threshold, int(time.time() * 1000), step)
        for handler in handlers:
            handler.client.log_batch(run_id=handler.cur_run.info.run_id, metrics=[metric], params=[], tags=[])
