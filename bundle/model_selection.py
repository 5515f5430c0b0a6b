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
  Ignite fires ``COMPLETED`` after a stop, so the kept model is offered for promotion and ``checkpoint_final.pt``
  written.
- ``promote`` (``"better"``): whether the kept model replaces the bundle's current model ``models/model.pt``
  (:func:`promote_model`, run by ``bundle.promote_checkpoint.PromoteCheckpoint`` when training completes): ``"better"``
  only when its validation metric beats the one recorded for the current model on the same validation data,
  ``"always"``, or ``"never"``. The promoted model's provenance is written beside it
  (``models/model.provenance.json``, :func:`provenance_path`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from monai.handlers import CheckpointSaver

from bundle.reports import atomic_path

__all__ = [
    "KEEP_MODEL",
    "PROMOTE",
    "PROVENANCE_SUFFIX",
    "check_keep_model",
    "check_best_model_min_epoch",
    "check_early_stopping_patience",
    "check_promote",
    "BestModelSaver",
    "FinalModelSaver",
    "ValidationEarlyStopping",
    "model_lock",
    "promote_model",
    "provenance_path",
    "read_provenance",
    "validation_data_hash",
]

logger = logging.getLogger(__name__)

#: values of the ``keep_model`` option
KEEP_MODEL = ("best", "final")
#: values of the ``promote`` option
PROMOTE = ("better", "always", "never")
#: the provenance of ``model.pt`` is ``model`` + this suffix, in the same folder
PROVENANCE_SUFFIX = ".provenance.json"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_choice(key: str, value: Any, allowed: Sequence[str]) -> Any:
    """``value`` if it is one of ``allowed``; else a ValueError naming the config ``key``, the value and the choices."""
    if value not in allowed:
        choices = ", ".join(repr(v) for v in allowed)
        raise ValueError(f"{key} must be one of {choices}, got {value!r}")
    return value


def check_keep_model(keep_model: str) -> str:
    """``keep_model`` if it is one of :data:`KEEP_MODEL`.

    Raises:
        ValueError: any other value (the message names the key, the value and the allowed ones).
    """
    return _check_choice("keep_model", keep_model, KEEP_MODEL)


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


def check_promote(promote: str) -> str:
    """``promote`` if it is one of :data:`PROMOTE`.

    Raises:
        ValueError: any other value (the message names the key, the value and the allowed ones).
    """
    return _check_choice("promote", promote, PROMOTE)


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

    def state_dict(self) -> dict[str, Any]:
        """The best score and file so far (ignite ``Checkpoint``'s record), saved in the resumable checkpoint
        (:class:`bundle.resume.ResumeState`); empty without a key-metric checkpoint."""
        return {} if self._key_metric_checkpoint is None else dict(self._key_metric_checkpoint.state_dict())

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore :meth:`state_dict`: a resumed run replaces the best model only when it beats that score."""
        if state_dict:
            super().load_state_dict(state_dict)


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
    attach it on every rank (the metric is the same on all ranks, so all stop together). Its count and best score
    are in the resumable checkpoint (:meth:`state_dict`, :class:`bundle.resume.ResumeState`): a resumed run goes
    on counting.

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
        self._resumed: dict | None = None

    def attach(self, trainer: Engine) -> None:
        self._trainer = trainer
        self._stopping = EarlyStopping(self.patience, self._score, trainer, min_delta=self.min_delta)
        if self._resumed is not None:
            self._stopping.counter, self._stopping.best_score = self._resumed["counter"], self._resumed["best_score"]
        self.validator.add_event_handler(Events.EPOCH_COMPLETED, self._check)

    def state_dict(self) -> dict[str, Any]:
        """The count of validations without improvement, the best score and its epoch, the epoch it stopped at."""
        if self._stopping is not None:
            counter, best_score = self._stopping.counter, self._stopping.best_score
        else:
            counter, best_score = (self._resumed or {}).get("counter", 0), (self._resumed or {}).get("best_score")
        return {"counter": int(counter), "best_score": None if best_score is None else float(best_score),
                "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore :meth:`state_dict` (before or after :meth:`attach`)."""
        self._resumed = dict(state_dict)
        self.best_epoch, self.stopped_epoch = state_dict.get("best_epoch"), state_dict.get("stopped_epoch")
        if self._stopping is not None:
            self._stopping.counter, self._stopping.best_score = state_dict["counter"], state_dict["best_score"]

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


def provenance_path(ckpt_path: str | os.PathLike) -> Path:
    """The provenance of a checkpoint: ``models/model.pt`` -> ``models/model.provenance.json``."""
    path = Path(ckpt_path)
    return path.with_name((path.stem if path.suffix else path.name) + PROVENANCE_SUFFIX)


def validation_data_hash(datalist: str | os.PathLike, split: str = "validation") -> str | None:
    """SHA-256 of the entries of one split of a datalist, as a run reads them; None when it cannot be read.

    The entries come from :func:`bundle.datalist.load_datalist` (image paths made absolute, labels as integers,
    every other key as written), serialised as JSON with sorted keys. The images are not read: data regenerated
    under the same file names and labels has the same hash.

    Args:
        datalist: path of the datalist JSON file.
        split: the split (the validation split of a training run).
    """
    from bundle.datalist import load_datalist

    try:
        entries = load_datalist(datalist, split, require_labels=False, check_files=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def model_lock(target: str | os.PathLike, timeout: float = 60.0, poll: float = 0.1) -> Iterator[Path]:
    """Hold the promotion lock of ``target`` (an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside it).

    Only one process at a time decides on and replaces a bundle model. The lock is released when the block ends
    or the process dies (the lock file itself stays, empty).

    Args:
        target: the bundle model (``models/model.pt``); its folder is created.
        timeout: seconds to wait for another process's lock.
        poll: seconds between attempts.

    Yields:
        the lock file.

    Raises:
        TimeoutError: when another process held the lock for ``timeout`` seconds (the message names the file).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(f".{target.name}.lock")
    deadline = time.monotonic() + timeout
    with open(lock, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{target} is locked by another process ({lock}) for more than {timeout:g} s: another run "
                        f"is promoting a model there; wait for it to finish and promote again, or train with "
                        f"promote 'never'"
                    ) from None
                time.sleep(poll)
        try:
            yield lock
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_provenance(ckpt_path: str | os.PathLike) -> dict | None:
    """The provenance recorded for the model ``ckpt_path`` (:func:`provenance_path`), when it describes that file.

    Returns:
        the provenance, or None when there is no provenance file, it is not a JSON object, or its ``sha256`` is
        not the checkpoint's (the model was replaced by other means since).
    """
    from bundle.checksums import sha256

    path, ckpt = provenance_path(ckpt_path), Path(ckpt_path)
    if not path.is_file() or not ckpt.is_file():
        return None
    try:
        provenance = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(provenance, dict) or provenance.get("sha256") != sha256(ckpt):
        return None
    return provenance


def _metric_text(record: Mapping[str, Any] | None) -> str:
    """``auroc 0.9125 (epoch 7)`` of a provenance record; ``no validation metric`` without one."""
    metric = (record or {}).get("metric") or {}
    if metric.get("value") is None:
        return "no validation metric"
    epoch = (record or {}).get("epoch")
    return f"{metric.get('name')} {float(metric['value']):.4f}" + (f" (epoch {epoch})" if epoch is not None else "")


def _comparable(new: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """Why the metrics of ``new`` and ``current`` cannot be compared; None when they can."""
    new_metric, old_metric = new.get("metric") or {}, current.get("metric") or {}
    if new_metric.get("name") != old_metric.get("name"):
        return f"the metrics differ ({new_metric.get('name')} vs the current model's {old_metric.get('name')})"
    new_data, old_data = new.get("validation") or {}, current.get("validation") or {}
    if new_data.get("sha256") is None or new_data.get("sha256") != old_data.get("sha256"):
        return (
            f"the validation data differ ({new_data.get('datalist')} split {new_data.get('split')!r}, hash "
            f"{str(new_data.get('sha256'))[:12]} vs the current model's {old_data.get('datalist')} split "
            f"{old_data.get('split')!r}, hash {str(old_data.get('sha256'))[:12]})"
        )
    return None


def _decide(new: Mapping[str, Any], target: Path, promote: str) -> tuple[bool, str, int]:
    """Whether ``new`` replaces the model at ``target``, the reason, and the log level of the reason."""
    if not target.is_file():
        return True, f"no current model at {target}", logging.INFO
    current = read_provenance(target)
    current_text = "the current model's " + (
        f"{_metric_text(current)} (run {current.get('run_name')})" if current else "metric (none recorded)"
    )
    if promote == "always":
        return True, f"promote 'always' (this run's {_metric_text(new)}, {current_text})", logging.INFO
    if current is None:
        return True, (
            f"the current model has no provenance ({provenance_path(target).name} missing or not about this file): "
            f"its metric is unknown, not comparable with this run's {_metric_text(new)}"
        ), logging.WARNING
    if (current.get("metric") or {}).get("value") is None:
        return True, (
            f"the current model has no recorded validation metric (run {current.get('run_name')}): not comparable "
            f"with this run's {_metric_text(new)}"
        ), logging.WARNING
    if (new.get("metric") or {}).get("value") is None:
        return False, (
            f"this run's model has no validation metric to compare with {current_text} (promote 'always' "
            "replaces it)"
        ), logging.WARNING
    why = _comparable(new, current)
    if why is not None:
        return True, f"the metrics are not comparable: {why}", logging.WARNING
    value, best = float(new["metric"]["value"]), float(current["metric"]["value"])
    name = new["metric"]["name"]
    if value > best:
        return True, f"validation {name} {value:.4f} beats {current_text}: {value:.4f} > {best:.4f}", logging.INFO
    return False, (
        f"this run's validation {name} {value:.4f} does not beat {current_text}: {value:.4f} <= {best:.4f} "
        "(promote 'always' replaces it)"
    ), logging.WARNING


def promote_model(
    source: str | os.PathLike,
    target: str | os.PathLike,
    promote: str = "better",
    record: Mapping[str, Any] | None = None,
    lock_timeout: float = 60.0,
) -> dict[str, Any]:
    """Replace the bundle model ``target`` with the run's model ``source`` when ``promote`` says so.

    Under :func:`model_lock`, with ``promote``:

    - ``"better"``: replace it when there is none; when this run's validation metric is greater than the one
      recorded in the current model's provenance (same metric name, same validation data: the
      :func:`validation_data_hash` of the split); with a WARNING that says why, when there is nothing to compare
      with (no provenance for the current file, or one without a metric) or the two cannot be compared (another
      metric, other validation data). Keep it, with a WARNING, when this run's metric is equal or lower, or when
      this run has none and the current model has one;
    - ``"always"``: replace it;
    - ``"never"``: leave it (no lock taken).

    Replacing copies ``source`` to a temporary file beside ``target`` and renames it (``os.replace``), does the
    same with the decision sidecar (:func:`bundle.decision.decision_path`; a sidecar of the old model is removed
    when ``source`` has none), then writes the provenance (:func:`provenance_path`): ``record`` plus the file's
    ``sha256``, ``source``, ``promote``, the ``reason``, the replaced model's summary, the code commit
    (:func:`bundle.reports.code_state`) and the time. The decision and its reason are logged.

    Args:
        source: the run's kept model (``<run_dir>/model.pt``).
        target: the bundle model (``models/model.pt``).
        promote: one of :data:`PROMOTE`.
        record: what is known of the run's model: ``run_name``, ``run_dir``, ``mlflow_run_id``, ``metric``
            (``{"name", "value"}``; value None: not validated), ``epoch``, ``validation`` (``{"datalist",
            "split", "sha256"}``).
        lock_timeout: seconds to wait for another process's promotion (:func:`model_lock`).

    Returns:
        ``{"promoted": bool, "reason": str}`` (``promoted`` False also when ``source`` does not exist).

    Raises:
        ValueError: an unknown ``promote``.
        TimeoutError: the lock was held by another process for ``lock_timeout`` seconds.
    """
    from bundle.decision import decision_path
    from bundle.reports import atomic_write, code_state
    from bundle.checksums import sha256

    promote = check_promote(promote)
    source, target = Path(source), Path(target)
    new = dict(record or {})
    if not source.is_file():
        logger.warning(f"no checkpoint at {source} to promote (no validation ran?)")
        return {"promoted": False, "reason": f"no checkpoint at {source}"}
    if promote == "never":
        reason = f"promote 'never': {target} left as it is; this run's model stays in {source}"
        logger.info(reason)
        return {"promoted": False, "reason": reason}
    with model_lock(target, lock_timeout):
        promoted, reason, level = _decide(new, target, promote)
        if not promoted:
            logger.log(level, f"kept the current model {target}: {reason}; this run's model stays in {source}")
            return {"promoted": False, "reason": reason}
        previous = read_provenance(target)
        if previous is None and target.is_file():
            previous = {"sha256": sha256(target)}
        digest = sha256(source)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        new_decision, old_decision = decision_path(source), decision_path(target)
        if new_decision.is_file():
            with atomic_path(old_decision) as tmp:
                shutil.copyfile(new_decision, tmp)
        elif old_decision.is_file():
            old_decision.unlink()
            logger.info(f"{source} has no decision file: removed the earlier model's {old_decision} (argmax)")
        provenance = {
            "model": target.name,
            "sha256": digest,
            "source": str(source),
            **new,
            "promote": promote,
            "reason": reason,
            "replaced": None if not previous else {
                key: previous.get(key) for key in ("run_name", "sha256", "metric", "epoch", "promoted_at")
            },
            "code": code_state(),
            "promoted_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        atomic_write(provenance_path(target), json.dumps(provenance, indent=2, default=str) + "\n")
    logger.log(level, f"promoted {source} to {target}: {reason}")
    return {"promoted": True, "reason": reason}
