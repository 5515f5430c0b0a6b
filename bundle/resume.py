# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Resuming a training run as a continuation of the interrupted one.

Every resumable checkpoint of ``configs/train.json`` (``runs/<run>/checkpoint_epoch=<n>.pt`` and
``checkpoint_final.pt``) holds, besides ``model``, ``optimizer``, ``lr_scheduler`` and ``trainer``, the entry
``"resume"``: the :meth:`ResumeState.state_dict` of the run when the checkpoint was written:

- the run: its name (a resumed run goes on in the same run folder ``runs/<run>`` and MLflow run) and MLflow
  run id (``--tracking mlflow``);
- the best so far: the ``state_dict`` of every handler of the trainer and the validation evaluator that has
  one (``BestModelSaver``'s record of the best score, ``PromoteCheckpoint``'s kept model and its validation,
  ``ThresholdSelector``'s last written decision, ``ValidationEarlyStopping``'s count and best score) and the
  evaluator's ``best_metric`` / ``best_metric_epoch``; the AMP gradient scaler when there is one;
- every random state (:func:`rng_state`): Python's ``random``, NumPy's global generator, torch's CPU generator
  and, when CUDA is initialised, each GPU's; the training data loader's and its sampler's ``torch.Generator``
  when they have one (without one the shuffling order comes from torch's generator); and the NumPy
  ``RandomState`` of every random transform of the training dataset (MONAI's ``DataLoader`` seeds them when it
  is built; with ``num_workers`` 0 they run in the main process).

With ``--resume_from <checkpoint>`` the config reads that entry before anything is built
(:func:`read_resume_state`; ``run_name`` is then the interrupted run's, :func:`resumed_run_name`), and the
:class:`ResumeState` of the new run restores it when the trainer starts, after the checkpoint handlers loaded
the model, optimizer, schedule and trainer state. Training then goes on as if it had not stopped: a CPU run
resumed from epoch ``n`` gives the same per-epoch metrics and final weights as the uninterrupted run (a test
kills a run with SIGKILL and compares). Iterations of an epoch that was interrupted are run again, from the
checkpoint of the epoch before.

Multi-process runs: the checkpoint is written by rank 0, so it holds rank 0's random states; rank 0 restores
them, the other ranks keep the random state their seed gives them (the run continues, but not bit for bit).

A checkpoint written before this entry existed resumes as before: model, optimizer, schedule and trainer state
in a new run (a warning says what starts afresh).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

__all__ = [
    "RESUME_KEY",
    "ResumeState",
    "random_transforms",
    "read_resume_state",
    "resumed_mlflow_run_id",
    "resumed_run_name",
    "rng_state",
    "set_rng_state",
]

logger = logging.getLogger(__name__)

#: the entry of a resumable checkpoint that holds :meth:`ResumeState.state_dict`
RESUME_KEY = "resume"
#: version of the entry's layout
_FORMAT = 1


def _plain(value: Any) -> Any:
    """``value`` with NumPy numbers and arrays as Python numbers and torch tensors (loadable with
    ``torch.load(weights_only=True)``), containers converted recursively."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_state(state: tuple) -> dict[str, Any]:
    """NumPy's ``RandomState.get_state()`` tuple as a dict of torch-loadable values."""
    name, keys, pos, has_gauss, cached_gaussian = state
    return {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _numpy_tuple(state: Mapping[str, Any]) -> tuple:
    """The inverse of :func:`_numpy_state`: the tuple ``RandomState.set_state`` takes."""
    keys = np.asarray(state["keys"].numpy() if isinstance(state["keys"], torch.Tensor) else state["keys"])
    return (state["name"], keys.astype(np.uint32), int(state["pos"]), int(state["has_gauss"]),
            float(state["cached_gaussian"]))


def random_transforms(root: Any) -> list[Any]:
    """The random transforms (MONAI ``Randomizable`` objects) reachable from ``root``, in a fixed order.

    Walks ``root`` depth first: lists and tuples, and the attributes of every MONAI transform (a ``Compose``'s
    ``transforms``, a dictionary transform's inner array transform). Each object is listed once.

    Args:
        root: a transform, a list of transforms, or a dataset with a ``transform`` attribute.
    """
    from monai.transforms import Randomizable, Transform

    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        if isinstance(obj, (list, tuple)):
            seen.add(id(obj))
            for item in obj:
                visit(item)
            return
        if not isinstance(obj, (Randomizable, Transform)):
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found.append(obj)
        for key, value in vars(obj).items():
            if not key.startswith("__"):
                visit(value)

    dataset_transform = getattr(root, "transform", None)
    visit(dataset_transform if dataset_transform is not None else root)
    return found


def _generators(dataloader: Any) -> Iterator[tuple[str, torch.Generator]]:
    """The ``torch.Generator`` objects of a data loader and its sampler (none when they use torch's own)."""
    if dataloader is None:
        return
    seen: list[torch.Generator] = []
    for name, owner in (("dataloader", dataloader), ("sampler", getattr(dataloader, "sampler", None))):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and not any(generator is g for g in seen):
            seen.append(generator)  # a DataLoader hands its generator to its sampler: the same one
            yield name, generator


def rng_state(dataloader: Any = None) -> dict[str, Any]:
    """Every random state a training run draws from (see the module docstring).

    Args:
        dataloader: the training data loader; its generators and its dataset's random transforms are included.

    Returns:
        ``{"python", "numpy", "torch", "cuda", "generators", "transforms"}``; ``cuda`` is a list of ByteTensors
        (empty when CUDA is not initialised), ``transforms`` the NumPy states of :func:`random_transforms` in
        order.
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    dataset = getattr(dataloader, "dataset", None)
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(np.random.get_state()),
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "generators": {name: generator.get_state() for name, generator in _generators(dataloader)},
        "transforms": [_numpy_state(t.R.get_state()) for t in random_transforms(dataset)] if dataset else [],
    }


def set_rng_state(state: Mapping[str, Any], dataloader: Any = None) -> None:
    """Restore what :func:`rng_state` returned.

    Args:
        state: the saved random states.
        dataloader: the training data loader of the resumed run (built from the same config).

    Raises:
        ValueError: when the data loader's generators or random transforms are not those of the saved run (the
            message says which differ).
    """
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    np.random.set_state(_numpy_tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda") or [])
    if cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            available = torch.cuda.device_count() if torch.cuda.is_available() else 0
            logger.warning(f"resume: the checkpoint has the random states of {len(cuda)} GPU(s), this machine has "
                           f"{available}: GPU random states not restored")
    generators = dict(_generators(dataloader))
    saved = dict(state.get("generators") or {})
    if set(saved) != set(generators):
        raise ValueError(f"resume: the checkpoint has random generators {sorted(saved)} of the data loader, the "
                         f"resumed run has {sorted(generators)}: resume with the configuration of the interrupted run")
    for name, generator in generators.items():
        generator.set_state(saved[name])
    dataset = getattr(dataloader, "dataset", None)
    transforms = random_transforms(dataset) if dataset is not None else []
    saved_transforms = list(state.get("transforms") or [])
    if len(saved_transforms) != len(transforms):
        raise ValueError(f"resume: the checkpoint has the random states of {len(saved_transforms)} random "
                         f"transform(s), the resumed run's training transforms have {len(transforms)}: resume "
                         "with the configuration of the interrupted run")
    for transform, transform_state in zip(transforms, saved_transforms):
        transform.R.set_state(_numpy_tuple(transform_state))


def read_resume_state(resume_from: str | os.PathLike | None) -> dict | None:
    """The ``"resume"`` entry of the checkpoint ``resume_from`` (``@resume_state`` of ``configs/train.json``).

    Read before anything is built, so a file that cannot be resumed from is named at once.

    Args:
        resume_from: the checkpoint (``--resume_from``); None: not resuming.

    Returns:
        the entry (see :meth:`ResumeState.state_dict`); None when not resuming or when the checkpoint was written
        before the entry existed (a warning says what starts afresh).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable checkpoint, or not a resumable one (only weights: ``models/model.pt``,
            ``runs/<run>/model.pt``).
    """
    if resume_from is None:
        return None
    path = Path(resume_from)
    if not path.is_file():
        raise FileNotFoundError(f"resume_from {path}: no such checkpoint file (give runs/<run>/checkpoint_epoch=<n>.pt "
                                "or runs/<run>/checkpoint_final.pt)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"resume_from {path}: not a readable checkpoint ({type(err).__name__}: {reason})") from err
    if not isinstance(checkpoint, Mapping) or "trainer" not in checkpoint:
        raise ValueError(f"resume_from {path}: not a resumable checkpoint (no trainer state; model.pt files hold only "
                         "weights): give runs/<run>/checkpoint_epoch=<n>.pt or runs/<run>/checkpoint_final.pt")
    state = checkpoint.get(RESUME_KEY)
    if not isinstance(state, Mapping):
        logger.warning(
            f"resume_from {path}: the checkpoint has no resume state (written by an earlier version): model, "
            "optimizer, schedule and trainer state are restored, but the run goes on as a new run (new run folder "
            "and MLflow run) and the best model, early stopping and random state start afresh"
        )
        return None
    return dict(state)


def resumed_run_name(state: Mapping[str, Any] | None) -> str | None:
    """The name of the run a resume state belongs to (``run_name`` of a resumed run); None: not resuming."""
    return None if not state else state.get("run_name")


def resumed_mlflow_run_id(state: Mapping[str, Any] | None) -> str | None:
    """The MLflow run id a resume state records; None: not resuming, or the run was not tracked."""
    return None if not state else state.get("mlflow_run_id")


def _stateful(handlers: Sequence[Any]) -> dict[str, Any]:
    """The handlers with ``state_dict`` and ``load_state_dict``, by class name (``Name#2`` for a second one)."""
    named: dict[str, Any] = {}
    for handler in handlers:
        if callable(getattr(handler, "state_dict", None)) and callable(getattr(handler, "load_state_dict", None)):
            name, count = type(handler).__name__, 1
            while (f"{name}#{count}" if count > 1 else name) in named:
                count += 1
            named[f"{name}#{count}" if count > 1 else name] = handler
    return named


class ResumeState:
    """The run state a resumable checkpoint carries besides model, optimizer, schedule and trainer.

    ``configs/train.json`` lists it in ``train#checkpoint_handlers`` (attached to the trainer) and saves it as
    the ``"resume"`` entry of the ``CheckpointSaver``'s ``save_dict``. See the module docstring for what it
    holds. When the run resumes (``state`` given) it restores ``state`` on the trainer's ``STARTED`` event,
    after the model, optimizer, schedule and trainer state were loaded and everything that draws random numbers
    while being built was built.

    Args:
        run_name: the run's name (``@run_name``).
        handlers: the handlers of the trainer and of the validation evaluator (``$@train#handlers +
            @validate#handlers``); those with ``state_dict`` / ``load_state_dict`` are saved and restored, the
            ``MLFlowHandler`` objects give the MLflow run id.
        evaluator: the validation evaluator (its best metric and epoch).
        state: the resume state to restore (``@resume_state``, :func:`read_resume_state`); None: a new run.
        source: the checkpoint ``state`` came from (for the log).
    """

    def __init__(
        self,
        run_name: str | None = None,
        handlers: Sequence[Any] = (),
        evaluator: Engine | None = None,
        state: Mapping[str, Any] | None = None,
        source: str | os.PathLike | None = None,
    ) -> None:
        self.run_name = run_name
        self.handlers = [h for h in handlers if h is not None]
        self.evaluator = evaluator
        self.state = None if state is None else dict(state)
        self.source = source
        self._trainer: Engine | None = None

    def attach(self, trainer: Engine) -> None:
        self._trainer = trainer
        if self.state is not None:
            trainer.add_event_handler(Events.STARTED, self._restore)

    def _restore(self, engine: Engine) -> None:
        self.load_state_dict(self.state)
        logger.info(
            f"resumed run {self.run_name} from {self.source} at epoch {engine.state.epoch}: best model, early "
            "stopping and random state restored"
        )

    def _mlflow_run_id(self) -> str | None:
        from monai.handlers import MLFlowHandler

        for handler in self.handlers:
            if isinstance(handler, MLFlowHandler) and handler.cur_run is not None:
                return handler.cur_run.info.run_id
        return None

    def _scaler(self) -> Any:
        return getattr(self._trainer, "scaler", None) if getattr(self._trainer, "amp", False) else None

    def state_dict(self) -> dict[str, Any]:
        """The run state now (called by the ``CheckpointSaver`` when it writes a checkpoint).

        Returns:
            ``{"format", "run_name", "mlflow_run_id", "epoch", "handlers", "evaluator", "scaler", "rng"}``: values
            that ``torch.load(weights_only=True)`` reads.
        """
        evaluator = None
        if self.evaluator is not None:
            evaluator = {key: _plain(getattr(self.evaluator.state, key, None))
                         for key in ("best_metric", "best_metric_epoch")}
        scaler = self._scaler()
        return {
            "format": _FORMAT,
            "run_name": self.run_name,
            "mlflow_run_id": self._mlflow_run_id(),
            "epoch": None if self._trainer is None else int(self._trainer.state.epoch),
            "handlers": {name: _plain(h.state_dict()) for name, h in _stateful(self.handlers).items()},
            "evaluator": evaluator,
            "scaler": None if scaler is None else scaler.state_dict(),
            "rng": rng_state(getattr(self._trainer, "data_loader", None)),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (handlers, evaluator, scaler, and on rank 0 the random states).

        Raises:
            ValueError: a resume state of another format, or random generators and transforms that are not the
                interrupted run's (see :func:`set_rng_state`).
        """
        from bundle.distributed import rank

        if state.get("format") != _FORMAT:
            raise ValueError(f"resume: resume state format {state.get('format')!r} is not {_FORMAT}")
        handlers = _stateful(self.handlers)
        saved = dict(state.get("handlers") or {})
        for name in sorted(set(saved) - set(handlers)):
            logger.warning(f"resume: the checkpoint has the state of handler {name}, which this run does not have")
        for name in sorted(set(handlers) - set(saved)):
            logger.warning(f"resume: handler {name} has no state in the checkpoint: it starts afresh")
        for name, handler in handlers.items():
            if name in saved:
                handler.load_state_dict(saved[name])
        if self.evaluator is not None and state.get("evaluator"):
            for key, value in state["evaluator"].items():
                if value is not None:
                    setattr(self.evaluator.state, key, value)
        scaler = self._scaler()
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if rank() == 0:
            set_rng_state(state["rng"], getattr(self._trainer, "data_loader", None))
        else:
            logger.info("resume: random state of rank 0 not restored on this rank (it keeps its seed's)")
