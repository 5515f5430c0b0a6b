# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``scripts/compare_methods.py``: method specs, report rendering, run bookkeeping, one tiny real run."""

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

__all__: list[str] = []

COMPARE_REPO = Path(__file__).resolve().parents[2]
COMPARE_SCRIPT = COMPARE_REPO / "scripts" / "compare_methods.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cm():
    """The script as a module (scripts/ is on sys.path: tests/conftest.py)."""
    return importlib.import_module("compare_methods")


@pytest.fixture(scope="module")
def registry(cm):
    return cm.load_method_registry()


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


def _write_result(cm, settings, spec, seed, auroc, accuracy, f1, iteration_s, memory_mib, parameters=1000):
    """A hand-written result.json where the script expects it, with the settings of ``settings``."""
    folder = cm.run_folder(settings, spec, seed)
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "spec": spec.canonical, "seed": seed, "settings": cm.settings_key(settings),
        "test": {"auroc": auroc, "accuracy": accuracy, "f1": f1, "num_cases": 10},
        "eval_split": "test", "validation": {"metric": "auroc", "best": auroc, "best_epoch": 1},
        "cost": {"num_parameters": parameters, "train_iteration_s_median": iteration_s,
                 "peak_rss_increase_mib": memory_mib, "peak_cuda_allocated_mib": None},
        "date": f"2026-01-0{seed + 1}T10:00:00+00:00", "device": "cpu",
        "versions": {"python": "3.11", "torch": "2.13.0", "monai": "1.6.1"},
        "machine": {"cpu": "Test CPU", "usable_cores": 2, "logical_cores": 2},
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def _settings(cm, tmp_path, datalist, *methods, seeds=("0", "1", "2"), extra=()):
    argv = [*_common_args(tmp_path, datalist, *methods, seeds=seeds), *extra]
    args = cm.build_parser().parse_args(argv)
    return cm.validate_arguments(args, argv, cm.load_method_registry())


def _table(page: str, title: str) -> list[list[str]]:
    """The rows (cells) of the table under ``### title``, header first."""
    section = page.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")
            and not line.startswith("|---")]


# ------------------------------------------------------------------------------------------- method specs


def test_groups_expand_in_order_without_duplicates(cm, registry):
    specs = cm.expand_method_specs(["mi_pre_conv", "table1", "aggregation", "mims_cnn:top_k=3"], registry)
    expected = ["mi_pre_conv"] + [m for m in registry.TABLE1_METHODS if m != "mi_pre_conv"]
    expected += [m for m in registry.AGGREGATION_METHODS if m not in expected]
    assert [s.canonical for s in specs] == expected
    assert len({s.canonical for s in specs}) == len(specs)


@pytest.mark.parametrize(
    "text, overrides, canonical, slug, label",
    [
        ("mims_cnn", (), "mims_cnn", "mims_cnn", "MIMS"),
        ("mims_cnn:top_k=3", (("top_k", 3),), "mims_cnn:top_k=3", "mims_cnn__top_k-3", "MIMS (top_k=3)"),
        (" mims_cnn : top_k = 3 ", (("top_k", 3),), "mims_cnn:top_k=3", "mims_cnn__top_k-3", "MIMS (top_k=3)"),
        (
            "mi_pre:scales=[0.5,1.0],pretrained_weights=null,backbone_depth=18",
            (("backbone_depth", 18), ("pretrained_weights", None), ("scales", [0.5, 1.0])),
            "mi_pre:backbone_depth=18,pretrained_weights=null,scales=[0.5,1.0]",
            "mi_pre__backbone_depth-18__pretrained_weights-null__scales-0.5-1.0",
            "MI-Pre (backbone_depth=18, pretrained_weights=null, scales=[0.5,1.0])",
        ),
        (
            "mims_mean:note=plain text", (("note", "plain text"),), "mims_mean:note=plain text",
            "mims_mean__note-plain-text", "MIMS, mean pooling (note=plain text)",
        ),
    ],
)
def test_method_spec_parsing(cm, registry, text, overrides, canonical, slug, label):
    spec = cm.parse_method_spec(text, registry)
    assert spec.overrides == overrides
    assert (spec.canonical, spec.slug, spec.label) == (canonical, slug, label)


def test_spec_written_two_ways_is_one_spec(cm, registry):
    specs = cm.expand_method_specs(["mims_cnn:top_k=3,learning_rate=0.001", "mims_cnn:learning_rate=1e-3, top_k=3"],
                                   registry)
    assert len(specs) == 1


def test_unknown_method_lists_the_valid_names(cm, registry):
    with pytest.raises(ValueError) as e:
        cm.expand_method_specs(["mims_cnn", "no_such_method"], registry)
    message = str(e.value)
    assert "no_such_method" in message
    assert all(name in message for name in registry.METHODS) and "table1" in message and "aggregation" in message


@pytest.mark.parametrize(
    "text", ["mims_cnn:", "mims_cnn:top_k", "mims_cnn:=3", "mims_cnn:top_k=", "mims_cnn:top_k=3,top_k=4",
             "mims_cnn:seed=1"]
)
def test_malformed_method_spec_is_refused(cm, registry, text):
    with pytest.raises(ValueError):
        cm.parse_method_spec(text, registry)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("epochs=5", ("epochs", 5)),
        ("image_size=[32,32]", ("image_size", [32, 32])),
        ("learning_rate=1e-3", ("learning_rate", 0.001)),
        ("use_amp=true", ("use_amp", True)),
        ("pretrained_weights=null", ("pretrained_weights", None)),
        ("pretrained_weights=/a/b.pth", ("pretrained_weights", "/a/b.pth")),
        ("kernel_groups={\"2\": 8}", ("kernel_groups", {"2": 8})),
        ("train#dataset#cache_rate=0.5", ("train#dataset#cache_rate", 0.5)),
        ("device=$torch.device('cpu')", ("device", "$torch.device('cpu')")),
    ],
)
def test_override_values_are_json_or_text(cm, text, expected):
    assert cm.parse_override(text) == expected


@pytest.mark.parametrize("values, expected", [([], "–"), ([0.8], "0.800 ± –"), ([0.7, 0.8, 0.9], "0.800 ± 0.100"),
                                              ([1.0, 1.0], "1.000 ± 0.000")])
def test_mean_std_format(cm, values, expected):
    assert cm.format_mean_std(values) == expected


# -------------------------------------------------------------------------------------------- run setup


def test_run_spec_orders_configs_and_overrides(cm, tmp_path, datalist):
    overlay = tmp_path / "dataset.json"
    overlay.write_text("{}")
    settings = _settings(cm, tmp_path, datalist, "mims_cnn:top_k=3", seeds=("4",),
                         extra=["--config", str(overlay), "--override", "top_k=7", "epochs=2"])
    spec = settings.specs[0]
    run = cm.build_run_spec(settings, spec, 4, cm.load_method_registry())
    configs = COMPARE_REPO / "configs"
    assert run["train_configs"] == [str(configs / "common.json"), str(configs / "train.json"), str(overlay),
                                    str(configs / "methods" / "mims_cnn.json")]
    assert run["eval_configs"][1] == str(configs / "evaluate.json")
    assert run["eval_configs"][2:] == run["train_configs"][2:]
    folder = tmp_path / "runs" / "demo" / "mims_cnn__top_k-3" / "seed4"
    assert run["overrides"] == {
        "top_k": 3, "epochs": 2, "seed": 4, "datalist": str(datalist), "run_dir": str(folder / "run"),
        "ckpt_path": str(folder / "model.pt"), "output_dir": str(folder), "bundle_root": str(COMPARE_REPO),
        "experiment_name": "compare_demo", "run_name": "mims_cnn__top_k-3_seed4", "num_overlay_cases": 0,
    }
    assert run["tracking_db"] == str(tmp_path / "runs" / "demo" / "mlruns.db")


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
                            text=True, check=True)
    for action in cm.build_parser()._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in result.stdout


def test_failed_run_is_reported_and_the_others_continue(cm, tmp_path, datalist, monkeypatch, capsys):
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

    monkeypatch.setattr(cm, "launch_worker", fake_worker)
    argv = _common_args(tmp_path, datalist, "mi_pre", "mims_cnn", seeds=("0",))
    assert cm.main(argv) == 1
    out = capsys.readouterr().out
    failed_log = tmp_path / "runs" / "demo" / "mi_pre" / "seed0" / "worker.log"
    assert calls == ["mi_pre", "mims_cnn"]
    assert "[1/2] mi_pre seed 0: training ..." in out and "[2/2] mims_cnn seed 0: training ..." in out
    assert "[1/2] mi_pre seed 0: FAILED after" in out and f"(worker exit code 3); log: {failed_log}" in out
    assert re.search(r"\[2/2\] mims_cnn seed 0: done in [0-9.]+ s \(test auroc 0\.750\)", out)
    assert "1 done, 0 skipped, 1 failed of 2 run(s)" in out
    assert not failed_log.with_name("result.json").exists()
    page = (tmp_path / "results" / "demo.md").read_text()
    assert _table(page, "Methods (rows of the paper's Table 1)")[1][:2] == ["MI-Pre", "not run"]

    calls.clear()
    assert cm.main([*argv, "--fail-fast"]) == 1  # mims_cnn is done: only mi_pre runs again, and fails
    assert calls == ["mi_pre"] and "--fail-fast" in capsys.readouterr().out
    calls.clear()
    argv = _common_args(tmp_path, datalist, "mi_pre", "mims_cnn", "mims_mean", seeds=("0",))
    assert cm.main([*argv, "--fail-fast"]) == 1
    assert calls == ["mi_pre"]  # stopped before mims_mean


# ------------------------------------------------------------------------------------------------ report


def test_report_cells_not_run_rows_and_relative_columns(cm, tmp_path, datalist):
    settings = _settings(cm, tmp_path, datalist, "mi_pre", "mi_pre_conv", "mims_cnn")
    _, conv, mims = settings.specs
    for seed, (auroc, accuracy, f1) in enumerate([(0.7, 0.6, 0.5), (0.8, 0.7, 0.6), (0.9, 0.8, 0.7)]):
        _write_result(cm, settings, conv, seed, auroc, accuracy, f1, iteration_s=0.1, memory_mib=100.0)
    _write_result(cm, settings, mims, 1, 0.95, 0.9, 0.85, iteration_s=0.25, memory_mib=150.0, parameters=1234567)
    argv = [*_common_args(tmp_path, datalist, "mi_pre", "mi_pre_conv", "mims_cnn"), "--report-only"]
    assert cm.main(argv) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    assert page.count("\n### ") == 1  # all three are Table-1 rows: one table
    rows = _table(page, "Methods (rows of the paper's Table 1)")
    assert rows == [
        ["Method", "Test AUROC", "Test accuracy", "Test F1", "Seeds", "Parameters", "Train ms/iteration",
         "ms/it × MI-Pre-Conv", "Peak train memory increase (MiB)", "memory × MI-Pre-Conv"],
        ["MI-Pre", "not run", "–", "–", "0/3", "–", "–", "–", "–", "–"],
        ["MI-Pre-Conv", "0.800 ± 0.100", "0.700 ± 0.100", "0.600", "3/3", "1,000", "100.0", "1.00×", "100.0",
         "1.00×"],
        ["MIMS", "0.950 ± –", "0.900 ± –", "0.850", "1/3", "1,234,567", "250.0", "2.50×", "150.0", "1.50×"],
    ]
    assert "Columns marked × MI-Pre-Conv divide this row's mean by that of MI-Pre-Conv." in page
    assert re.search(r"^- Command: `python \S*compare_methods\.py --dataset-name demo .* --report-only`$", page, re.M)
    assert "- Machine of the runs: Test CPU, 2 usable of 2 logical cores; training device: cpu" in page
    assert "- Runs finished between 2026-01-01T10:00:00+00:00 and 2026-01-03T10:00:00+00:00" in page
    assert "## Discussion" not in page
    assert (tmp_path / "results" / "demo.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("request_reference", [False, True])
def test_relative_columns_omitted_without_mi_pre_conv(cm, tmp_path, datalist, request_reference):
    methods = ["mims_cnn", "mi_pre_conv"] if request_reference else ["mims_cnn"]
    settings = _settings(cm, tmp_path, datalist, *methods, seeds=("0",))
    _write_result(cm, settings, settings.specs[0], 0, 0.6, 0.5, 0.4, iteration_s=0.2, memory_mib=10.0)
    assert cm.main([*_common_args(tmp_path, datalist, *methods, seeds=("0",)), "--report-only"]) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    header = _table(page, "Methods (rows of the paper's Table 1)")[0]
    assert not any("×" in cell for cell in header)
    reason = "has no finished run" if request_reference else "was not among the requested methods"
    assert f"No columns relative to MI-Pre-Conv: `mi_pre_conv` {reason}." in page


def test_table1_and_aggregation_give_two_tables_and_others_a_third(cm, tmp_path, datalist, registry):
    methods = ["table1", "aggregation", "mims_cnn:top_k=9"]
    settings = _settings(cm, tmp_path, datalist, *methods, seeds=("0",))
    mims = next(s for s in settings.specs if s.canonical == "mims_cnn")
    _write_result(cm, settings, mims, 0, 0.9, 0.8, 0.7, iteration_s=0.2, memory_mib=10.0)
    assert cm.main([*_common_args(tmp_path, datalist, *methods, seeds=("0",)), "--report-only"]) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    table1 = _table(page, "Methods (rows of the paper's Table 1)")[1:]
    aggregation = _table(page, "MIL aggregation")[1:]
    other = _table(page, "Other method specs")[1:]
    assert [r[0] for r in table1] == [registry.METHODS[m] for m in registry.TABLE1_METHODS]
    # requested order: mims_cnn came with table1, before the rest of the aggregation group
    assert [r[0] for r in aggregation] == ["MIMS", "MIMS, mean pooling", "MIMS, max pooling (top-1)", "MIMS, max-inst",
                                           "MIMS (top_k=2)", "MIMS (top_k=3)", "MIMS (top_k=4)"]
    assert [r[0] for r in other] == ["MIMS (top_k=9)"]
    finished = ["MIMS", "0.900 ± –", "0.800 ± –", "0.700", "1/1", "1,000", "200.0", "10.0"]
    assert table1[registry.TABLE1_METHODS.index("mims_cnn")] == finished and aggregation[0] == finished
    assert sum(r[1] == "not run" for r in table1 + aggregation + other) == len(table1) + len(aggregation) + 1 - 2


def test_report_only_without_results(cm, tmp_path, datalist, capsys):
    assert cm.main([*_common_args(tmp_path, datalist, "mims_cnn", "mims_cnn:top_k=2"), "--report-only"]) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    rows = _table(page, "MIL aggregation")[1:]
    assert [r[:2] for r in rows] == [["MIMS", "not run"], ["MIMS (top_k=2)", "not run"]]
    assert "(no finished run yet)" in page
    assert (tmp_path / "results" / "demo.png").read_bytes()[:8] == PNG_MAGIC
    assert "report of 0 finished run(s)" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing was run


def test_notes_go_verbatim_under_discussion(cm, tmp_path, datalist):
    notes = tmp_path / "notes.md"
    notes.write_text("MIMS beats *everything* here.\n\n| a | b |\n")
    argv = [*_common_args(tmp_path, datalist, "mims_cnn"), "--report-only", "--notes", str(notes)]
    assert cm.main(argv) == 0
    page = (tmp_path / "results" / "demo.md").read_text()
    assert page.endswith("## Discussion\n\nMIMS beats *everything* here.\n\n| a | b |\n")


def test_results_of_other_settings_are_refused_or_not_reported(cm, tmp_path, datalist, capsys):
    settings = _settings(cm, tmp_path, datalist, "mims_cnn", seeds=("0",), extra=["--override", "epochs=3"])
    _write_result(cm, settings, settings.specs[0], 0, 0.9, 0.8, 0.7, iteration_s=0.2, memory_mib=10.0)
    argv = _common_args(tmp_path, datalist, "mims_cnn", seeds=("0",)) + ["--override", "epochs=4"]
    with pytest.raises(SystemExit) as e:
        cm.main(argv)
    assert e.value.code == 2 and "produced with other settings" in capsys.readouterr().err
    assert cm.main([*argv, "--report-only"]) == 0
    assert "other settings" in capsys.readouterr().err
    rows = _table((tmp_path / "results" / "demo.md").read_text(), "Methods (rows of the paper's Table 1)")
    assert rows[1][:2] == ["MIMS", "not run"]


# ------------------------------------------------------------------------------------- worker helpers


def test_iteration_timer_times_every_iteration(cm):
    from ignite.engine import Engine
    from monai.engines.utils import IterationEvents

    def step(engine, batch):
        time.sleep(0.01)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        time.sleep(0.01)

    engine = Engine(step)
    engine.register_events(*IterationEvents)
    timer = cm.IterationTimer()
    timer.attach(engine)
    engine.run([0, 1, 2], max_epochs=2)
    assert len(timer.iteration_s) == len(timer.model_step_s) == 6
    assert all(0.01 <= m < i for m, i in zip(timer.model_step_s, timer.iteration_s))


def test_incomplete_mlflow_runs_are_renamed_before_a_new_attempt(cm, tmp_path):
    from mlflow import MlflowClient

    run = cm.with_tracking_uri({"tracking_db": str(tmp_path / "mlruns.db"), "overrides": {},
                                "experiment": "compare_demo", "run_name": "mims_cnn_seed0"})
    client = MlflowClient(tracking_uri=run["overrides"]["tracking_uri"])
    experiment_id = client.create_experiment("compare_demo")
    crashed = client.create_run(experiment_id, run_name="mims_cnn_seed0").info.run_id  # still RUNNING
    other = client.create_run(experiment_id, run_name="mims_cnn_seed1").info.run_id
    cm.retire_incomplete_runs(run)
    assert client.get_run(crashed).info.run_name == f"mims_cnn_seed0_incomplete_{crashed[:8]}"
    assert client.get_run(crashed).info.status == "FAILED"
    assert client.get_run(other).info.run_name == "mims_cnn_seed1"


# --------------------------------------------------------------------------------------- end to end


def _tiny_overrides() -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in {**TINY, **TINY_TRAIN}.items()]


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def test_end_to_end_two_specs_then_resumed(cm, tiny_dataset, tmp_path):
    users_model = COMPARE_REPO / "models" / "model.pt"
    users_model_mtime = _mtime(users_model)
    argv = [
        sys.executable, str(COMPARE_SCRIPT), "--dataset-name", "tiny",
        "--datalist", str(tiny_dataset / "datalist.json"),
        "--methods", "mims_cnn", "mims_cnn:top_k=2", "--seeds", "0", "--output-root", str(tmp_path / "runs"),
        "--results-dir", str(tmp_path / "results"), "--quiet", "--override", *_tiny_overrides(),
    ]
    first = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
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
        assert r.data.metrics["test_auroc"] == pytest.approx(results[spec]["test"]["auroc"])
        assert {"test_accuracy", "test_f1", "num_parameters", "train_iteration_s_median",
                "peak_rss_increase_mib", "auroc", "train_loss"} <= set(r.data.metrics)
        assert r.info.run_id == results[spec]["mlflow"]["run_id"]

    page = (tmp_path / "results" / "tiny.md").read_text()
    assert [row[0] for row in _table(page, "MIL aggregation")[1:]] == ["MIMS", "MIMS (top_k=2)"]
    assert (tmp_path / "results" / "tiny.png").read_bytes()[:8] == PNG_MAGIC

    logs = {p: p.stat().st_mtime_ns for p in dataset_dir.glob("*/seed0/worker.log")}
    assert len(logs) == 2
    start = time.perf_counter()
    second = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    took = time.perf_counter() - start
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count(": skipped (") == 2 and "0 done, 2 skipped, 0 failed of 2 run(s)" in second.stdout
    assert took < 15.0  # no worker: the comparing process imports neither torch nor MONAI
    assert {p: p.stat().st_mtime_ns for p in logs} == logs
