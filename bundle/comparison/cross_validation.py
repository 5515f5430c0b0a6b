# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""K-fold cross-validation of one method: fold datalists, one comparison run per fold, mean and spread.

The folds come from a labels CSV (:func:`bundle.data.folds.kfold_datalists`). Each fold is a comparison
of one method spec and one seed on the fold's datalist (:func:`bundle.comparison.settings.make_settings`
with dataset name ``<name>_fold<i>``), run by :func:`bundle.comparison.runner.run_one` in a fresh worker
process; a fold whose ``result.json`` exists is skipped, so an interrupted cross-validation resumes.
Finally the per-fold test AUROC, accuracy and F1 and their mean, sample standard deviation, minimum and
maximum over the finished folds are printed and written. Importing this module loads neither torch nor
MONAI.

Layout under the output folder::

    folds/folds.json, folds/fold_<i>/datalist.json        the folds (bundle.data.folds)
    runs/<name>_fold<i>/mlruns.db                           MLflow store of fold i
    runs/<name>_fold<i>/<slug>/seed<k>/result.json          fold i's run (bundle.comparison layout)
    cross_validation.md, cross_validation.json              per-fold metrics, mean, std, min, max
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.comparison import runner
from bundle.comparison.settings import Settings, collect_results, make_settings
from bundle.data.folds import FOLDS_FILE, fold_parameters, kfold_datalists
from bundle.reports import atomic_write, display_path, machine_text, versions_text

__all__ = ["METRICS", "CrossValidation", "cross_validate", "make_cross_validation", "prepare_folds",
           "render_markdown", "summarize_folds", "write_summary"]

#: the test metrics reported per fold, in table order
METRICS = ("auroc", "accuracy", "f1")
SUMMARY_STEM = "cross_validation"


@dataclasses.dataclass
class CrossValidation:
    """A cross-validation, validated (see :func:`make_cross_validation`).

    Args:
        name: letters, digits, ``.``, ``_``, ``-``; the folds' dataset names are ``<name>_fold<i>``.
        output_dir: folder of the folds, the runs and the summary.
        folds: one comparison :class:`~bundle.comparison.settings.Settings` per fold (one spec, one seed).
        command: the command line recorded in the summary.
    """

    name: str
    output_dir: Path
    folds: list[Settings]
    command: str


def prepare_folds(output_dir: str | Path, images_dir: str | Path, labels_csv: str | Path, k: int, *,
                  image_column: str = "image", label_column: str = "label", group_column: str | None = None,
                  val_fraction: float = 0.2, seed: int = 0) -> list[Path]:
    """The fold datalists under ``output_dir/folds``: written once, reused when ``folds.json`` records the
    same parameters (same CSV content included), refused (ValueError) when it records others."""
    folds_dir = Path(output_dir) / "folds"
    record_path = folds_dir / FOLDS_FILE
    wanted = fold_parameters(images_dir, labels_csv, k, image_column, label_column, group_column, val_fraction, seed)
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("parameters") != wanted:
            raise ValueError(f"{record_path} was made with other parameters ({record.get('parameters')}); use "
                             "another --output-dir or delete that folder")
        return [folds_dir / f["datalist"] for f in record["folds"]]
    return kfold_datalists(images_dir, labels_csv, folds_dir, k, image_column, label_column, group_column,
                           val_fraction, seed, overwrite=True)


def make_cross_validation(*, name: str, output_dir: str | Path, images_dir: str | Path, labels_csv: str | Path,
                          k: int = 5, image_column: str = "image", label_column: str = "label",
                          group_column: str | None = None, val_fraction: float = 0.2, fold_seed: int = 0,
                          method: str = "mims_cnn", seed: int = 0, configs: Sequence[str | Path] = (),
                          overrides: Sequence[str] = (), fail_fast: bool = False, quiet: bool = False,
                          command: str = "") -> CrossValidation:
    """Check the method, overlays and overrides, write (or reuse) the folds, and return the settings.

    Args: as the options of ``scripts/cross_validate.py``; ``fold_seed`` seeds the folds, ``seed`` the training.

    Raises:
        ValueError: naming the option and the problem (e.g. a method group, ``k`` too large for the data).
        FileNotFoundError: a missing images folder, CSV, image or overlay.
    """
    output_dir = Path(output_dir).expanduser().resolve()
    common = dict(methods=[method], seeds=[seed], configs=configs, overrides=overrides,
                  output_root=output_dir / "runs", results_dir=output_dir, fail_fast=fail_fast, quiet=quiet,
                  command=command)
    # the method, overlays and overrides are checked before any file is written (the CSV stands in for a datalist)
    checked = make_settings(dataset_name=name, datalist=labels_csv, report_only=True, **common)
    if len(checked.specs) != 1:
        raise ValueError(f"--method {method!r} names {len(checked.specs)} method specs; cross-validate one")
    datalists = prepare_folds(output_dir, images_dir, labels_csv, k, image_column=image_column,
                              label_column=label_column, group_column=group_column, val_fraction=val_fraction,
                              seed=fold_seed)
    folds = [make_settings(dataset_name=f"{name}_fold{i}", datalist=path, **common) for i, path in enumerate(datalists)]
    return CrossValidation(name, output_dir, folds, command)


def summarize_folds(cv: CrossValidation) -> dict[str, Any]:
    """Per-fold test metrics of the finished folds and, per metric, mean, sample std, min and max over them."""
    folds = []
    for i, settings in enumerate(cv.folds):
        results, _ = collect_results(settings)
        found = results[settings.specs[0].canonical]
        result = found[0] if found else None
        test = result.get("test", {}) if result else {}
        folds.append({
            "fold": i,
            "datalist": display_path(settings.datalist),
            "finished": result is not None,
            "num_cases": test.get("num_cases"),
            **{m: test.get(m) for m in METRICS},
            "best_validation_epoch": ((result or {}).get("validation") or {}).get("best_epoch"),
        })
    summary = {}
    for metric in METRICS:
        values = [float(f[metric]) for f in folds if isinstance(f[metric], (int, float))]
        summary[metric] = {
            "n": len(values),
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
        }
    spec = cv.folds[0].specs[0]
    return {
        "name": cv.name, "method": spec.canonical, "seed": cv.folds[0].seeds[0], "k": len(cv.folds),
        "configs": [display_path(c) for c in cv.folds[0].configs], "overrides": cv.folds[0].overrides,
        "folds": folds, "summary": summary, "command": cv.command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_text(), "versions": versions_text(("torch", "monai")),
    }


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def render_markdown(record: Mapping[str, Any]) -> str:
    """The markdown page of :func:`summarize_folds`'s record."""
    header = ["Fold", "Test cases", "AUROC", "Accuracy", "F1", "Best val. epoch"]
    lines = [
        f"# Cross-validation: {record['name']}", "",
        f"- Method: `{record['method']}`, training seed {record['seed']}, {record['k']} folds",
        f"- Command: `{record['command']}`",
        f"- Machine: {record['machine']}; versions: {record['versions']}; written {record['date']}", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]
    for f in record["folds"]:
        cells = [str(f["fold"]), str(f["num_cases"] if f["num_cases"] is not None else "–"),
                 *(_number(f[m]) for m in METRICS), str(f["best_validation_epoch"] or "–")]
        if not f["finished"]:
            cells[2:5] = ["not run"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| Test metric | Folds | Mean | Std | Min | Max |", "|---|---|---|---|---|---|"]
    for metric, s in record["summary"].items():
        lines.append(f"| {metric} | {s['n']} | {_number(s['mean'])} | {_number(s['std'])} | {_number(s['min'])} "
                     f"| {_number(s['max'])} |")
    lines += ["", "Std is the sample standard deviation over the finished folds."]
    return "\n".join(lines) + "\n"


def write_summary(cv: CrossValidation) -> dict[str, Any]:
    """Write ``cross_validation.md`` and ``.json`` under the output folder, print the page; the record."""
    record = summarize_folds(cv)
    page = render_markdown(record)
    atomic_write(cv.output_dir / f"{SUMMARY_STEM}.json", json.dumps(record, indent=2) + "\n")
    atomic_write(cv.output_dir / f"{SUMMARY_STEM}.md", page)
    print(page, flush=True)
    return record


def cross_validate(cv: CrossValidation,
                   run_one: Callable[[Settings, Any, int, str], runner.RunOutcome] | None = None) -> int:
    """Run every unfinished fold in order (finished ones are skipped), then write the summary.

    Args:
        cv: the cross-validation.
        run_one: runs one fold's (spec, seed); default :func:`bundle.comparison.runner.run_one`.

    Returns:
        0 when every fold finished (or was skipped), 1 when a fold failed.
    """
    run_one = run_one or runner.run_one
    outcomes = []
    for i, settings in enumerate(cv.folds):
        outcomes.append(run_one(settings, settings.specs[0], settings.seeds[0], f"[fold {i}, {i + 1}/{len(cv.folds)}]"))
        if outcomes[-1].status == "failed" and settings.fail_fast:
            print(f"stopping after the first failure (--fail-fast); {len(cv.folds) - i - 1} fold(s) not started")
            break
    failed = runner.summarize(outcomes)
    write_summary(cv)
    return 1 if failed else 0
