# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.single_class_monitor.SingleClassMonitor`` on hand-made engine outputs: a warning and MLflow metrics when
every case is predicted as one class, silence otherwise; in two processes the classes of both ranks decide."""

from __future__ import annotations

import json
import logging
import os
import socket

import pytest
import torch
from ignite.engine import Engine

from bundle.mlflow_handlers import share_mlflow_run
from bundle.single_class_monitor import SingleClassMonitor

COLLAPSED = "the model answers one class for everything (collapsed)"


def _batches(*classes_per_batch):
    """Decollated evaluator outputs: one list of ``{"pred": probabilities}`` per iteration."""
    return [[{"pred": torch.nn.functional.one_hot(torch.tensor(c), 3).float() * 0.5 + 0.2} for c in batch]
            for batch in classes_per_batch]


def _run(monitor, batches, max_epochs=1):
    engine = Engine(lambda e, b: b)
    monitor.attach(engine)
    engine.run(batches, max_epochs=max_epochs)
    return engine


@pytest.mark.parametrize("batches, distinct", [(_batches([0, 1], [0, 0]), 2), (_batches([2], [0], [1]), 3)])
def test_mixed_predictions_raise_no_warning(caplog, batches, distinct):
    monitor = SingleClassMonitor(class_names=["a", "b", "c"])
    with caplog.at_level(logging.WARNING, logger="bundle.single_class_monitor"):
        _run(monitor, batches)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert monitor.distinct_classes == distinct and len(monitor.predicted) == 4 - (distinct == 3)


def test_one_class_for_every_case_is_a_warning_each_epoch(caplog):
    monitor = SingleClassMonitor(class_names=["normal", "cyst", "other"])
    with caplog.at_level(logging.WARNING, logger="bundle.single_class_monitor"):
        _run(monitor, _batches([0, 0], [0]), max_epochs=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"validation epoch {epoch}: all 3 validation cases predicted 'normal' (class 0): {COLLAPSED}; "
        "AUROC may still rank them"
        for epoch in (1, 2)
    ]
    assert monitor.distinct_classes == 1 and monitor.predicted == [0, 0, 0]  # reset every epoch


def test_one_case_is_not_a_collapse_and_names_default_to_indices(caplog):
    with caplog.at_level(logging.WARNING, logger="bundle.single_class_monitor"):
        _run(SingleClassMonitor(), _batches([1]))
        _run(SingleClassMonitor(name="test"), _batches([2], [2]))
    assert [r.getMessage() for r in caplog.records] == [
        f"test epoch 1: all 2 test cases predicted '2' (class 2): {COLLAPSED}; AUROC may still rank them"
    ]


def test_outputs_must_be_decollated():
    engine = Engine(lambda e, b: {"pred": torch.rand(2, 3)})
    SingleClassMonitor().attach(engine)
    with pytest.raises(TypeError, match="needs decollated outputs"):
        engine.run([1], max_epochs=1)


def test_single_class_and_distinct_classes_are_mlflow_metrics(tmp_path):
    from mlflow import MlflowClient
    from monai.handlers import MLFlowHandler
    from monai.utils import path_to_sqlite_uri

    uri = path_to_sqlite_uri(str(tmp_path / "mlruns.db"))
    engine = Engine(lambda e, b: b)
    tracker = MLFlowHandler(tracking_uri=uri, experiment_name="exp", run_name="val", iteration_log=False,
                            epoch_log=False, close_on_complete=True)
    for handler in share_mlflow_run([SingleClassMonitor(), tracker]):
        handler.attach(engine)
    engine.run(_batches([1, 1], [1], [1, 0], [1]), max_epochs=2, epoch_length=2)  # epoch 1: all class 1; 2: mixed
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("exp").experiment_id])[0]
    history = {name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
               for name in ("val_single_class", "val_distinct_classes")}
    assert sorted(history["val_single_class"]) == [(1, 1.0), (2, 0.0)]
    assert sorted(history["val_distinct_classes"]) == [(1, 1.0), (2, 2.0)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, world_size: int, port: int, shards: list, out_dir: str) -> None:
    """One rank: evaluate its shard of cases, then write what it warned and decided."""
    import bundle.distributed as distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    distributed.init_process_group("gloo")
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("bundle.single_class_monitor").addHandler(handler)
    try:
        results = []
        for shard in shards:  # one evaluator run per scenario, every rank in step
            monitor = SingleClassMonitor(class_names=["normal", "cyst", "other"])
            _run(monitor, _batches(*shard[rank]))
            results.append({"distinct": monitor.distinct_classes, "warnings": list(records)})
            records.clear()
    finally:
        distributed.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)


# slow (default suite under 15 min): two gloo processes
@pytest.mark.slow
def test_two_ranks_decide_on_the_classes_of_both_shards(tmp_path):
    shards = [
        [[[0, 0]], [[1]]],  # each rank sees one class, together two: no warning
        [[[1], [1]], [[1]]],  # all cyst on both ranks: one warning, on rank 0
    ]
    torch.multiprocessing.spawn(_rank_worker, args=(2, _free_port(), shards, str(tmp_path)), nprocs=2, join=True)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0[0] == {"distinct": 2, "warnings": []}
    assert rank0[1] == {
        "distinct": 1,
        "warnings": [f"validation epoch 1: all 3 validation cases predicted 'cyst' (class 1): {COLLAPSED}; "
                     "AUROC may still rank them"],
    }
    assert rank1 == [{"distinct": None, "warnings": []}] * 2  # rank 1 gathers, rank 0 decides
