# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The handler that offers a completed training run's kept model for promotion to the bundle's ``models/``.

:class:`PromoteCheckpoint` records the validation of the kept model while training runs and, when the run
completes, hands it to :func:`bundle.model_selection.promote_model` (which decides, replaces the model atomically
under a lock and writes its provenance). A failed run never touches the promoted model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from bundle.mlflow_handlers import MLflowRunUser
from bundle.result_writers import to_python

__all__ = ["PromoteCheckpoint"]


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
        return {"metric": {"name": name, "value": None if value is None else float(to_python(value))},
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
