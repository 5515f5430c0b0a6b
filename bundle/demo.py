# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The bundle's demo on its embedded default data: generate, train, evaluate, report.

:func:`run_demo` is what ``scripts/run_demo.py`` runs:

1. :func:`prepare_demo_data` generates the synthetic OCT-like volumes (skipped when present);
2. :func:`train_and_evaluate` trains MIMS-CNN with ``python -m monai.bundle run`` (``configs/common.json`` +
   ``configs/train.json``), then evaluates the promoted best checkpoint ``models/model.pt`` on the test split
   (``configs/common.json`` + ``configs/evaluate.json``); every command is printed before it runs, so it can be
   copied and changed;
3. :func:`demo_summary` says what the test split gave and where the checkpoints, predictions and MLflow runs are.

The slow test ``tests/test_demo_seeds.py`` reuses steps 1 and 2 with several training seeds.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.config import REPO

__all__ = [
    "DEMO_DATA_DIR",
    "EVALUATE_CONFIGS",
    "TRAIN_CONFIGS",
    "bundle_command",
    "demo_summary",
    "display_command",
    "prepare_demo_data",
    "run_command",
    "run_demo",
    "train_and_evaluate",
]

#: where the demo writes its volumes, relative to the bundle root
DEMO_DATA_DIR = "data/synthetic_oct"
#: configs of the demo's training and evaluation, relative to the repository root (where the commands run)
TRAIN_CONFIGS: tuple[str, ...] = ("configs/common.json", "configs/train.json")
EVALUATE_CONFIGS: tuple[str, ...] = ("configs/common.json", "configs/evaluate.json")


def bundle_command(configs: Sequence[str], overrides: Mapping[str, str], tracking: bool) -> list[str]:
    """The ``python -m monai.bundle run`` command line of merged ``configs`` with ``--<key> <value>`` overrides.

    Args:
        configs: config files, merged in order.
        overrides: config id -> value, as the command line passes it (a string).
        tracking: add ``--tracking mlflow``.
    """
    config_list = "[" + ",".join(f"'{c}'" for c in configs) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_list]
    for key, value in overrides.items():
        cmd += [f"--{key}", value]
    if tracking:
        cmd += ["--tracking", "mlflow"]
    return cmd


def display_command(cmd: Sequence[str]) -> str:
    """``cmd`` as a shell line; quoting keeps ``"['a.json','b.json']"`` readable (as in the README)."""

    def quote(arg: str) -> str:
        if "'" in arg and not any(c in arg for c in '"$`\\'):
            return f'"{arg}"'
        return shlex.quote(arg)

    return " ".join(quote(c) for c in cmd)


def run_command(cmd: Sequence[str], cwd: str | Path = REPO) -> None:
    """Print ``cmd`` (``$ ...``) and run it in ``cwd``.

    Raises:
        RuntimeError: the command exits with a non-zero code (the message names the code and the command).
    """
    print("\n$ " + display_command(cmd), flush=True)
    result = subprocess.run(list(cmd), cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"command failed with exit code {result.returncode}: {' '.join(cmd[:6])} ...")


def prepare_demo_data(
    data_dir: str | Path, seed: int = 0, num_train: int | None = None, regenerate: bool = False
) -> Path:
    """Generate the demo's synthetic OCT volumes into ``data_dir`` unless a datalist is already there.

    Args:
        data_dir: output folder of :func:`bundle.data.synthetic_oct.make_synthetic_oct_dataset`.
        seed: seed of the data generator. Default 0.
        num_train: training volumes; ``None``: the generator's default (160).
        regenerate: write the data anew even when ``data_dir/datalist.json`` exists.

    Returns:
        The path of ``data_dir/datalist.json``.
    """
    from bundle.data.synthetic_oct import make_synthetic_oct_dataset

    data_dir = Path(data_dir)
    datalist = data_dir / "datalist.json"
    if datalist.is_file() and not regenerate:
        print(f"[demo] using the existing demo data {datalist} (--regenerate to make it anew)")
        return datalist
    kwargs = {"num_train": num_train} if num_train else {}
    print(f"[demo] generating synthetic OCT-like volumes into {data_dir}")
    return make_synthetic_oct_dataset(data_dir, seed=seed, overwrite=regenerate, **kwargs)


def train_and_evaluate(
    bundle_root: str | Path,
    data_dir: str | Path,
    epochs: int | None = None,
    tracking: bool = True,
    train_overrides: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Train with :data:`TRAIN_CONFIGS`, evaluate ``models/model.pt`` with :data:`EVALUATE_CONFIGS`.

    Both commands run in the repository root with ``bundle_root`` and ``dataset_dir`` overridden, so everything
    they write (``runs/``, ``models/``, ``eval/``) lands under ``bundle_root``.

    Args:
        bundle_root: folder for the outputs.
        data_dir: folder of the datalist and volumes.
        epochs: training epochs; ``None``: ``configs/train.json``'s.
        tracking: track both runs in MLflow (``eval/mlruns.db``).
        train_overrides: further overrides of the training only (config id -> value string, e.g.
            ``{"seed": "1"}``).

    Returns:
        The test metrics, ``bundle_root/eval/metrics.json``.
    """
    bundle_root = Path(bundle_root)
    overrides = {"bundle_root": str(bundle_root), "dataset_dir": str(data_dir)}
    training = {**overrides, **(train_overrides or {})}
    if epochs is not None:
        training["epochs"] = str(epochs)
    run_command(bundle_command(TRAIN_CONFIGS, training, tracking))
    run_command(bundle_command(EVALUATE_CONFIGS, overrides, tracking))
    return json.loads((bundle_root / "eval" / "metrics.json").read_text())


def _evaluated_model_lines(bundle_root: Path, latest_run: Path | None) -> list[str]:
    """Which run the evaluated ``models/model.pt`` comes from (its provenance), and whether it is this run's."""
    from bundle.model_selection import provenance_path, read_provenance

    model = bundle_root / "models" / "model.pt"
    provenance = read_provenance(model)
    if provenance is None:
        return [f"evaluated model:      {model} (no provenance: {provenance_path(model).name} missing or outdated)"]
    lines = [f"evaluated model:      run {provenance.get('run_name')} ({provenance.get('reason')})"]
    run_dir = provenance.get("run_dir")
    if latest_run is not None and (run_dir is None or Path(run_dir).resolve() != latest_run.resolve()):
        lines.append(f"  not this run's model: {latest_run.name}'s model was not promoted and stays in its folder")
    return lines


def _decision_text(threshold: float | None) -> str:
    """How the evaluation decided the class: the validation-chosen threshold, or argmax without one."""
    if threshold is None:
        return "argmax of the probabilities (no decision threshold stored with the model)"
    return (f"cyst when P(cyst) >= {threshold:.3f} (threshold chosen on the validation split, "
            "models/model.decision.json)")


def demo_summary(bundle_root: str | Path, metrics: Mapping[str, Any], minutes: float, tracking: bool) -> str:
    """The report printed at the end of the demo: test metrics and where its outputs are."""
    bundle_root = Path(bundle_root)
    metrics_path = bundle_root / "eval" / "metrics.json"
    runs = sorted((bundle_root / "runs").glob("*/"), key=lambda p: p.stat().st_mtime)
    lines = [
        "=" * 72,
        f"MIMS-CNN demo finished in {minutes:.1f} min",
        f"test split ({metrics.get('num_cases', '?')} volumes): AUROC {metrics['auroc']:.3f}, "
        f"accuracy {metrics['accuracy']:.3f}, F1 {metrics['f1']:.3f}",
        f"decision:             {_decision_text(metrics.get('decision_threshold'))}",
        f"best checkpoint:      {bundle_root / 'models' / 'model.pt'}",
    ]
    lines.extend(_evaluated_model_lines(bundle_root, runs[-1] if runs else None))
    if runs:
        lines.append(
            f"this run's folder:    {runs[-1]} (best model.pt, resumable checkpoint_*.pt, "
            "overlays/: validation heatmap montages per epoch)"
        )
    lines.append(f"metrics, predictions: {metrics_path}, {bundle_root / 'eval' / 'predictions.csv'}")
    if tracking:
        db = bundle_root / "eval" / "mlruns.db"
        lines.append(f"MLflow runs:          {db} (experiment 'mims_cnn')")
        lines.append(f"  view them with:     .venv/bin/mlflow ui --backend-store-uri sqlite:///{db}")
    lines.append("=" * 72)
    return "\n".join(lines)


def run_demo(
    bundle_root: str | Path = REPO,
    data_dir: str | Path = DEMO_DATA_DIR,
    seed: int = 0,
    epochs: int | None = None,
    num_train: int | None = None,
    tracking: bool = True,
    regenerate: bool = False,
) -> dict[str, Any]:
    """Generate the demo data (unless present), train, evaluate and print :func:`demo_summary`.

    Args:
        bundle_root: folder for everything the demo writes (``data/``, ``runs/``, ``models/``, ``eval/``).
        data_dir: where the volumes are written, relative to ``bundle_root`` (or absolute).
        seed: seed of the data generator.
        epochs: training epochs; ``None``: ``configs/train.json``'s.
        num_train: training volumes to generate; ``None``: the generator's.
        tracking: track the runs in MLflow.
        regenerate: regenerate the data even if it exists.

    Returns:
        The test metrics (``eval/metrics.json``).
    """
    start = time.time()
    out_root = Path(bundle_root).expanduser().resolve()
    data_path = out_root / data_dir
    prepare_demo_data(data_path, seed=seed, num_train=num_train, regenerate=regenerate)
    metrics = train_and_evaluate(out_root, data_path, epochs=epochs, tracking=tracking)
    print("\n" + demo_summary(out_root, metrics, (time.time() - start) / 60, tracking))
    return metrics
