# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``scripts/compare_methods.py``: its options, usage errors, the page's command, one tiny real run.

The engine (method specs, settings, runner, worker, report) is tested under ``tests/bundle/``
(``test_methods.py``, ``test_comparison_*.py``).
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bundle_testing import TINY, TINY_TRAIN

from bundle.comparison import runner
from bundle.comparison.settings import run_folder, settings_key

__all__: list[str] = []

COMPARE_REPO = Path(__file__).resolve().parents[2]
COMPARE_SCRIPT = COMPARE_REPO / "scripts" / "compare_methods.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cm():
    """The script as a module (scripts/ is on sys.path: tests/conftest.py)."""
    return importlib.import_module("compare_methods")


@pytest.fixture
def datalist(tmp_path) -> Path:
    """A datalist file for argument validation (its content is never read by the report)."""
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [], "validation": [], "test": []}))
    return path


def _common_args(tmp_path, datalist, *methods, seeds=("0", "1", "2")):
    return [
        "--dataset-name", "demo", "--datalist", str(datalist), "--methods", *methods, "--seeds", *seeds,
        "--output-root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
    ]


def _settings(cm, tmp_path, datalist, *methods, seeds=("0", "1", "2"), extra=()):
    argv = [*_common_args(tmp_path, datalist, *methods, seeds=seeds), *extra]
    return cm.validate_arguments(cm.build_parser().parse_args(argv), argv)


def _write_result(settings, spec, seed, auroc):
    """A hand-written result.json where the comparison expects it, with the settings of ``settings``."""
    folder = run_folder(settings, spec, seed)
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "spec": spec.canonical, "seed": seed, "settings": settings_key(settings), "test": {"auroc": auroc},
        "cost": {"num_parameters": 1000, "train_iteration_s_median": 0.1, "peak_rss_increase_mib": 10.0},
        "date": f"2026-01-0{seed + 1}T10:00:00+00:00", "device": "cpu",
        "machine": {"cpu": "Test CPU", "usable_cores": 2, "logical_cores": 2}, "command": settings.command,
    }
    (folder / "result.json").write_text(json.dumps(result))


def _table(page: str, title: str) -> list[list[str]]:
    """The rows (cells) of the table under ``### title``, header first."""
    section = page.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")
            and not line.startswith("|---")]


# ---------------------------------------------------------------------------------------------- options


def test_options_reach_the_settings(cm, tmp_path, datalist):
    overlay = tmp_path / "dataset.json"
    overlay.write_text("{}")
    notes = tmp_path / "notes.md"
    notes.write_text("notes")
    settings = _settings(cm, tmp_path, datalist, "table1", "mims_cnn:top_k=3", seeds=("4", "2"), extra=[
        "--config", str(overlay), "--override", "epochs=2", "image_size=[32,32]", "--notes", str(notes),
        "--report-only", "--fail-fast", "--quiet"])
    assert settings.dataset_name == "demo" and settings.datalist == datalist and settings.configs == [overlay]
    assert settings.overrides == {"epochs": 2, "image_size": [32, 32]} and settings.seeds == [4, 2]
    assert settings.specs[-1].canonical == "mims_cnn:top_k=3" and len(settings.specs) == 12
    assert (settings.output_root, settings.results_dir) == (tmp_path / "runs", tmp_path / "results")
    assert settings.records_dir == tmp_path / "results" / "records"  # default: <results-dir>/records
    assert settings.notes == notes and settings.report_only and settings.fail_fast and settings.quiet
    assert re.fullmatch(r"python \S*compare_methods\.py --dataset-name demo .* --quiet", settings.command)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (["--datalist", "missing.json"], "does not exist"),
        (["--config", "missing_overlay.json"], "does not exist"),
        (["--override", "epochs"], "key=value"),
        (["--override", "seed=3"], "set by this script"),
        (["--methods", "mims_cnn", "nope"], "valid methods: mims_cnn"),
        (["--dataset-name", "a/b"], "--dataset-name"),
        (["--seeds", "1", "1"], "distinct"),
        (["--notes", "missing.md"], "does not exist"),
    ],
)
def test_invalid_arguments_fail_before_any_work(cm, tmp_path, datalist, capsys, bad, fragment):
    argv = _common_args(tmp_path, datalist, "mims_cnn") + bad  # later options win
    with pytest.raises(SystemExit) as e:
        cm.main(argv)
    assert e.value.code == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_help_explains_every_option(cm, tmp_path):
    result = subprocess.run([sys.executable, str(COMPARE_SCRIPT), "--help"], cwd=tmp_path, capture_output=True,
                            encoding="utf-8", check=True)
    for action in cm.build_parser()._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in result.stdout


def test_report_only_writes_the_page_with_the_command(cm, tmp_path, datalist, capsys):
    settings = _settings(cm, tmp_path, datalist, "mi_pre_conv", seeds=("0",))
    _write_result(settings, settings.specs[0], 0, 0.8)
    argv = [*_common_args(tmp_path, datalist, "mi_pre_conv", seeds=("0",)), "--report-only"]
    assert cm.main(argv) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    # the page names the command that produced the records (here the one of _settings, without --report-only)
    assert re.search(r"^- Commands: `python \S*compare_methods\.py --dataset-name demo .* --seeds 0 --output-root "
                     r"\S+ --results-dir \S+`$", page, re.M)
    assert _table(page, "Methods (the paper's Table 1)")[1][:2] == ["MI-Pre-Conv", "0.800"]
    assert (tmp_path / "results" / "demo.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "results" / "records" / "demo" / "mi_pre_conv" / "seed0.json").is_file()
    assert "page of 1 record(s)" in capsys.readouterr().out


def test_a_failed_run_gives_exit_code_1(cm, tmp_path, datalist, monkeypatch, capsys):
    monkeypatch.setattr(runner, "launch_worker", lambda spec_path, log_path, quiet, on_phase: 3)
    assert cm.main(_common_args(tmp_path, datalist, "mi_pre", seeds=("0",))) == 1
    assert "0 done, 0 skipped, 1 failed of 1 run(s)" in capsys.readouterr().out


def test_results_of_other_settings_are_refused_or_not_reported(cm, tmp_path, datalist, capsys):
    settings = _settings(cm, tmp_path, datalist, "mims_cnn", seeds=("0",), extra=["--override", "epochs=3"])
    _write_result(settings, settings.specs[0], 0, 0.9)
    argv = _common_args(tmp_path, datalist, "mims_cnn", seeds=("0",)) + ["--override", "epochs=4"]
    with pytest.raises(SystemExit) as e:
        cm.main(argv)
    assert e.value.code == 2 and "produced with other settings" in capsys.readouterr().err
    assert cm.main([*argv, "--report-only"]) == 0
    assert "other settings" in capsys.readouterr().err
    rows = _table((tmp_path / "results" / "demo.md").read_text(), "Methods (the paper's Table 1)")
    assert rows[1][:2] == ["MIMS", "not run"]


# --------------------------------------------------------------------------------------- end to end


def _tiny_overrides() -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in {**TINY, **TINY_TRAIN}.items()]


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


# slow (default suite under 15 min): trains two specs in worker processes
@pytest.mark.slow
def test_end_to_end_two_specs_then_resumed(tiny_dataset, tmp_path):
    users_model = COMPARE_REPO / "models" / "model.pt"
    users_model_mtime = _mtime(users_model)
    argv = [
        sys.executable, str(COMPARE_SCRIPT), "--dataset-name", "tiny",
        "--datalist", str(tiny_dataset / "datalist.json"),
        "--methods", "mims_cnn", "mims_cnn:top_k=2", "--seeds", "0", "--output-root", str(tmp_path / "runs"),
        "--results-dir", str(tmp_path / "results"), "--quiet", "--override", *_tiny_overrides(),
    ]
    first = subprocess.run(argv, capture_output=True, encoding="utf-8", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[1/2] mims_cnn seed 0: training ..." in first.stdout
    assert "[2/2] mims_cnn:top_k=2 seed 0: evaluating ..." in first.stdout
    dataset_dir = tmp_path / "runs" / "tiny"
    results = {}
    for slug, spec in (("mims_cnn", "mims_cnn"), ("mims_cnn__top_k-2", "mims_cnn:top_k=2")):
        result = json.loads((dataset_dir / slug / "seed0" / "result.json").read_text())
        results[spec] = result
        assert result["spec"] == spec and result["seed"] == 0 and result["epochs"] == 1
        assert 0.0 <= result["test"]["auroc"] <= 1.0 and {"accuracy", "f1"} <= set(result["test"])
        assert result["test"]["num_cases"] == 4 and result["eval_split"] == "test"
        cost = result["cost"]
        assert cost["num_parameters"] > 0 and cost["timed_iterations"] == 2
        assert 0.0 < cost["train_model_step_s_median"] <= cost["train_iteration_s_median"] < cost["train_wall_s"]
        assert cost["peak_rss_increase_mib"] >= 0.0 and cost["peak_cuda_allocated_mib"] is None
        assert result["train_configs"][-1] == "configs/methods/mims_cnn.json"
        assert (dataset_dir / slug / "seed0" / "model.pt").is_file()
        assert set(result["versions"]) == {"python", "torch", "monai"}
        assert set(result["machine"]) == {"cpu", "logical_cores", "usable_cores", "platform", "system"}
        log = (dataset_dir / slug / "seed0" / "worker.log").read_text()
        assert log.startswith(f"$ {sys.executable} -m bundle.comparison.worker ")
    assert results["mims_cnn:top_k=2"]["overrides"]["top_k"] == 2 and "top_k" not in results["mims_cnn"]["overrides"]
    assert all(r["overrides"]["ckpt_path"].startswith(str(dataset_dir)) for r in results.values())
    assert _mtime(users_model) == users_model_mtime  # the bundle's own models/model.pt is never touched

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri="sqlite:///" + str(dataset_dir / "mlruns.db"))
    experiments = [e.name for e in client.search_experiments()]
    assert "compare_tiny" in experiments and len([e for e in experiments if e != "Default"]) == 1
    runs = client.search_runs([client.get_experiment_by_name("compare_tiny").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["mims_cnn__top_k-2_seed0", "mims_cnn_seed0"]
    for r in runs:
        assert r.info.status == "FINISHED"
        spec = r.data.tags["compare_methods.spec"]
        assert r.data.tags["compare_methods.dataset"] == "tiny"
        assert r.data.metrics["test_auroc"] == pytest.approx(results[spec]["test"]["auroc"])
        assert {"test_accuracy", "test_f1", "num_parameters", "train_iteration_s_median",
                "peak_rss_increase_mib", "auroc", "train_loss"} <= set(r.data.metrics)
        assert r.info.run_id == results[spec]["mlflow"]["run_id"]

    for slug, result in zip(("mims_cnn", "mims_cnn__top_k-2"), results.values()):
        record = json.loads((tmp_path / "results" / "records" / "tiny" / slug / "seed0.json").read_text())
        assert record["test"] == result["test"] and "tracking_uri" not in json.dumps(record)
        assert record["curves"]["epoch"] == [1] and len(record["curves"]["train_loss"]) == 1
        assert "val_auroc" in record["curves"] and len(record["test_cases"]) == 4
        assert all(isinstance(c[0], str) and "/" not in c[0] for c in record["test_cases"])
        assert record["load"]["samples"] >= 2 and len(record["code"]["commit"]) == 40
        assert "decision_threshold" in record
    page = (tmp_path / "results" / "tiny.md").read_text()
    assert [row[0] for row in _table(page, "MIL aggregation")[1:]] == ["MIMS", "MIMS (top_k=2)"]
    assert (tmp_path / "results" / "tiny.png").read_bytes()[:8] == PNG_MAGIC

    logs = {p: p.stat().st_mtime_ns for p in dataset_dir.glob("*/seed0/worker.log")}
    assert len(logs) == 2
    start = time.perf_counter()
    second = subprocess.run(argv, capture_output=True, encoding="utf-8", cwd=tmp_path)
    took = time.perf_counter() - start
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count(": skipped (") == 2 and "0 done, 2 skipped, 0 failed of 2 run(s)" in second.stdout
    assert took < 15.0  # no worker: the comparing process imports neither torch nor MONAI
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
