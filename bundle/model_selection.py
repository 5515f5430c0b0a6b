# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Which model a training run keeps, and when it stops.

The options of ``configs/train.json`` (defaults keep the behaviour of a run without them):

- ``keep_model`` (``"best"``): ``"best"`` keeps the model of the best validation (key metric, the latest of
  equal scores) as ``<run_dir>/model.pt``, written by :class:`BestModelSaver` in ``validate#handlers``;
  ``"final"`` keeps the model as it is when training ends, written there by :class:`FinalModelSaver`. Either
  file is what ``PromoteCheckpoint`` copies to ``models/model.pt`` when training completes.
- ``best_model_min_epoch`` (1): validations of epochs before it cannot make the best model (on a small
  validation set, an early model that calls every case negative can otherwise win and never be replaced).
- ``early_stopping_patience`` (null: off): :class:`ValidationEarlyStopping` stops training when the key
  validation metric has not improved for that many validations (those from ``best_model_min_epoch`` on).
  Ignite fires ``COMPLETED`` after a stop, so the kept model is promoted and ``checkpoint_final.pt`` written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from monai.handlers import CheckpointSaver

from bundle.reports import atomic_path

__all__ = [
    "KEEP_MODEL",
    "check_keep_model",
    "check_best_model_min_epoch",
    "check_early_stopping_patience",
    "BestModelSaver",
    "FinalModelSaver",
    "ValidationEarlyStopping",
]

logger = logging.getLogger(__name__)

#: values of the ``keep_model`` option
KEEP_MODEL = ("best", "final")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_keep_model(keep_model: str) -> str:
    """``keep_model`` if it is one of :data:`KEEP_MODEL`.

    Raises:
        ValueError: any other value (the message names the key, the value and the allowed ones).
    """
    if keep_model not in KEEP_MODEL:
        allowed = ", ".join(repr(v) for v in KEEP_MODEL)
        raise ValueError(f"keep_model must be one of {allowed}, got {keep_model!r}")
    return keep_model


def check_best_model_min_epoch(min_epoch: int) -> int:
    """``best_model_min_epoch`` if it is an integer >= 1.

    Raises:
        ValueError: any other value.
    """
    if not _is_int(min_epoch) or min_epoch < 1:
        raise ValueError(f"best_model_min_epoch must be an integer >= 1, got {min_epoch!r}")
    return min_epoch


def check_early_stopping_patience(patience: int | None) -> int | None:
    """``early_stopping_patience`` if it is None (no early stopping) or an integer >= 1.

    Raises:
        ValueError: any other value.
    """
    if patience is not None and (not _is_int(patience) or patience < 1):
        raise ValueError(f"early_stopping_patience must be null (off) or an integer >= 1, got {patience!r}")
    return patience


class BestModelSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` whose key-metric checkpoint ignores validations before ``min_epoch``.

    A validation of an epoch (``engine.state.epoch``; for the validation evaluator, the trainer's epoch) below
    ``min_epoch`` neither writes the key-metric file nor enters the saver's record of the best score, so the
    first candidate is the validation of ``min_epoch`` or later. Every other argument is ``CheckpointSaver``'s;
    with ``min_epoch=1`` it behaves exactly as ``CheckpointSaver``. If no validation reaches ``min_epoch``
    (``min_epoch`` above ``epochs``), no key-metric file is written.

    Args:
        args: positional arguments of ``CheckpointSaver``.
        min_epoch: first epoch whose validation can become the best model (``best_model_min_epoch``), >= 1.
        kwargs: keyword arguments of ``CheckpointSaver``.
    """

    def __init__(self, *args: Any, min_epoch: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_epoch = check_best_model_min_epoch(min_epoch)

    def metrics_completed(self, engine: Engine) -> None:
        """Save the model if its key metric is the best so far and its epoch is at least ``min_epoch``."""
        if engine.state.epoch < self.min_epoch:
            logger.info(
                f"validation epoch {engine.state.epoch} is before best_model_min_epoch {self.min_epoch}: "
                "not a candidate for the best model"
            )
            return
        super().metrics_completed(engine)


class FinalModelSaver:
    """When the engine completes, write the weights of ``network`` (its ``state_dict``) to ``path``.

    The file has the format of the key-metric checkpoint (a bare state dict), so ``PromoteCheckpoint``, evaluation
    and export read it alike. It is written to a temporary name and renamed. A run that raises never completes
    and writes nothing. Attach it before the handlers that read ``path`` on completion (MLflow artifacts,
    ``PromoteCheckpoint``).

    Args:
        network: the trained network (not a ``DistributedDataParallel`` wrapper).
        path: file to write (``<run_dir>/model.pt``).
    """

    def __init__(self, network: torch.nn.Module, path: str | os.PathLike) -> None:
        self.network = network
        self.path = Path(path)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save(self.network.state_dict(), tmp)
        logger.info(f"final model of epoch {engine.state.epoch} saved to {self.path} (keep_model 'final')")


class ValidationEarlyStopping:
    """Stop training when the validation's key metric has not improved for ``patience`` validations.

    Attach it to the trainer (list it in ``train#handlers``): it hands the trainer to ignite's ``EarlyStopping``
    and checks after each run of ``validator`` (``EPOCH_COMPLETED`` of the evaluator, after the evaluator's own
    handlers and metrics). An improvement is a score above the best so far by more than ``min_delta``; an equal
    score is not one. Validations of epochs before ``min_epoch`` are not counted (as for :class:`BestModelSaver`).
    When it stops the trainer it logs, e.g.::

        early stopping at epoch 7: validation auroc has not improved for 3 validations (patience 3); best auroc
        0.9125 at epoch 4

    The trainer then finishes the epoch and fires ``COMPLETED`` (promotion, final checkpoint). Multi-process:
    attach it on every rank (the metric is the same on all ranks, so all stop together). Its count is not in
    the resumable checkpoint: a resumed run counts again from its first validation.

    Args:
        validator: the validation evaluator (``@validate#evaluator``).
        patience: number of validations without improvement after which training stops, >= 1.
        min_epoch: first epoch whose validation counts (``best_model_min_epoch``), >= 1.
        metric_name: metric to watch; None: the evaluator's key metric.
        min_delta: smallest increase that counts as an improvement.

    Attributes:
        best_epoch: epoch of the best validation so far (None before the first counted one).
        stopped_epoch: epoch at which it stopped training (None: it did not).
    """

    def __init__(
        self,
        validator: Engine,
        patience: int,
        min_epoch: int = 1,
        metric_name: str | None = None,
        min_delta: float = 0.0,
    ) -> None:
        self.validator = validator
        self.patience = check_early_stopping_patience(patience)
        if self.patience is None:
            raise ValueError("early_stopping_patience must be an integer >= 1 for ValidationEarlyStopping")
        self.min_epoch = check_best_model_min_epoch(min_epoch)
        self.metric_name = metric_name
        self.min_delta = min_delta
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self._trainer: Engine | None = None
        self._stopping: EarlyStopping | None = None

    def attach(self, trainer: Engine) -> None:
        self._trainer = trainer
        self._stopping = EarlyStopping(self.patience, self._score, trainer, min_delta=self.min_delta)
        self.validator.add_event_handler(Events.EPOCH_COMPLETED, self._check)

    def _name(self, engine: Engine) -> str:
        return self.metric_name or engine.state.key_metric_name

    def _score(self, engine: Engine) -> float:
        return float(engine.state.metrics[self._name(engine)])

    def _check(self, engine: Engine) -> None:
        epoch = self._trainer.state.epoch
        if epoch < self.min_epoch:
            return
        self._stopping(engine)
        if self._stopping.counter == 0:  # the first counted validation, or an improvement
            self.best_epoch = epoch
        if self._trainer.should_terminate and self.stopped_epoch is None:
            self.stopped_epoch = epoch
            name = self._name(engine)
            logger.info(
                f"early stopping at epoch {epoch}: validation {name} has not improved for {self._stopping.counter} "
                f"validations (patience {self.patience}); best {name} {self._stopping.best_score:.4f} at epoch "
                f"{self.best_epoch}"
            )
