# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The worker of one comparison run, in a process of its own: train, evaluate, log to MLflow, record.

Started by :func:`bundle.comparison.runner.launch_worker` as::

    python -m bundle.comparison.worker <run-folder>/run_spec.json

It trains with the run's train configs through ``monai.bundle.ConfigWorkflow`` tracked in MLflow,
measuring the cost of training (:class:`bundle.iteration_timer.IterationTimer`, peak memory increase,
parameters), evaluates the best checkpoint with the eval configs, logs the test metrics and the costs
into the training's MLflow run and writes ``result.json`` last. Besides the metrics and costs, the result
holds what the committed record of the run needs (:mod:`bundle.comparison.records`): the per-epoch curves
of the training (:func:`epoch_curves`, from the MLflow metric history), the test probability of every case
(:func:`case_predictions`, from the evaluation's ``predictions.json``), the decision threshold of the evaluation
(``metrics.json``), the machine load during training and evaluation (:class:`bundle.reports.LoadSampler`) and the code
commit (:func:`bundle.reports.code_state`). Lines starting with :data:`PHASE_MARK` announce a phase to the comparing
process. Importing this module loads neither torch nor MONAI.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.comparison.settings import RESULT_FILE
from bundle.reports import (
    atomic_write,
    LoadSampler,
    code_state,
    display_path,
    machine_info,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
)
from bundle.reports import versions as installed_versions

__all__ = [
    "MACHINE_FIELDS",
    "PHASE_MARK",
    "case_predictions",
    "epoch_curves",
    "evaluate_run",
    "log_to_mlflow",
    "main",
    "retire_incomplete_runs",
    "train_run",
    "training_curves",
    "with_tracking_uri",
    "worker_main",
]

#: a worker line starting with this announces a phase; the comparing process shows it as progress
PHASE_MARK = "@@compare_methods phase: "
#: what ``result.json`` records of :func:`bundle.reports.machine_info`
MACHINE_FIELDS = ("cpu", "logical_cores", "usable_cores", "platform", "system")


def _phase(name: str) -> None:
    print(PHASE_MARK + name, flush=True)


def _short(value: float) -> float:
    """``value`` rounded to 6 significant digits (compact records)."""
    return float(f"{value:.6g}") if math.isfinite(value) else value


def epoch_curves(
    histories: Mapping[str, Sequence[tuple[int, float]]], iterations_per_epoch: int, epochs: int
) -> dict[str, list[Any]]:
    """Per-epoch curves of a training run's MLflow metric histories.

    ``train_loss`` (logged per iteration, step = iteration 1, 2, ...) becomes the mean of each epoch;
    ``lr_group_<i>`` (per iteration) the value at the epoch's last iteration, named ``lr`` for group 0; every
    other metric is logged per epoch (step = epoch) by validation and is named ``val_<name>`` unless it starts
    with ``val_``. Epochs without a value hold None; a curve without any value is left out.

    Args:
        histories: metric name -> ``(step, value)`` pairs.
        iterations_per_epoch: training iterations per epoch.
        epochs: epochs completed.

    Returns:
        ``{"epoch": [1, ..., epochs], "train_loss": [...], "lr": [...], "val_auroc": [...], ...}``, lists of
        equal length, values rounded to 6 significant digits.
    """
    epoch_of = (lambda step: (int(step) - 1) // iterations_per_epoch + 1) if iterations_per_epoch > 0 else None
    curves: dict[str, list[Any]] = {"epoch": list(range(1, epochs + 1))}
    for name in sorted(histories):
        per_epoch: dict[int, list[float]] = {}
        iteration_metric = name == "train_loss" or name.startswith("lr_group_")
        if iteration_metric and epoch_of is None:
            continue
        for step, value in sorted(histories[name]):
            epoch = epoch_of(step) if iteration_metric else int(step)
            per_epoch.setdefault(epoch, []).append(float(value))
        if name == "train_loss":
            key, pick = name, statistics.fmean
        elif iteration_metric:
            key, pick = ("lr" if name == "lr_group_0" else name), (lambda values: values[-1])
        else:
            key, pick = (name if name.startswith("val_") else f"val_{name}"), (lambda values: values[-1])
        values = [_short(pick(per_epoch[e])) if e in per_epoch else None for e in curves["epoch"]]
        if any(v is not None for v in values):
            curves[key] = values
    return curves


def training_curves(run: Mapping[str, Any], iterations: int, epochs: int) -> dict[str, list[Any]]:
    """:func:`epoch_curves` of the run's MLflow training run (read before the test metrics are logged into it)."""
    client = _mlflow_client(run)
    runs = _runs_named(client, run["experiment"], run["run_name"])
    if not runs:
        raise RuntimeError(f"no MLflow run {run['run_name']!r} in experiment {run['experiment']!r}")
    run_id = runs[0].info.run_id
    histories = {name: [(m.step, m.value) for m in client.get_metric_history(run_id, name)]
                 for name in client.get_run(run_id).data.metrics}
    return epoch_curves(histories, iterations // epochs if epochs else 0, epochs)


def case_predictions(predictions_path: str | os.PathLike) -> list[list[Any]] | None:
    """Per test case ``[case_id, label, probability of class 1]`` (two classes) or ``[case_id, label,
    [probabilities]]``, from a :class:`bundle.result_writers.PredictionsWriter` JSON file; case_id is the file name
    without folders. None when the file is absent."""
    path = Path(predictions_path)
    if not path.is_file():
        return None
    cases = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        probs = [float(v) for k, v in row.items() if k.startswith("prob_")]
        case_id = str(row.get("case", "")).replace("\\", "/").rsplit("/", 1)[-1]
        cases.append([case_id, row.get("label"), probs[1] if len(probs) == 2 else probs])
    return cases


def _config_workflow(run: Mapping[str, Any], configs: str, workflow_type: str, tracking: str | None) -> Any:
    """An initialized ``ConfigWorkflow`` of ``run[configs]`` with the run's overrides; checks its properties."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=run[configs],
        meta_file=run["meta_file"],
        logging_file=run["logging_file"],
        workflow_type=workflow_type,
        tracking=tracking,
        **run["overrides"],
    )
    workflow.initialize()
    missing = workflow.check_properties()
    if missing:
        raise RuntimeError(f"the {workflow_type} configs {run[configs]} lack the bundle properties {missing}")
    return workflow


def with_tracking_uri(run: Mapping[str, Any]) -> dict[str, Any]:
    """``run`` with the override ``tracking_uri``: the SQLite store ``run["tracking_db"]`` as a URI."""
    from monai.utils import path_to_sqlite_uri

    return {**run, "overrides": {**run["overrides"], "tracking_uri": path_to_sqlite_uri(run["tracking_db"])}}


def _mlflow_client(run: Mapping[str, Any]) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=run["overrides"]["tracking_uri"])


def _runs_named(client: Any, experiment_name: str, run_name: str) -> list[Any]:
    """Active MLflow runs of ``experiment_name`` called ``run_name``, newest first."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    name = run_name.replace("'", "\\'")
    return list(client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{name}'",
        order_by=["attributes.start_time DESC"],
    ))


def retire_incomplete_runs(run: Mapping[str, Any]) -> None:
    """Rename MLflow runs of earlier, unfinished attempts of this run (still ``RUNNING`` ones become ``FAILED``).

    MONAI's ``MLFlowHandler`` continues the latest run of the same name that is not ``FINISHED``; renamed,
    an earlier attempt keeps its own records and the new attempt gets a run of its own.
    """
    client = _mlflow_client(run)
    for old in _runs_named(client, run["experiment"], run["run_name"]):
        new_name = f"{run['run_name']}_incomplete_{old.info.run_id[:8]}"
        status = "FAILED" if old.info.status == "RUNNING" else None
        client.update_run(old.info.run_id, status=status, name=new_name)
        print(f"MLflow run {old.info.run_id} of an earlier attempt renamed to {new_name}", flush=True)


def train_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """Train one run, tracked in MLflow; returns its cost numbers, epochs and best validation metric."""
    import torch

    from bundle.iteration_timer import IterationTimer

    workflow = _config_workflow(run, "train_configs", "train", "mlflow")
    trainer = workflow.parser.get_parsed_content("train#trainer")  # builds and caches the datasets
    network = workflow.parser.get_parsed_content("network")
    device = torch.device(workflow.parser.get_parsed_content("device"))
    cuda = device.type == "cuda"
    timer = IterationTimer((lambda: torch.cuda.synchronize(device)) if cuda else None)
    timer.attach(trainer)
    gc.collect()
    baseline = rss_bytes()
    peak_reset = reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        workflow.run()
    finally:
        workflow.finalize()
    wall_s = time.perf_counter() - start
    peak_increase = peak_rss_bytes() - baseline
    if not timer.iteration_s:
        raise RuntimeError("training ran no iteration")
    return {
        "cost": {
            "num_parameters": int(sum(p.numel() for p in network.parameters())),
            "train_iteration_s_median": statistics.median(timer.iteration_s),
            "train_model_step_s_median": statistics.median(timer.model_step_s),
            "timed_iterations": len(timer.iteration_s),
            "train_wall_s": wall_s,
            "peak_rss_increase_mib": peak_increase / 2**20,
            "rss_baseline_mib": baseline / 2**20,
            "peak_rss_since": "baseline" if peak_reset else "process start",
            "peak_cuda_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        },
        "epochs": int(trainer.state.max_epochs),
        "epochs_completed": int(trainer.state.epoch),
        "iterations": int(trainer.state.iteration),
        "validation": _best_validation(workflow),
        "device": _device_text(device),
    }


def _best_validation(workflow: Any) -> dict[str, Any] | None:
    """Key metric, best value and its epoch of the in-training validation; None without validation."""
    if "validate#evaluator" not in workflow.parser:
        return None
    state = workflow.parser.get_parsed_content("validate#evaluator").state
    if getattr(state, "best_metric_epoch", -1) < 0:
        return None
    best, epoch = float(state.best_metric), int(state.best_metric_epoch)
    return {"metric": state.key_metric_name, "best": best, "best_epoch": epoch}


def _device_text(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def evaluate_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate the run's best checkpoint (the test split unless overridden).

    Returns:
        ``metrics``: the numeric metrics of ``metrics.json`` (without the threshold); ``split``: the split
        evaluated; ``decision_threshold``: ``metrics.json``'s (None: argmax); ``wall_s``: the wall time in seconds.
    """
    metrics_path = Path(run["run_folder"]) / "metrics.json"
    metrics_path.unlink(missing_ok=True)
    start = time.perf_counter()
    workflow = _config_workflow(run, "eval_configs", "eval", None)
    try:
        workflow.run()
    finally:
        workflow.finalize()
    wall_s = time.perf_counter() - start
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    numeric = {k: v for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "decision_threshold"}
    return {"metrics": numeric, "split": str(metrics.get("split")),
            "decision_threshold": metrics.get("decision_threshold"), "wall_s": wall_s}


def log_to_mlflow(run: Mapping[str, Any], test: Mapping[str, float], cost: Mapping[str, Any]) -> str:
    """Log the test metrics (``test_<name>``) and the cost numbers into the run's MLflow training run."""
    from mlflow.entities import Metric, RunTag

    client = _mlflow_client(run)
    runs = _runs_named(client, run["experiment"], run["run_name"])
    if not runs:
        raise RuntimeError(f"no MLflow run {run['run_name']!r} in experiment {run['experiment']!r}")
    run_id = runs[0].info.run_id
    now = int(time.time() * 1000)
    values = {**{f"test_{k}": v for k, v in test.items()}, **cost}
    metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if isinstance(v, (int, float))]
    tags = [RunTag("compare_methods.spec", run["spec"]), RunTag("compare_methods.dataset", run["dataset"])]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    return run_id


def worker_main(spec_path: str | os.PathLike) -> int:
    """Train, evaluate and record one run described by ``spec_path`` (a ``run_spec.json``); 0 on success.

    ``result.json`` is written last, atomically: a run that fails anywhere leaves none.
    """
    run = with_tracking_uri(json.loads(Path(spec_path).read_text(encoding="utf-8")))
    started = datetime.datetime.now().astimezone()
    code = code_state()
    load = LoadSampler().start()
    _phase("training")
    retire_incomplete_runs(run)
    trained = train_run(run)
    curves = training_curves(run, trained["iterations"], trained["epochs_completed"])
    _phase("evaluating")
    evaluated = evaluate_run(run)
    test = evaluated["metrics"]
    cost = {**trained["cost"], "eval_wall_s": evaluated["wall_s"]}
    load_summary = load.stop()
    run_id = log_to_mlflow(run, test, cost)
    machine = machine_info()
    result = {
        "dataset": run["dataset"],
        "method": run["method"],
        "spec": run["spec"],
        "slug": run["slug"],
        "display_name": run["display_name"],
        "method_overrides": run["method_overrides"],
        "seed": run["seed"],
        "test": test,
        "eval_split": evaluated["split"],
        "decision_threshold": evaluated["decision_threshold"],
        "test_cases": case_predictions(Path(run["run_folder"]) / "predictions.json"),
        "validation": trained["validation"],
        "curves": curves,
        "cost": cost,
        "load": load_summary,
        "epochs": trained["epochs"],
        "epochs_completed": trained["epochs_completed"],
        "iterations": trained["iterations"],
        "overrides": run["overrides"],
        "train_configs": [display_path(Path(c)) for c in run["train_configs"]],
        "eval_configs": [display_path(Path(c)) for c in run["eval_configs"]],
        "settings": run["settings"],
        "command": run["command"],
        "code": code,
        "mlflow": {"tracking_uri": run["overrides"]["tracking_uri"], "experiment": run["experiment"],
                   "run_name": run["run_name"], "run_id": run_id},
        "started": started.isoformat(timespec="seconds"),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": installed_versions(("torch", "monai")),
        "device": trained["device"],
        "machine": {k: machine[k] for k in MACHINE_FIELDS},
    }
    atomic_write(Path(run["run_folder"]) / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bundle.comparison.worker RUN_SPEC_JSON``: run :func:`worker_main`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m bundle.comparison.worker RUN_SPEC_JSON")
    return worker_main(argv[0])


if __name__ == "__main__":
    raise SystemExit(main())
