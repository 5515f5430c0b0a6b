# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Ignite handlers that log into the MLflow run ``--tracking mlflow`` attaches to an engine.

- :class:`MLflowRunUser`: base of the handlers that log into that run, and :func:`share_mlflow_run`, which hands
  an engine's ``MLFlowHandler`` to them.
- :class:`MLflowRunExtras`: record the run's parameters, process and files in the same MLflow run (a resumed run:
  in the interrupted one), close runs left ``RUNNING`` by killed processes, and mark the run failed when training
  raises.
- :class:`ExecutedConfigRecorder`: write the run's executed config into the run's own folder and log it into the
  run (instead of MONAI's ``save_execute_config`` file, which two runs started in the same second share).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from bundle.result_writers import to_python

__all__ = ["MLflowRunUser", "MLflowRunExtras", "ExecutedConfigRecorder", "share_mlflow_run"]

logger = logging.getLogger(__name__)


class MLflowRunUser:
    """Base of the handlers that log into the MLflow run of MONAI's ``MLFlowHandler`` (``--tracking mlflow``).

    How such a handler finds the run, through public interfaces only: ``--tracking mlflow`` (MONAI's
    ``ConfigWorkflow.patch_bundle_tracking``) appends an ``MLFlowHandler`` config, without an id, to
    ``train#handlers`` and ``validate#handlers``. An ignite engine does not list its handlers publicly, and
    the MLflow run is not the active run of MLflow's fluent API (``MLFlowHandler`` opens it through its
    own ``MlflowClient``, ``mlflow.active_run()`` is None), so the configs pass each engine's handler list
    through :func:`share_mlflow_run`, which sets :attr:`mlflow_handlers` of every :class:`MLflowRunUser`
    in the list to the ``MLFlowHandler`` objects of the same list::

        "train_handlers": "$bundle.mlflow_handlers.share_mlflow_run(@train#handlers)"

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


def share_mlflow_run(handlers: Sequence[Any] | None) -> list[Any]:
    """Give the ``MLFlowHandler`` objects among an engine's ``handlers`` to the :class:`MLflowRunUser` among them.

    Pass an engine's handler list through it in the config (``"train_handlers":
    "$bundle.mlflow_handlers.share_mlflow_run(@train#handlers)"``); see :class:`MLflowRunUser` for why.

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
        self.params = {str(k): to_python(v) for k, v in (params or {}).items()}
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


class ExecutedConfigRecorder(MLflowRunUser):
    """Write a tracked run's executed config into the run's own folder and log it into the run's MLflow run.

    The executed config (the config files merged, with the command line's overrides and the ``--tracking mlflow``
    patch) is taken when the configs build the handler (:func:`bundle.executed_config.running_config`). When the
    engine's first epoch starts and the engine has an open MLflow run (an ``MLFlowHandler`` handed over by
    :func:`share_mlflow_run`, see :class:`MLflowRunUser`), the config is written to ``path`` and logged as an
    artifact of that run. Without tracking nothing is written, as with MONAI's own copy, which the configs turn off
    (``save_execute_config: false``, see :mod:`bundle.executed_config`): MONAI names its file by the second, so two
    runs started in the same second shared it; ``path`` is in the run's own folder and carries the run's stamp
    (``<run_dir>/config_<run_stamp>.json`` in training; evaluation and inference: beside their outputs).

    Args:
        path: the file to write.
        config: the config to record; None: the config of the parser building this handler.
    """

    def __init__(self, path: str | os.PathLike, config: Mapping[str, Any] | None = None) -> None:
        from bundle.executed_config import running_config

        self.path = Path(path)
        self.config = running_config() if config is None else dict(config)
        self._recorded = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._record)

    def _record(self, engine: Engine) -> None:
        handlers = self.open_mlflow_handlers()
        if self._recorded or not handlers:
            return
        from bundle.executed_config import write_config

        self._recorded = True
        write_config(self.config, self.path)
        for handler in handlers:
            handler.client.log_artifact(handler.cur_run.info.run_id, str(self.path))
        logger.info(f"executed config written to {self.path} and logged into the MLflow run")
