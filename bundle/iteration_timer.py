# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The wall time of each trainer iteration and model step, without data loading (the training cost the
method comparison reports)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ignite.engine import Engine, Events

__all__ = ["IterationTimer"]


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
