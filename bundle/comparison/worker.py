# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The worker of one comparison run, in a process of its own: train, evaluate, log to MLflow, record.

Started by :func:`bundle.comparison.runner.launch_worker` as::

    python -m bundle.comparison.worker <run-folder>/run_spec.json

It trains with the run's train configs through ``monai.bundle.ConfigWorkflow`` tracked in MLflow,
measuring the cost of training (:class:`bundle.handlers.IterationTimer`, peak memory increase,
parameters), evaluates the best checkpoint with the eval configs, logs the test metrics and the costs
into the training's MLflow run and writes ``result.json`` last. Lines starting with :data:`PHASE_MARK`
announce a phase to the comparing process. Importing this module loads neither torch nor MONAI.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bundle.comparison.settings import RESULT_FILE
from bundle.reports import atomic_write, display_path, machine_info, peak_rss_bytes, reset_peak_rss, rss_bytes
from bundle.reports import versions as installed_versions

__all__ = [
    "MACHINE_FIELDS",
    "PHASE_MARK",
    "evaluate_run",
    "log_to_mlflow",
    "main",
    "retire_incomplete_runs",
    "train_run",
    "with_tracking_uri",
    "worker_main",
]

#: a worker line starting with this announces a phase; the comparing process shows it as progress
PHASE_MARK = "@@compare_methods phase: "
#: what ``result.json`` records of :func:`bundle.reports.machine_info`
MACHINE_FIELDS = ("cpu", "logical_cores", "usable_cores", "platform", "system")


def _phase(name: str) -> None:
    print(PHASE_MARK + name, flush=True)


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

    from bundle.handlers import IterationTimer

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


def evaluate_run(run: Mapping[str, Any]) -> tuple[dict[str, float], str, float]:
    """Evaluate the run's best checkpoint (the test split unless overridden).

    Returns:
        the numeric metrics of ``metrics.json``, the split evaluated, the wall time in seconds.
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
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return numeric, str(metrics.get("split")), wall_s


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
    _phase("training")
    retire_incomplete_runs(run)
    trained = train_run(run)
    _phase("evaluating")
    test, split, eval_wall_s = evaluate_run(run)
    cost = {**trained["cost"], "eval_wall_s": eval_wall_s}
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
        "eval_split": split,
        "validation": trained["validation"],
        "cost": cost,
        "epochs": trained["epochs"],
        "epochs_completed": trained["epochs_completed"],
        "iterations": trained["iterations"],
        "overrides": run["overrides"],
        "train_configs": [display_path(Path(c)) for c in run["train_configs"]],
        "eval_configs": [display_path(Path(c)) for c in run["eval_configs"]],
        "settings": run["settings"],
        "command": run["command"],
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
