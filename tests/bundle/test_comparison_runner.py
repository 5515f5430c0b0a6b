# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.comparison.runner``: failed runs are reported and the others go on (or stop with fail-fast),
finished runs are skipped, each finished run's record is written and the page generated from the records,
and the worker is the package entry point (with a stand-in worker)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from comparison_testing import PNG_MAGIC, demo_settings, table, write_datalist, write_result

from bundle.comparison import runner


@pytest.fixture
def datalist(tmp_path):
    return write_datalist(tmp_path)


def test_failed_run_is_reported_and_the_others_continue(tmp_path, datalist, monkeypatch, capsys):
    calls = []

    def fake_worker(spec_path, log_path, quiet, on_phase):
        run = json.loads(Path(spec_path).read_text())
        calls.append(run["spec"])
        log_path.write_text("worker output\n")
        on_phase("training")
        if run["spec"] == "mi_pre":
            return 3
        Path(run["run_folder"], "result.json").write_text(json.dumps(
            {"spec": run["spec"], "seed": run["seed"], "settings": run["settings"], "test": {"auroc": 0.75}}))
        return 0

    monkeypatch.setattr(runner, "launch_worker", fake_worker)
    settings = demo_settings(tmp_path, datalist, "mi_pre", "mims_cnn", seeds=(0,))
    assert runner.compare(settings) == 1
    out = capsys.readouterr().out
    failed_log = tmp_path / "runs" / "demo" / "mi_pre" / "seed0" / "worker.log"
    assert calls == ["mi_pre", "mims_cnn"]
    assert "[1/2] mi_pre seed 0: training ..." in out and "[2/2] mims_cnn seed 0: training ..." in out
    assert "[1/2] mi_pre seed 0: FAILED after" in out and f"(worker exit code 3); log: {failed_log}" in out
    assert re.search(r"\[2/2\] mims_cnn seed 0: done in [0-9.]+ s \(test auroc 0\.750\)", out)
    assert "1 done, 0 skipped, 1 failed of 2 run(s)" in out
    assert f"  FAILED: mi_pre seed 0: exit code 3, log {failed_log}" in out
    assert not failed_log.with_name("result.json").exists()
    page = (tmp_path / "results" / "demo.md").read_text()
    assert table(page, "Methods (the paper's Table 1)")[1][:2] == ["MI-Pre", "not run"]
    assert table(page, "Methods (the paper's Table 1)")[2][:2] == ["MIMS", "0.750"]
    record = json.loads((tmp_path / "results" / "records" / "demo" / "mims_cnn" / "seed0.json").read_text())
    assert (record["dataset"], record["slug"], record["test"]) == ("demo", "mims_cnn", {"auroc": 0.75})
    assert f"  record: {tmp_path / 'results' / 'records' / 'demo' / 'mims_cnn' / 'seed0.json'}" in out

    calls.clear()
    assert runner.compare(dataclasses.replace(settings, fail_fast=True)) == 1  # mims_cnn is done: only mi_pre again
    out = capsys.readouterr().out
    assert calls == ["mi_pre"] and "--fail-fast" in out
    calls.clear()
    settings = demo_settings(tmp_path, datalist, "mi_pre", "mims_cnn", "mims_mean", seeds=(0,), fail_fast=True)
    assert runner.compare(settings) == 1
    assert calls == ["mi_pre"]  # stopped before mims_mean
    assert "2 run(s) not started" in capsys.readouterr().out


def test_unfinished_run_folder_starts_afresh(tmp_path, datalist, monkeypatch):
    settings = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,))
    leftover = tmp_path / "runs" / "demo" / "mims_cnn" / "seed0" / "run" / "old.pt"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("x")
    monkeypatch.setattr(runner, "launch_worker", lambda spec_path, log_path, quiet, on_phase: 0)
    outcome = runner.run_one(settings, settings.specs[0], 0, "[1/1]")
    assert (outcome.status, outcome.exit_code) == ("failed", 1)  # exit code 0 but no result.json
    assert not leftover.exists() and (leftover.parents[1] / "run_spec.json").is_file()


def test_worker_is_the_package_entry_point(tmp_path, monkeypatch):
    """The worker runs as ``python -m bundle.comparison.worker`` in the repository, without the caller's
    MLflow store; its phase lines go to ``on_phase``, the rest to the log (and here unless quiet)."""
    spec_path = tmp_path / "run_spec.json"
    assert runner.worker_command(spec_path) == [sys.executable, "-m", "bundle.comparison.worker", str(spec_path)]
    script = tmp_path / "fake_worker.py"
    script.write_text(
        "import os, sys\n"
        "from bundle.comparison.worker import PHASE_MARK\n"
        "print(PHASE_MARK + 'training')\n"
        "print('cwd', os.getcwd())\n"
        "print('mlflow', os.environ.get('MLFLOW_TRACKING_URI'))\n"
        "sys.exit(5)\n"
    )
    monkeypatch.setattr(runner, "worker_command", lambda path: [sys.executable, str(script), str(path)])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    phases = []
    log = tmp_path / "worker.log"
    assert runner.launch_worker(spec_path, log, True, phases.append) == 5
    assert phases == ["training"]
    text = log.read_text()
    assert text.startswith("$ ") and f"cwd {runner.REPO}\n" in text and "mlflow None\n" in text


def test_worker_log_shows_each_line_as_it_comes(tmp_path, monkeypatch):
    """The worker waits until its first line is in the log before it writes the second: a log written in blocks
    (the epoch a run is at invisible for minutes) makes it exit 1."""
    log = tmp_path / "worker.log"
    script = tmp_path / "fake_worker.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"log = pathlib.Path({str(log)!r})\n"
        "print('epoch 1 done', flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        "while 'epoch 1 done' not in log.read_text() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "sys.exit(0 if 'epoch 1 done' in log.read_text() else 1)\n"
    )
    monkeypatch.setattr(runner, "worker_command", lambda path: [sys.executable, str(script), str(path)])
    assert runner.launch_worker(tmp_path / "run_spec.json", log, True, lambda phase: None) == 0
    assert log.read_text().endswith("epoch 1 done\n")


def test_the_comparing_process_imports_neither_torch_nor_monai():
    """Workers inherit nothing of the comparing process's memory only while it stays small."""
    code = (
        "import sys\n"
        "import bundle.comparison.cost, bundle.comparison.pages, bundle.comparison.runner, bundle.comparison.worker\n"
        "print(sorted(m for m in ('torch', 'monai', 'mlflow', 'matplotlib', 'ignite') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", check=True)
    assert done.stdout.strip() == "[]"


def test_report_only_page_without_results(tmp_path, datalist, capsys):
    settings = demo_settings(tmp_path, datalist, "mims_cnn", "mims_cnn:top_k=2", report_only=True)
    assert runner.compare(settings) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    assert [r[:2] for r in table(page, "MIL aggregation")[1:]] == [["MIMS", "not run"], ["MIMS (top_k=2)", "not run"]]
    assert "- No finished run yet." in page and "## Discussion" not in page
    assert (tmp_path / "results" / "demo.png").read_bytes()[:8] == PNG_MAGIC
    assert "page of 0 record(s)" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing was run


def test_results_and_records_of_other_settings(tmp_path, datalist, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("MIMS beats *everything* here.\n\n| a | b |\n")
    settings = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=3"], notes=notes)
    write_result(settings, settings.specs[0], 0, 0.9, 0.8, 0.7, iteration_s=0.2, memory_mib=10.0)
    assert runner.compare(dataclasses.replace(settings, report_only=True)) == 0  # records the finished run
    page = (tmp_path / "results" / "demo.md").read_text()
    assert table(page, "Methods (the paper's Table 1)")[1][:2] == ["MIMS", "0.900"]
    assert page.endswith("## Discussion\n\nMIMS beats *everything* here.\n\n| a | b |\n")
    other = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=4"], report_only=True)
    assert runner.compare(other) == 0
    assert "other settings" in capsys.readouterr().err
    page = (tmp_path / "results" / "demo.md").read_text()
    assert table(page, "Methods (the paper's Table 1)")[1][:2] == ["MIMS", "not run"]
    assert "- Not counted: 1 record(s) of other settings than this page's" in page
    with pytest.raises(ValueError, match="run records in the records folder were produced with other settings"):
        demo_settings(tmp_path / "elsewhere", datalist, "mims_cnn", seeds=(0,), overrides=["epochs=4"],
                      records_dir=tmp_path / "results" / "records")


def test_a_page_declared_in_pages_json_is_the_one_written(tmp_path, datalist):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "pages.json").write_text(json.dumps({"pages": [
        {"page": "declared.md", "title": "Declared", "records": "demo", "seeds": [0],
         "tables": [{"title": "Only", "methods": ["mims_cnn"]}]}]}))
    settings = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), report_only=True)
    assert runner.page_of(settings).page == "declared.md"
    runner.compare(settings)
    assert (tmp_path / "results" / "declared.md").read_text().startswith("# Declared\n")
    assert not (tmp_path / "results" / "demo.md").exists()
