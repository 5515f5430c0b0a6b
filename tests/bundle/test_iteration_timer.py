# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.iteration_timer.IterationTimer``: one iteration time and one model-step time per trainer iteration."""

from __future__ import annotations

import time

from bundle.iteration_timer import IterationTimer


def test_iteration_timer_times_every_iteration():
    from ignite.engine import Engine
    from monai.engines.utils import IterationEvents

    def step(engine, batch):
        time.sleep(0.01)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        time.sleep(0.01)

    engine = Engine(step)
    engine.register_events(*IterationEvents)
    synchronized = []
    timer = IterationTimer(lambda: synchronized.append(1))
    timer.attach(engine)
    engine.run([0, 1, 2], max_epochs=2)
    assert len(timer.iteration_s) == len(timer.model_step_s) == 6
    assert all(0.01 <= m < i for m, i in zip(timer.model_step_s, timer.iteration_s))
    assert len(synchronized) == 18  # every clock reading: start, model step, end of each iteration
