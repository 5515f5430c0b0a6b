# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Run a comparison: every (method spec, seed) in order, each in a fresh worker process, then the page.

A run whose ``result.json`` exists is skipped, so an interrupted comparison resumes where it stopped; an
unfinished run's folder is cleared and the run starts over. Right after a run finishes, its record is
written (:func:`bundle.comparison.records.write_record`); the page is then generated from the records
(:mod:`bundle.comparison.pages`): the page ``<results-dir>/pages.json`` declares for the dataset name, else
a page of the comparison's own specs and seeds. Each worker
(``python -m bundle.comparison.worker``) starts with nothing of this process's memory, so its peak memory
is its own; its output goes to the run's ``worker.log``. Importing this module loads neither torch nor
MONAI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bundle.comparison import pages
from bundle.comparison.records import write_record
from bundle.comparison.settings import RESULT_FILE, Settings, build_run_spec, collect_results, run_folder
from bundle.comparison.worker import PHASE_MARK
from bundle.config import REPO
from bundle.methods import MethodSpec

__all__ = [
    "RunOutcome",
    "compare",
    "launch_worker",
    "page_of",
    "run_all",
    "run_one",
    "summarize",
    "sync_records",
    "worker_command",
    "write_comparison_page",
]


def _elapsed(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def worker_command(spec_path: str | os.PathLike) -> list[str]:
    """The command line of the worker of ``spec_path``: this Python, ``-m bundle.comparison.worker``."""
    return [sys.executable, "-m", "bundle.comparison.worker", str(spec_path)]


def launch_worker(spec_path: Path, log_path: Path, quiet: bool, on_phase: Callable[[str], None]) -> int:
    """Run the worker of ``spec_path`` in a fresh Python process; its output goes to ``log_path`` (and here
    unless ``quiet``). Phase lines are handed to ``on_phase``. Returns the worker's exit code.

    The worker runs in the repository, so ``bundle``, ``networks`` and ``transforms`` import from it whether
    or not they are installed; ``MLFLOW_TRACKING_URI`` is dropped (each run uses the comparison's store).
    """
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the run's own store, always
    env["PYTHONUNBUFFERED"] = "1"
    cmd = worker_command(spec_path)
    # line-buffered: the log shows each line as it comes (the epoch a run is at), not in 8-KiB blocks
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        log.write("$ " + shlex.join(cmd) + "\n")
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


def run_one(settings: Settings, spec: MethodSpec, seed: int, tag: str) -> RunOutcome:
    """Skip the run if its result exists; otherwise start its folder afresh and run its worker.

    Args:
        settings: the comparison's settings.
        spec: the method spec of the run.
        seed: the run's seed.
        tag: prefix of the progress lines, e.g. ``[3/17]``.
    """
    folder = run_folder(settings, spec, seed)
    label = f"{tag} {spec.canonical} seed {seed}"
    if (folder / RESULT_FILE).is_file():
        print(f"{label}: skipped ({folder / RESULT_FILE} exists)", flush=True)
        return RunOutcome(spec, seed, "skipped")
    if folder.exists():  # an earlier attempt that did not finish
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    spec_path = folder / "run_spec.json"
    spec_path.write_text(json.dumps(build_run_spec(settings, spec, seed), indent=2) + "\n", encoding="utf-8")
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


def run_all(settings: Settings) -> list[RunOutcome]:
    """Every (spec, seed) in order, the record of each finished run written right after it; stops at the first
    failure with ``fail_fast``."""
    jobs = [(spec, seed) for spec in settings.specs for seed in settings.seeds]
    outcomes = []
    for i, (spec, seed) in enumerate(jobs, start=1):
        outcomes.append(run_one(settings, spec, seed, f"[{i}/{len(jobs)}]"))
        if outcomes[-1].status == "done":
            result = json.loads((run_folder(settings, spec, seed) / RESULT_FILE).read_text(encoding="utf-8"))
            print(f"  record: {_write_record(settings, spec, result)}", flush=True)
        if outcomes[-1].status == "failed" and settings.fail_fast:
            print(f"stopping after the first failure (--fail-fast); {len(jobs) - i} run(s) not started", flush=True)
            break
    return outcomes


def summarize(outcomes: Sequence[RunOutcome]) -> int:
    """Print how many runs were done, skipped and failed (with their logs); the number failed."""
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" of {len(outcomes)} run(s)", flush=True)
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED: {o.spec.canonical} seed {o.seed}: exit code {o.exit_code}, log {o.log}", flush=True)
    return counts["failed"]


def _write_record(settings: Settings, spec: MethodSpec, result: dict) -> Path:
    """The record of a run's result, its dataset and slug those of the run folder."""
    return write_record(settings.records_dir, {**result, "dataset": settings.dataset_name, "slug": spec.slug})


def sync_records(settings: Settings) -> int:
    """Write the record of every finished run of these settings found under the output root (skipped runs, and
    a record folder that was changed or emptied); warn about results of other settings. The number written."""
    results, other = collect_results(settings)
    for path in other:
        print(f"warning: {path} was produced with other settings (datalist, configs or overrides): no record",
              file=sys.stderr)
    specs = {s.canonical: s for s in settings.specs}
    written = 0
    for canonical, found in results.items():
        for result in found:
            _write_record(settings, specs[canonical], result)
            written += 1
    return written


def page_of(settings: Settings) -> pages.PageSpec:
    """The page ``<results-dir>/pages.json`` declares for the comparison's dataset name, else
    :func:`bundle.comparison.pages.page_spec_for` the settings."""
    declared = settings.results_dir / "pages.json"
    if declared.is_file():
        for spec in pages.load_page_specs(declared):
            if spec.records == settings.dataset_name:
                return spec
    return pages.page_spec_for(settings)


def write_comparison_page(settings: Settings) -> Path:
    """Bring the records up to date with the finished runs, then write the page (and chart) from the records."""
    sync_records(settings)
    return pages.write_page(page_of(settings), settings.records_dir, settings.results_dir)


def compare(settings: Settings) -> int:
    """Run every unfinished run (unless ``settings.report_only``), then write the page and the chart.

    Returns:
        0 when every run finished (or was skipped), 1 when a run failed.
    """
    failed = 0
    if not settings.report_only:
        started = time.perf_counter()
        failed = summarize(run_all(settings))
        print(f"runs took {_elapsed(time.perf_counter() - started)}", flush=True)
    write_comparison_page(settings)
    return 1 if failed else 0
