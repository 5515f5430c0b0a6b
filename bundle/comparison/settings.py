# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""What a method comparison runs, where each run lives, what its worker is told, and what it left.

:func:`make_settings` checks every argument of a comparison before any work and returns its
:class:`Settings`; :func:`run_folder`, :func:`build_run_spec` and :func:`collect_results` map the settings
to run folders, to the ``run_spec.json`` of each worker and back to the finished ``result.json`` files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundle.comparison.records import load_record, record_path
from bundle.config import CONFIGS, REPO
from bundle.methods import MethodSpec, expand_method_specs, method_config, spec_override
from bundle.reports import display_path

__all__ = [
    "DEFAULT_OUTPUT_ROOT",
    "DEFAULT_RESULTS_DIR",
    "MANAGED_KEYS",
    "RESULT_FILE",
    "Settings",
    "build_run_spec",
    "collect_results",
    "load_result",
    "make_settings",
    "run_folder",
    "run_overrides",
    "settings_key",
]

#: where the runs go by default: ``<output-root>/<dataset-name>/<slug>/seed<k>``
DEFAULT_OUTPUT_ROOT = REPO / "runs" / "compare"
#: where the page and the chart go by default
DEFAULT_RESULTS_DIR = REPO / "docs" / "results"
#: config ids the comparison sets for every run; neither ``--override`` nor a method spec may set them
MANAGED_KEYS = (
    "seed", "datalist", "run_dir", "ckpt_path", "output_dir", "bundle_root", "experiment_name", "run_name",
    "tracking_uri", "num_overlay_cases",
)
#: a run's numbers, written last by its worker: a run folder with this file is finished
RESULT_FILE = "result.json"


@dataclasses.dataclass
class Settings:
    """What a comparison runs and reports, validated (see :func:`make_settings`).

    Args:
        dataset_name: folder under ``output_root``, MLflow experiment ``compare_<name>``, page ``<name>.md``.
        datalist: datalist JSON with training, validation and test splits.
        configs: overlays applied after ``common.json`` and ``train.json`` (or ``evaluate.json``).
        overrides: config values for every method (a spec's own overrides win).
        specs: method specs in the order of the tables.
        seeds: training seeds, one run each per spec.
        output_root: folder of the runs.
        results_dir: folder of the page and the chart.
        records_dir: folder of the run records (:mod:`bundle.comparison.records`), one per finished run.
        notes: markdown put under ``## Discussion`` on the page; None: no such section.
        report_only: train nothing, only write the page and the chart.
        fail_fast: stop at the first failed run.
        quiet: show only progress lines (the workers' output still goes to each run's ``worker.log``).
        command: the command line shown on the page and stored in each result.
    """

    dataset_name: str
    datalist: Path
    configs: list[Path]
    overrides: dict[str, Any]
    specs: list[MethodSpec]
    seeds: list[int]
    output_root: Path
    results_dir: Path
    records_dir: Path
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
    """Config overrides of one run: the user's, then the spec's own, then the ones the comparison manages
    (``tracking_uri`` is added by the worker, see :func:`bundle.comparison.worker.with_tracking_uri`)."""
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


def build_run_spec(settings: Settings, spec: MethodSpec, seed: int) -> dict[str, Any]:
    """Everything the worker of one run needs, as JSON-able data (written to ``run_spec.json``)."""
    overlays = [str(c) for c in settings.configs]
    method_overlay = str(method_config(spec.name))
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


# ------------------------------------------------------------------------------------------ validation


def _existing_file(value: str | Path, what: str) -> Path:
    """``value`` made absolute without resolving symbolic links (so :func:`display_path` can keep a path that lies
    inside the repository as written, e.g. through a ``data`` link to another clone, relative)."""
    path = Path(os.path.abspath(Path(value).expanduser()))
    if not path.is_file():
        raise ValueError(f"{what} {str(value)!r} does not exist")
    return path


def _user_overrides(texts: Sequence[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for text in texts:
        key, value = spec_override(text)
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
    key = settings_key(settings)
    other = []
    for spec in settings.specs:
        for seed in settings.seeds:
            path = record_path(settings.records_dir, settings.dataset_name, spec.slug, seed)
            if path.is_file() and load_record(path).get("settings") != key:
                other.append(path)
    if other:
        listed = "\n  ".join(str(p) for p in other)
        raise ValueError(
            "run records in the records folder were produced with other settings (datalist, --config or "
            f"--override) and would be replaced; use another --dataset-name or --records-dir, or delete them:"
            f"\n  {listed}"
        )


def make_settings(
    *,
    dataset_name: str,
    datalist: str | Path,
    methods: Sequence[str],
    seeds: Sequence[int] = (0, 1, 2),
    configs: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
    output_root: str | Path = DEFAULT_OUTPUT_ROOT,
    results_dir: str | Path = DEFAULT_RESULTS_DIR,
    records_dir: str | Path | None = None,
    notes: str | Path | None = None,
    report_only: bool = False,
    fail_fast: bool = False,
    quiet: bool = False,
    command: str = "",
) -> Settings:
    """The settings of a comparison, every argument checked before any work (the options of
    ``scripts/compare_methods.py``, which the error messages name).

    Args:
        dataset_name: letters, digits, ``.``, ``_`` and ``-``.
        datalist: an existing datalist file.
        methods: method specs and groups (:func:`bundle.methods.expand_method_specs`); they may not set
            :data:`MANAGED_KEYS`.
        seeds: distinct non-negative seeds.
        configs: existing config overlay files.
        overrides: ``key=value`` texts (:func:`bundle.methods.spec_override`), not of :data:`MANAGED_KEYS`.
        output_root: folder of the runs; unless ``report_only``, its finished runs must have these settings.
        results_dir: folder of the page and the chart.
        records_dir: folder of the run records; None: ``<results_dir>/records``. Unless ``report_only``, its
            records of these specs and seeds must have these settings.
        notes: an existing markdown file, or None.
        report_only: train nothing, only write the page and the chart.
        fail_fast: stop at the first failed run.
        quiet: show only progress lines.
        command: the command line recorded on the page and in each result.

    Raises:
        ValueError: naming the option and the problem.
        FileNotFoundError: the overlay of a known method is missing.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dataset_name):
        raise ValueError(f"--dataset-name {dataset_name!r}: use letters, digits, '.', '_' and '-'")
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds must be distinct non-negative integers, got {seeds}")
    config_files = [_existing_file(c, "--config file") for c in configs]
    user_overrides = _user_overrides(overrides)
    specs = expand_method_specs(methods, MANAGED_KEYS, config_files, user_overrides)  # display names see both
    _check_slugs(specs)
    settings = Settings(
        dataset_name=dataset_name,
        datalist=_existing_file(datalist, "--datalist"),
        configs=config_files,
        overrides=user_overrides,
        specs=specs,
        seeds=seeds,
        output_root=Path(output_root).expanduser().resolve(),
        results_dir=Path(results_dir).expanduser().resolve(),
        records_dir=Path(Path(results_dir) / "records" if records_dir is None else records_dir).expanduser().resolve(),
        notes=_existing_file(notes, "--notes file") if notes else None,
        report_only=report_only,
        fail_fast=fail_fast,
        quiet=quiet,
        command=command,
    )
    if not settings.report_only:
        _check_existing_results(settings)
    return settings
