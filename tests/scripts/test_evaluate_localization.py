# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``scripts/evaluate_localization.py``: arguments, missing runs, one tiny end-to-end run (the evaluation itself:
``tests/bundle/test_localization_evaluation.py``)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from bundle.localization.compared_runs import RunInfo
from bundle.reports import code_state, code_text

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "evaluate_localization.py"


@pytest.fixture(scope="module")
def el():
    """The script as a module (scripts/ is on sys.path: tests/conftest.py)."""
    return importlib.import_module("evaluate_localization")


def _write_run(run_root: Path, method: str, datalist: Path, image_size=(16, 16), seed: int = 0) -> Path:
    """A finished run folder as scripts/compare_methods.py writes it, with a randomly initialised model.pt."""
    folder = run_root / method / f"seed{seed}"
    folder.mkdir(parents=True)
    overrides = {
        "image_size": list(image_size), "seed": seed, "datalist": str(datalist), "bundle_root": str(REPO),
        "ckpt_path": str(folder / "model.pt"), "output_dir": str(folder),
    }
    result = {
        "dataset": "tiny", "method": method, "spec": method, "slug": method, "display_name": f"{method} (tiny)",
        "seed": seed, "test": {"auroc": 0.5, "num_cases": 4}, "overrides": overrides,
        "eval_configs": ["configs/common.json", "configs/evaluate.json", f"configs/methods/{method}.json"],
        "command": "python scripts/compare_methods.py --dataset-name tiny (test)",
    }
    (folder / "result.json").write_text(json.dumps(result))
    run = RunInfo(method, folder, result)
    torch.manual_seed(0)
    network = run.parser().get_parsed_content("network_def")
    torch.save(network.state_dict(), folder / "model.pt")
    return folder


def _positives(tiny_dataset: Path) -> list[dict]:
    from bundle.datalist import load_datalist

    return [e for e in load_datalist(tiny_dataset / "datalist.json", "test", 2) if e["label"] == 1]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--top", "0"], "--top"),
        (["--output", "page.txt"], "must end with .md"),
        (["--tolerance-px", "-1"], "--tolerance-px"),
        (["--tolerance-px", "2", "2"], "--tolerance-px"),
        (["--methods", "../x"], "not a run folder name"),
        (["--device", "nonsense"], "--device"),
    ],
)
def test_invalid_arguments(el, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        el.main(["--run-root", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_explains_every_option(el):
    for action in el.build_parser()._actions:
        assert action.help, action.dest


def test_missing_runs_are_an_error_unless_skipped(el, tmp_path, capsys):
    assert el.main(["--run-root", str(tmp_path), "--methods", "mims_cnn", "--output", str(tmp_path / "a.md")]) == 2
    assert "mims_cnn" in capsys.readouterr().err
    assert not (tmp_path / "a.md").exists()


def test_end_to_end_tiny(el, tiny_dataset, tmp_path):
    datalist = tiny_dataset / "datalist.json"
    run_root = tmp_path / "runs"
    for method in ("mims_cnn", "mims_patchcls"):
        _write_run(run_root, method, datalist)
    (tmp_path / "notes.md").write_text("A note.\n")
    output = tmp_path / "results" / "localization.md"
    argv = [
        "--run-root", str(run_root), "--methods", "mims_cnn", "mims_patchcls", "mi_pre", "--skip-missing",
        "--output", str(output), "--notes", str(tmp_path / "notes.md"), "--threads", "1", "--device", "cpu",
        "--tolerance-px", "1", "0",
    ]
    assert el.main(argv) == 0

    report = json.loads(output.with_suffix(".json").read_text())
    num_positive = len(_positives(tiny_dataset))
    assert report["num_positive"] == num_positive == 2
    assert report["methods"]["mi_pre"] is None
    for method in ("mims_cnn", "mims_patchcls"):
        m = report["methods"][method]
        summary = m["summary"]
        assert summary["n"] + len(m["skipped_no_lesion"]) == num_positive
        assert set(summary["hit"]) == {"1", "3"} and set(summary["pointing"]) == {"layer", "input"}
        assert all(set(v) == {"0", "1"} for v in summary["pointing"].values())
        assert m["layers"] == {"layer": "backbone.layer2", "input": "input"}
        for case in m["cases"]:
            assert case["lesion_slices"] and set(case["hit"]) == {"1", "3"}
            assert all(0.0 <= v <= 1.0 for by_tolerance in case["pointing"].values() for v in by_tolerance.values())
            assert all(case["pointing"][h]["0"] <= case["pointing"][h]["1"] for h in case["pointing"])
            assert all(0.0 <= v <= 1.0 for v in case["auroc"].values())
    assert set(report["references"]) == {"random", "central"}
    assert report["settings"]["tolerance_px"] == [0.0, 1.0]

    page = output.read_text()
    for row in ("| mims_cnn (tiny) |", "| mims_patchcls (tiny) |", "| mi_pre (not run) |", "| *random* (reference) |",
                "| *central* (reference) |"):
        assert row in page
    assert ("hit@1 | hit@3 | score gap | pointing game (layer, 0 px) | pointing game (layer, 1 px) | "
            "pointing game (input, 0 px) | pointing game (input, 1 px) | heatmap AUROC (layer) | "
            "heatmap AUROC (input) |") in page
    header = next(line for line in page.splitlines() if line.startswith("| method"))
    assert all(line.count("|") == header.count("|") for line in page.splitlines() if line.startswith("| "))
    gap = report["methods"]["mims_cnn"]["summary"]["score_gap"]
    row = next(line for line in page.splitlines() if line.startswith("| mims_cnn (tiny) |"))
    gap_cell = row.split(" | ")[header.split(" | ").index("score gap")]
    assert gap_cell == (f"{gap['mean']:.3f}" + (f" ± {gap['sd']:.3f}" if gap["sd"] is not None else ""))
    assert "| *random* (reference) | uniform noise (in both) |" in page
    assert "## Notes\n\nA note." in page
    assert f"- Code: {code_text(code_state())}\n" in page
    assert "python scripts/compare_methods.py --dataset-name tiny (test)" in page
