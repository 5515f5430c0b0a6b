# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Compare methods of the bundle on one dataset: train and test each (method, seed), then report.

For every requested method spec and seed, one fresh worker process trains with
``configs/common.json`` + ``configs/train.json`` + the ``--config`` overlays + the method's overlay
(``configs/methods/<name>.json``) through ``monai.bundle.ConfigWorkflow`` tracked in MLflow, measures
the cost of training (time per iteration, peak memory increase, parameters), evaluates the best
checkpoint on the test split (``configs/evaluate.json``), logs the test metrics and the costs into the
training's MLflow run and writes ``result.json`` last. Runs whose ``result.json`` exists are skipped,
so an interrupted comparison resumes where it stopped. Finally a markdown page and a bar chart of the
test AUROC are written from all finished runs.

Layout under ``--output-root``::

    <dataset-name>/mlruns.db                      MLflow store, experiment compare_<dataset-name>
    <dataset-name>/<slug>/seed<k>/result.json     the finished run's numbers (written last)
    <dataset-name>/<slug>/seed<k>/worker.log      the worker's output
    <dataset-name>/<slug>/seed<k>/model.pt        best checkpoint; run/ holds the run's checkpoints
    <dataset-name>/<slug>/seed<k>/metrics.json    test metrics; predictions.csv/.json per case

Example::

    python scripts/compare_methods.py --dataset-name synthetic_oct --datalist data/synthetic_oct/datalist.json \\
        --methods table1 aggregation --seeds 0 1 2 --override epochs=5
    python scripts/compare_methods.py --dataset-name synthetic_oct --datalist data/synthetic_oct/datalist.json \\
        --methods mims_cnn mims_cnn:top_k=3 --seeds 0 --report-only
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from script_support import display_path, machine_info, reset_peak_rss

__all__ = [
    "MethodSpec",
    "build_parser",
    "expand_method_specs",
    "format_mean_std",
    "load_method_registry",
    "main",
    "parse_method_spec",
    "parse_override",
    "render_report",
    "worker_main",
]

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SCRIPT = Path(__file__).resolve()
DEFAULT_OUTPUT_ROOT = REPO / "runs" / "compare"
DEFAULT_RESULTS_DIR = REPO / "docs" / "results"

#: hidden first argument that turns this script into the worker of one run
WORKER_COMMAND = "_worker"
#: a worker line starting with this announces a phase; the parent shows it as progress
PHASE_MARK = "@@compare_methods phase: "
#: the method the relative cost columns divide by
REFERENCE_METHOD = "mi_pre_conv"
#: config ids this script sets for every run; ``--override`` may not set them
MANAGED_KEYS = (
    "seed", "datalist", "run_dir", "ckpt_path", "output_dir", "bundle_root", "experiment_name", "run_name",
    "tracking_uri", "num_overlay_cases",
)
RESULT_FILE = "result.json"
NOT_RUN = "not run"
DASH = "–"


# ------------------------------------------------------------------------------------------ method specs


def load_method_registry() -> ModuleType:
    """``bundle/methods.py`` of this repository, loaded from its file.

    Importing it as ``bundle.methods`` would first import the ``bundle`` package, i.e. torch and MONAI
    (several seconds); the comparing process only needs the registry and stays small, so the workers'
    peak memory is never inherited from it.
    """
    path = REPO / "bundle" / "methods.py"
    spec = importlib.util.spec_from_file_location("_compare_methods_registry", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_value(text: str) -> Any:
    """A config value: JSON (``3``, ``[32,32]``, ``null``, ``"a"``) or else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` as ``(key, value)`` with the value parsed by :func:`parse_value`.

    Raises:
        ValueError: no ``=``, an empty key or value, or whitespace inside the key.
    """
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value or re.search(r"\s", key):
        raise ValueError(f"override {text!r} is not of the form key=value (e.g. epochs=5 or image_size=[32,32])")
    return key, parse_value(value)


def value_text(value: Any) -> str:
    """A config value as written in a method spec: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas that are not inside brackets or braces."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _slug_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", text.replace("#", ".")).strip("-") or "x"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method of the bundle with optional config overrides of its own (``name:key=value,...``).

    Args:
        name: a key of ``bundle.methods.METHODS``.
        overrides: ``(key, value)`` pairs sorted by key.
        display: the method's display name (``METHODS[name]``).
    """

    name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    display: str = ""

    @property
    def canonical(self) -> str:
        """The spec as text, overrides sorted: ``mims_cnn:top_k=3``."""
        if not self.overrides:
            return self.name
        return self.name + ":" + ",".join(f"{k}={value_text(v)}" for k, v in self.overrides)

    @property
    def slug(self) -> str:
        """Folder name of the spec: ``mims_cnn__top_k-3``."""
        return self.name + "".join(f"__{_slug_part(k)}-{_slug_part(value_text(v))}" for k, v in self.overrides)

    @property
    def label(self) -> str:
        """Display name with the overrides: ``MIMS (top_k=3)``."""
        extra = ", ".join(f"{k}={value_text(v)}" for k, v in self.overrides)
        return f"{self.display or self.name} ({extra})" if extra else self.display or self.name


def parse_method_spec(text: str, registry: ModuleType) -> MethodSpec:
    """Parse ``name`` or ``name:key=value[,key=value]`` (values as in :func:`parse_value`).

    Raises:
        ValueError: an unknown method (the message lists the valid ones), a malformed or repeated override.
        FileNotFoundError: the overlay of a known method is missing.
    """
    name, sep, rest = text.strip().partition(":")
    name = name.strip()
    try:
        registry.method_config(name)  # ValueError listing the valid names
    except ValueError as e:
        raise ValueError(f"{e} Groups: {', '.join(method_groups(registry))}.") from None
    if sep and not rest.strip():
        raise ValueError(f"method spec {text!r}: nothing after ':' (expected name:key=value[,key=value])")
    overrides: dict[str, Any] = {}
    for part in _split_top_level(rest) if sep else []:
        key, value = parse_override(part)
        if key in overrides:
            raise ValueError(f"method spec {text!r} sets {key!r} twice")
        if key in MANAGED_KEYS:
            raise ValueError(f"method spec {text!r} may not set {key!r}: this script sets it for every run")
        overrides[key] = value
    return MethodSpec(name, tuple(sorted(overrides.items())), registry.METHODS[name])


def method_groups(registry: ModuleType) -> dict[str, tuple[str, ...]]:
    """Group name -> method specs: ``table1`` and ``aggregation``."""
    return {"table1": tuple(registry.TABLE1_METHODS), "aggregation": tuple(registry.AGGREGATION_METHODS)}


def expand_method_specs(tokens: Sequence[str], registry: ModuleType) -> list[MethodSpec]:
    """Method specs of ``tokens`` with groups expanded and duplicates removed, first occurrence kept."""
    groups = method_groups(registry)
    specs: dict[str, MethodSpec] = {}
    for token in tokens:
        for text in groups.get(token.strip(), (token,)):
            spec = parse_method_spec(text, registry)
            specs.setdefault(spec.canonical, spec)
    return list(specs.values())


# --------------------------------------------------------------------------------------- settings of a run


@dataclasses.dataclass
class Settings:
    """What a comparison runs and reports, validated (see :func:`validate_arguments`)."""

    dataset_name: str
    datalist: Path
    configs: list[Path]
    overrides: dict[str, Any]
    specs: list[MethodSpec]
    seeds: list[int]
    output_root: Path
    results_dir: Path
    notes: Path | None
    report_only: bool
    fail_fast: bool
    quiet: bool
    command: str

    @property
    def dataset_dir(self) -> Path:
        return self.output_root / self.dataset_name

    @property
    def experiment(self) -> str:
        return f"compare_{self.dataset_name}"

    @property
    def tracking_db(self) -> Path:
        return self.dataset_dir / "mlruns.db"


def settings_key(settings: Settings) -> dict[str, Any]:
    """What must be equal for an existing result to count for these settings (besides spec and seed)."""
    return {
        "datalist": display_path(settings.datalist),
        "configs": [display_path(c) for c in settings.configs],
        "overrides": settings.overrides,
    }


def run_folder(settings: Settings, spec: MethodSpec, seed: int) -> Path:
    """``<output-root>/<dataset-name>/<slug>/seed<seed>``."""
    return settings.dataset_dir / spec.slug / f"seed{seed}"


def run_overrides(settings: Settings, spec: MethodSpec, seed: int) -> dict[str, Any]:
    """Config overrides of one run: the user's, then the spec's own, then the ones this script manages
    (``tracking_uri`` is added by the worker, see :func:`with_tracking_uri`)."""
    folder = run_folder(settings, spec, seed)
    return {
        **settings.overrides,
        **dict(spec.overrides),
        "seed": seed,
        "datalist": str(settings.datalist),
        "run_dir": str(folder / "run"),
        "ckpt_path": str(folder / "model.pt"),
        "output_dir": str(folder),
        "bundle_root": str(REPO),
        "experiment_name": settings.experiment,
        "run_name": f"{spec.slug}_seed{seed}",
        # no validation heatmap montages: they are logging, not training, and would enter the cost numbers
        "num_overlay_cases": 0,
    }


def build_run_spec(settings: Settings, spec: MethodSpec, seed: int, registry: ModuleType) -> dict[str, Any]:
    """Everything the worker of one run needs, as JSON-able data (written to ``run_spec.json``)."""
    overlays = [str(c) for c in settings.configs]
    method_overlay = str(registry.method_config(spec.name))
    overrides = run_overrides(settings, spec, seed)
    return {
        "dataset": settings.dataset_name,
        "method": spec.name,
        "spec": spec.canonical,
        "slug": spec.slug,
        "display_name": spec.label,
        "method_overrides": dict(spec.overrides),
        "seed": seed,
        "run_folder": overrides["output_dir"],
        "train_configs": [str(CONFIGS / "common.json"), str(CONFIGS / "train.json"), *overlays, method_overlay],
        "eval_configs": [str(CONFIGS / "common.json"), str(CONFIGS / "evaluate.json"), *overlays, method_overlay],
        "meta_file": str(CONFIGS / "metadata.json"),
        "logging_file": str(CONFIGS / "logging.conf"),
        "overrides": overrides,
        "settings": settings_key(settings),
        "tracking_db": str(settings.tracking_db),
        "experiment": settings.experiment,
        "run_name": overrides["run_name"],
        "command": settings.command,
    }


# ------------------------------------------------------------------------------------------------ worker


def _phase(name: str) -> None:
    print(PHASE_MARK + name, flush=True)


def rss_bytes() -> int:
    """Current resident set size of this process (``/proc/self/statm``; else the peak from ``resource``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return max_rss_bytes()


def max_rss_bytes() -> int:
    """``ru_maxrss`` of this process in bytes (KiB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


class IterationTimer:
    """Wall time of each trainer iteration, without data loading.

    ``ITERATION_STARTED`` fires after the batch was fetched; the iteration time runs to
    ``ITERATION_COMPLETED`` (the trainer's step and its iteration handlers, e.g. MLflow logging), the model
    step to MONAI's ``IterationEvents.MODEL_COMPLETED`` (prepare batch, forward, loss, backward, optimizer
    step, and the engine's own handlers of that event: decollation and postprocessing).

    Args:
        synchronize: called before each clock reading (``torch.cuda.synchronize`` on a GPU).
    """

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self.synchronize = synchronize or (lambda: None)
        self.iteration_s: list[float] = []
        self.model_step_s: list[float] = []
        self._start = 0.0

    def attach(self, engine: Any) -> None:
        """Time the iterations of ``engine`` (a MONAI trainer: it fires ``IterationEvents``)."""
        from ignite.engine import Events
        from monai.engines.utils import IterationEvents

        engine.add_event_handler(Events.ITERATION_STARTED, self._started)
        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self._model_completed)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._completed)

    def _now(self) -> float:
        self.synchronize()
        return time.perf_counter()

    def _started(self, engine: Any) -> None:
        self._start = self._now()

    def _model_completed(self, engine: Any) -> None:
        self.model_step_s.append(self._now() - self._start)

    def _completed(self, engine: Any) -> None:
        self.iteration_s.append(self._now() - self._start)


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
    peak_increase = max_rss_bytes() - baseline
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


def _versions() -> dict[str, str]:
    import monai
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
        "versions": _versions(),
        "device": trained["device"],
        "machine": machine_info(),
    }
    _atomic_write(Path(run["run_folder"]) / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return 0


# ------------------------------------------------------------------------------------- running the runs


def _elapsed(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def launch_worker(spec_path: Path, log_path: Path, quiet: bool, on_phase: Callable[[str], None]) -> int:
    """Run the worker of ``spec_path`` in a fresh Python process; its output goes to ``log_path`` (and here
    unless ``quiet``). Phase lines are handed to ``on_phase``. Returns the worker's exit code."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the run's own store, always
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, str(SCRIPT), WORKER_COMMAND, str(spec_path)]
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        for line in proc.stdout:
            log.write(line)
            if line.startswith(PHASE_MARK):
                on_phase(line[len(PHASE_MARK):].strip())
            elif not quiet:
                sys.stdout.write(line)
        return proc.wait()


@dataclasses.dataclass
class RunOutcome:
    """What became of one (spec, seed): ``done``, ``skipped`` or ``failed`` (with exit code and log)."""

    spec: MethodSpec
    seed: int
    status: str
    exit_code: int = 0
    log: Path | None = None


def run_one(settings: Settings, spec: MethodSpec, seed: int, registry: ModuleType, tag: str) -> RunOutcome:
    """Skip the run if its result exists; otherwise start its folder afresh and run its worker."""
    folder = run_folder(settings, spec, seed)
    label = f"{tag} {spec.canonical} seed {seed}"
    if (folder / RESULT_FILE).is_file():
        print(f"{label}: skipped ({folder / RESULT_FILE} exists)", flush=True)
        return RunOutcome(spec, seed, "skipped")
    if folder.exists():  # an earlier attempt that did not finish
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    spec_path = folder / "run_spec.json"
    spec_path.write_text(json.dumps(build_run_spec(settings, spec, seed, registry), indent=2) + "\n", encoding="utf-8")
    log_path = folder / "worker.log"
    start = time.perf_counter()
    code = launch_worker(spec_path, log_path, settings.quiet, lambda phase: print(f"{label}: {phase} ...", flush=True))
    took = _elapsed(time.perf_counter() - start)
    if code != 0 or not (folder / RESULT_FILE).is_file():
        print(f"{label}: FAILED after {took} (worker exit code {code}); log: {log_path}", flush=True)
        return RunOutcome(spec, seed, "failed", code or 1, log_path)
    test = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))["test"]
    scores = ", ".join(f"{k} {test[k]:.3f}" for k in ("auroc", "accuracy", "f1") if k in test)
    print(f"{label}: done in {took} (test {scores})", flush=True)
    return RunOutcome(spec, seed, "done")


def run_all(settings: Settings, registry: ModuleType) -> list[RunOutcome]:
    """Every (spec, seed) in order; stops at the first failure with ``fail_fast``."""
    jobs = [(spec, seed) for spec in settings.specs for seed in settings.seeds]
    outcomes = []
    for i, (spec, seed) in enumerate(jobs, start=1):
        outcomes.append(run_one(settings, spec, seed, registry, f"[{i}/{len(jobs)}]"))
        if outcomes[-1].status == "failed" and settings.fail_fast:
            print(f"stopping after the first failure (--fail-fast); {len(jobs) - i} run(s) not started", flush=True)
            break
    return outcomes


# ---------------------------------------------------------------------------------------- the results


def load_result(path: Path) -> dict[str, Any] | None:
    """The content of a ``result.json``; None when absent. ValueError when it is not valid JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it to run that run again") from e


def collect_results(settings: Settings) -> tuple[dict[str, list[dict[str, Any]]], list[Path]]:
    """Finished results per spec (canonical) for the requested seeds, and the result files whose settings
    (datalist, config overlays, overrides) differ from ``settings`` and so do not count."""
    key = settings_key(settings)
    found: dict[str, list[dict[str, Any]]] = {}
    other: list[Path] = []
    for spec in settings.specs:
        found[spec.canonical] = []
        for seed in settings.seeds:
            path = run_folder(settings, spec, seed) / RESULT_FILE
            result = load_result(path)
            if result is None:
                continue
            if result.get("settings") != key or result.get("spec") != spec.canonical:
                other.append(path)
            else:
                found[spec.canonical].append(result)
    return found, other


def format_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± sample std``; ``mean ± –`` for one value; ``–`` for none."""
    if not values:
        return DASH
    mean = f"{statistics.fmean(values):.{digits}f}"
    return f"{mean} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean} ± {DASH}"


def format_mean(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    """Mean of ``values`` times ``scale``; ``–`` for none."""
    return f"{statistics.fmean(values) * scale:.{digits}f}" if values else DASH


def format_ratio(value: float | None, reference: float | None) -> str:
    """``value / reference`` as ``1.23×``; ``–`` when either is missing."""
    return f"{value / reference:.2f}×" if value is not None and reference else DASH


def _numbers(results: Sequence[Mapping[str, Any]], section: str, key: str) -> list[float]:
    values = [r.get(section, {}).get(key) for r in results]
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _parameters_text(results: Sequence[Mapping[str, Any]]) -> str:
    counts = sorted({int(v) for v in _numbers(results, "cost", "num_parameters")})
    if not counts:
        return DASH
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"


@dataclasses.dataclass
class Row:
    """One table row: a spec and its finished results."""

    spec: MethodSpec
    results: list[dict[str, Any]]

    def mean(self, section: str, key: str) -> float | None:
        """Mean of ``result[section][key]`` over the results; None when no result has it."""
        values = _numbers(self.results, section, key)
        return statistics.fmean(values) if values else None


def assign_tables(specs: Sequence[MethodSpec], registry: ModuleType) -> list[tuple[str, list[MethodSpec]]]:
    """The tables of the page: (title, specs in requested order).

    A spec belongs to the Table-1 table and/or the aggregation table by membership in ``TABLE1_METHODS``
    / ``AGGREGATION_METHODS``. When one of the two holds every member spec, that one table is written;
    otherwise both, a spec in both appearing in both. Specs in neither go to a third table.
    """
    groups = {
        "Methods (rows of the paper's Table 1)": set(registry.TABLE1_METHODS),
        "MIL aggregation": set(registry.AGGREGATION_METHODS),
    }
    members = [s for s in specs if any(s.canonical in g for g in groups.values())]
    whole = next((title for title, g in groups.items() if members and all(s.canonical in g for s in members)), None)
    tables = []
    for title, group in groups.items():
        if (whole is None or title == whole) and any(s.canonical in group for s in members):
            tables.append((title, [s for s in members if s.canonical in group]))
    others = [s for s in specs if s not in members]
    if others:
        tables.append(("Other method specs", others))
    return tables


def _reference_row(rows: Mapping[str, Row]) -> Row | None:
    row = rows.get(REFERENCE_METHOD)
    return row if row is not None and row.results else None


def _table_lines(rows: Sequence[Row], reference: Row | None, cuda: bool, n_seeds: int) -> list[str]:
    ref = reference.spec.label if reference else ""
    header = ["Method", "Test AUROC", "Test accuracy", "Test F1", "Seeds", "Parameters", "Train ms/iteration"]
    header += [f"ms/it × {ref}"] if reference else []
    header += ["Peak train memory increase (MiB)"] + ([f"memory × {ref}"] if reference else [])
    header += ["Peak CUDA memory (MiB)"] if cuda else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ref_ms = reference.mean("cost", "train_iteration_s_median") if reference else None
    ref_mem = reference.mean("cost", "peak_rss_increase_mib") if reference else None
    for row in rows:
        r = row.results
        if not r:
            cells = [row.spec.label, NOT_RUN, DASH, DASH, f"0/{n_seeds}"] + [DASH] * (len(header) - 5)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ms = row.mean("cost", "train_iteration_s_median")
        mem = row.mean("cost", "peak_rss_increase_mib")
        cells = [
            row.spec.label,
            format_mean_std(_numbers(r, "test", "auroc")),
            format_mean_std(_numbers(r, "test", "accuracy")),
            format_mean(_numbers(r, "test", "f1")),
            f"{len(r)}/{n_seeds}",
            _parameters_text(r),
            format_mean(_numbers(r, "cost", "train_iteration_s_median"), 1, 1000.0),
        ]
        cells += [format_ratio(ms, ref_ms)] if reference else []
        cells += [format_mean(_numbers(r, "cost", "peak_rss_increase_mib"), 1)]
        cells += [format_ratio(mem, ref_mem)] if reference else []
        cells += [format_mean(_numbers(r, "cost", "peak_cuda_allocated_mib"), 1)] if cuda else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _distinct(results: Sequence[Mapping[str, Any]], describe: Callable[[Mapping[str, Any]], str]) -> str:
    values = list(dict.fromkeys(describe(r) for r in results))
    return "; ".join(values) if values else DASH


def _machine_text(machine: Mapping[str, Any]) -> str:
    return f"{machine.get('cpu')}, {machine.get('usable_cores')} usable of {machine.get('logical_cores')} logical cores"


def _installed_versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for package in ("torch", "monai"):
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} not installed")
    return ", ".join(parts)


def _header_lines(settings: Settings, all_results: Sequence[Mapping[str, Any]]) -> list[str]:
    if all_results:
        machine = _distinct(all_results, lambda r: _machine_text(r.get("machine", {})))
        devices = _distinct(all_results, lambda r: str(r.get("device")))
        versions = _distinct(all_results, lambda r: ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items()))
        dates = sorted(str(r.get("date")) for r in all_results)
        evaluated = _distinct(all_results, lambda r: f"`{r.get('eval_split')}` split, checkpoint of the best "
                              f"validation {(r.get('validation') or {}).get('metric', 'metric')}")
        run_lines = [
            f"- Metrics of the runs: {evaluated}",
            f"- Machine of the runs: {machine}; training device: {devices}",
            f"- Versions of the runs: {versions}",
            f"- Runs finished between {dates[0]} and {dates[-1]}",
        ]
    else:
        run_lines = [
            f"- Machine: {_machine_text(machine_info())} (no finished run yet)",
            f"- Versions: {_installed_versions()}",
        ]
    overrides = ", ".join(f"`{k}={value_text(v)}`" for k, v in settings.overrides.items()) or "none"
    commands = [c for c in dict.fromkeys(str(r.get("command")) for r in all_results) if c != settings.command]
    if commands:
        run_lines.append("- Runs started by: " + "; ".join(f"`{c}`" for c in commands))
    overlays = "".join(f"`{display_path(c)}` + " for c in settings.configs)
    return [
        f"# Method comparison: {settings.dataset_name}",
        "",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        *run_lines,
        f"- Command: `{settings.command}`",
        f"- Datalist: `{display_path(settings.datalist)}`",
        f"- Configs: `configs/common.json` + `configs/train.json` (evaluation: `configs/evaluate.json`) + "
        f"{overlays}`configs/methods/<method>.json`",
        f"- Overrides for every method: {overrides}; seeds: {', '.join(map(str, settings.seeds))}",
        f"- Per-run results: `{display_path(settings.dataset_dir)}/<method>/seed<k>/result.json`; MLflow store "
        f"`{display_path(settings.tracking_db)}`, experiment `{settings.experiment}`",
        "",
    ]


def _definition_lines(reference: Row | None, specs: Sequence[MethodSpec], cuda: bool) -> list[str]:
    lines = [
        "Test AUROC and accuracy: mean ± sample standard deviation over the finished seeds (– for one seed); "
        "F1: mean over seeds. Train ms/iteration: median wall time of a training iteration from ignite's "
        "`ITERATION_STARTED` to `ITERATION_COMPLETED` (the trainer's step and its iteration handlers, data "
        "loading excluded), mean over seeds. Peak train memory increase: peak resident memory of the training "
        "process during training (`ru_maxrss`) minus its resident memory after the datasets were cached, mean "
        "over seeds."
        + (" Peak CUDA memory: `torch.cuda.max_memory_allocated` during training." if cuda else ""),
    ]
    reference_spec = next((s for s in specs if s.canonical == REFERENCE_METHOD), None)
    if reference is not None:
        label = reference.spec.label
        lines.append(f"Columns marked × {label} divide this row's mean by that of {label}.")
    elif reference_spec is None:
        lines.append(f"No columns relative to MI-Pre-Conv: `{REFERENCE_METHOD}` was not among the requested methods.")
    else:
        lines.append(f"No columns relative to MI-Pre-Conv: `{REFERENCE_METHOD}` has no finished run.")
    return [*lines, ""]


def render_report(
    settings: Settings, results: Mapping[str, list[dict[str, Any]]], registry: ModuleType, image_name: str | None,
    notes: str | None = None,
) -> str:
    """The markdown page of a comparison.

    Args:
        settings: the comparison's settings (specs, seeds, command, overlays, overrides).
        results: finished results per canonical spec (from :func:`collect_results`).
        registry: the method registry (``bundle/methods.py``).
        image_name: file name of the AUROC chart next to the page; None: no image link.
        notes: markdown put verbatim under ``## Discussion``; None: no such section.
    """
    rows = {s.canonical: Row(s, results.get(s.canonical, [])) for s in settings.specs}
    reference = _reference_row(rows)
    all_results = [r for row in rows.values() for r in row.results]
    cuda = any(_numbers(all_results, "cost", "peak_cuda_allocated_mib"))
    lines = _header_lines(settings, all_results)
    lines += ["## Results", "", *_definition_lines(reference, settings.specs, cuda)]
    for title, specs in assign_tables(settings.specs, registry):
        lines += [f"### {title}", "", *_table_lines([rows[s.canonical] for s in specs], reference, cuda,
                                                   len(settings.seeds)), ""]
    if image_name:
        lines += [f"![Test AUROC per method, mean and standard deviation over seeds]({image_name})", ""]
    if notes is not None:
        lines += ["## Discussion", "", notes.rstrip("\n"), ""]
    return "\n".join(lines)


def draw_auroc_chart(
    tables: Sequence[tuple[str, Sequence[MethodSpec]]], results: Mapping[str, list[dict[str, Any]]], path: Path
) -> None:
    """Bar chart of the test AUROC mean (error bars: sample std) per spec, one panel per table, as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    widths = [max(len(specs), 1) for _, specs in tables] or [1]
    fig = Figure(figsize=(max(4.0, 0.75 * sum(widths) + 1.5 * len(widths)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(widths), sharey=True, squeeze=False, width_ratios=widths)[0]
    for ax, (title, specs) in zip(axes, tables or [("no methods", [])]):
        values = [_numbers(results.get(s.canonical, []), "test", "auroc") for s in specs]
        positions = range(len(specs))
        ax.bar(positions, [statistics.fmean(v) if v else 0.0 for v in values], color="#4C72B0")
        for x, v in zip(positions, values):
            if len(v) > 1:
                ax.errorbar(x, statistics.fmean(v), yerr=statistics.stdev(v), color="black", capsize=4)
            elif not v:
                ax.text(x, 0.02, NOT_RUN, rotation=90, ha="center", va="bottom", fontsize=8, color="0.4")
        ax.axhline(0.5, color="0.3", linestyle="--", linewidth=1, label="chance (0.5)")
        ax.set_xticks(list(positions), [s.label for s in specs], rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("test AUROC (mean ± SD over seeds)")
    axes[0].legend(loc="lower right", fontsize=8)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=150, format="png")
    os.replace(tmp, path)


def write_report(settings: Settings, registry: ModuleType) -> tuple[Path, Path]:
    """Write ``<results-dir>/<dataset-name>.md`` and ``.png`` from the finished results; their paths."""
    results, other = collect_results(settings)
    for path in other:
        print(f"warning: {path} was produced with other settings (datalist, configs or overrides): not reported",
              file=sys.stderr)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    page = settings.results_dir / f"{settings.dataset_name}.md"
    image = settings.results_dir / f"{settings.dataset_name}.png"
    notes = settings.notes.read_text(encoding="utf-8") if settings.notes else None
    draw_auroc_chart(assign_tables(settings.specs, registry), results, image)
    _atomic_write(page, render_report(settings, results, registry, image.name, notes))
    finished = sum(len(v) for v in results.values())
    print(f"report of {finished} finished run(s): {page} and {image}", flush=True)
    return page, image


# --------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Compare methods of the MIMS-CNN bundle on one dataset: for each method spec and seed, train (tracked "
            "in MLflow), measure the training cost, evaluate the best checkpoint on the test split, then write a "
            "markdown page with Table-1-style tables and a bar chart of the test AUROC. Finished runs (those with "
            "a result.json) are skipped, so the command resumes; an unfinished run's folder is cleared and the "
            "run starts over. Exit code: 0, or 1 when a run failed, or 2 for invalid arguments."
        ),
    )
    p.add_argument(
        "--dataset-name", required=True,
        help="name of the dataset: folder under --output-root, MLflow experiment compare_<name>, page <name>.md",
    )
    p.add_argument("--datalist", required=True, help="datalist JSON with training, validation and test splits")
    p.add_argument(
        "--methods", nargs="+", required=True, metavar="SPEC",
        help="method specs in the order of the tables: method names of bundle.methods.METHODS, the groups 'table1' "
        "and 'aggregation', or name:key=value[,key=value] for a method with config overrides of its own (e.g. "
        "mims_cnn:top_k=3); duplicates are dropped",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                   help="training seeds (config 'seed'), one run each per method (default: 0 1 2)")
    p.add_argument(
        "--config", nargs="+", action="extend", default=[], metavar="FILE",
        help="config overlays applied after configs/common.json and configs/train.json (or evaluate.json), in "
        "order, before the method's overlay (e.g. configs/datasets/adrenalmnist3d.json)",
    )
    p.add_argument(
        "--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="config overrides for every method, values parsed as JSON where possible (epochs=5 "
        "image_size=[32,32]); a method spec's own overrides win over these",
    )
    p.add_argument("--output-root", default=str(DEFAULT_OUTPUT_ROOT),
                   help="folder of the runs: <output-root>/<dataset-name>/<method>/seed<k>/ (default: runs/compare)")
    p.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR),
                   help="folder of the page <dataset-name>.md and chart <dataset-name>.png (default: docs/results)")
    p.add_argument("--notes", metavar="FILE",
                   help="markdown file inserted verbatim under '## Discussion' on the page (default: no such section)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the page and the chart from the finished runs found")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first failed run (default: report it and go on with the other runs)")
    p.add_argument("--quiet", action="store_true",
                   help="show only progress lines; the workers' output still goes to each run's worker.log")
    return p


def _existing_file(value: str, what: str) -> Path:
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"{what} {value!r} does not exist")
    return path


def _user_overrides(texts: Sequence[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for text in texts:
        key, value = parse_override(text)
        if key in MANAGED_KEYS:
            raise ValueError(f"--override {key} is set by this script for every run (use --seeds, --datalist, "
                             f"--output-root, --dataset-name); managed keys: {', '.join(MANAGED_KEYS)}")
        overrides[key] = value
    return overrides


def _check_slugs(specs: Sequence[MethodSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.slug in seen:
            raise ValueError(f"method specs {seen[spec.slug]!r} and {spec.canonical!r} share the folder {spec.slug!r}")
        seen[spec.slug] = spec.canonical


def _check_existing_results(settings: Settings) -> None:
    _, other = collect_results(settings)
    if other:
        listed = "\n  ".join(str(p) for p in other)
        raise ValueError(
            "finished runs in the output folder were produced with other settings (datalist, --config or "
            f"--override); use another --output-root or delete them:\n  {listed}"
        )


def validate_arguments(args: argparse.Namespace, argv: Sequence[str], registry: ModuleType) -> Settings:
    """Check every argument before any work; ValueError (or FileNotFoundError) naming the problem."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.dataset_name):
        raise ValueError(f"--dataset-name {args.dataset_name!r}: use letters, digits, '.', '_' and '-'")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ValueError(f"--seeds must be distinct non-negative integers, got {args.seeds}")
    specs = expand_method_specs(args.methods, registry)
    _check_slugs(specs)
    settings = Settings(
        dataset_name=args.dataset_name,
        datalist=_existing_file(args.datalist, "--datalist"),
        configs=[_existing_file(c, "--config file") for c in args.config],
        overrides=_user_overrides(args.override),
        specs=specs,
        seeds=list(args.seeds),
        output_root=Path(args.output_root).expanduser().resolve(),
        results_dir=Path(args.results_dir).expanduser().resolve(),
        notes=_existing_file(args.notes, "--notes file") if args.notes else None,
        report_only=args.report_only,
        fail_fast=args.fail_fast,
        quiet=args.quiet,
        command=shlex.join(["python", os.path.relpath(SCRIPT), *argv]),
    )
    if not settings.report_only:
        _check_existing_results(settings)
    return settings


def _summary(outcomes: Sequence[RunOutcome]) -> int:
    """Print how many runs were done, skipped and failed (with their logs); the number failed."""
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" of {len(outcomes)} run(s)", flush=True)
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED: {o.spec.canonical} seed {o.seed}: exit code {o.exit_code}, log {o.log}", flush=True)
    return counts["failed"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison (or, with ``_worker <run_spec.json>``, one run's worker).

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when every run finished (or was skipped), 1 when a run failed; invalid arguments exit with 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [WORKER_COMMAND]:
        if len(argv) != 2:
            raise SystemExit(f"usage: {SCRIPT.name} {WORKER_COMMAND} RUN_SPEC_JSON")
        return worker_main(argv[1])
    parser = build_parser()
    args = parser.parse_args(argv)
    registry = load_method_registry()
    try:
        settings = validate_arguments(args, argv, registry)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    failed = 0
    if not settings.report_only:
        started = time.perf_counter()
        failed = _summary(run_all(settings, registry))
        print(f"runs took {_elapsed(time.perf_counter() - started)}", flush=True)
    write_report(settings, registry)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
