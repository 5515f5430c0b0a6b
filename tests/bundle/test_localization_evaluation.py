# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.localization.evaluation`` and its helpers: rankings, the lesion-mask pipeline, runs, the compact JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bundle.config import CONFIGS, REPO, config_parser
from bundle.localization.compared_runs import RunInfo, find_runs, runs_datalist
from bundle.localization.evaluation import case_metrics, central_ranking, stable_ranking, summarise
from bundle.localization.evaluation_page import compact_json, format_rate, format_stat, render_page, tolerance_key
from bundle.localization.mask_pipeline import datalist_entry_name, mask_pipeline

__all__: list[str] = []

RESULTS = REPO / "docs" / "results"
#: the committed localization pages, each written with its JSON (every case's numbers) beside it
LOCALIZATION_PAGES = sorted(p for p in RESULTS.glob("localization*.md") if p.with_suffix(".json").is_file())


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([0.5, 2.0, 0.0, 2.0, 0.0], [1, 3, 0, 2, 4]),  # ties keep bag order
        ([0.0, -1.0, float("-inf"), 0.3], [3, 0, 1]),  # padding (-inf) dropped
    ],
)
def test_stable_ranking(scores, expected):
    assert stable_ranking(torch.tensor(scores)) == expected


@pytest.mark.parametrize("n, expected", [(1, [0]), (4, [1, 2, 0, 3]), (5, [2, 1, 3, 0, 4])])
def test_central_ranking(n, expected):
    assert central_ranking(n) == expected


def _positives(tiny_dataset: Path) -> list[dict]:
    from bundle.datalist import load_datalist

    return [e for e in load_datalist(tiny_dataset / "datalist.json", "test", 2) if e["label"] == 1]


def test_mask_pipeline_follows_the_image(tiny_dataset):
    configs = [CONFIGS / "common.json", CONFIGS / "evaluate.json", CONFIGS / "methods" / "mi_pre.json"]
    overrides = {"image_size": [16, 8], "datalist": str(tiny_dataset / "datalist.json"), "bundle_root": str(REPO)}
    prepare = mask_pipeline(config_parser(configs, overrides).get_parsed_content("preprocessing"))
    import nibabel as nib
    import numpy as np

    for entry in _positives(tiny_dataset):
        image, mask, indices = prepare(entry)
        assert image.shape == (8, 1, 16, 8) and mask.shape == (8, 16, 8) and mask.dtype == torch.bool
        assert indices.tolist() == list(range(8))  # 8 slices <= eval_num_slices: all kept
        raw = np.asarray(nib.load(entry["mask"]).dataobj) != 0  # [32, 32, 8]
        expected = torch.from_numpy(raw[::2, ::4, :]).permute(2, 0, 1)  # nearest: every 2nd row, 4th column
        assert torch.equal(mask, expected)
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_mask_pipeline_follows_grid_patches(tmp_path):
    """A 2-D image as a bag of patches: the mask is cut on the same grid and keeps the image's patches."""
    import numpy as np
    from PIL import Image

    image = np.full((20, 28), 255, dtype=np.uint8)
    image[4:9, 10:15] = 30  # dark tissue in patch 1 (10 x 10 patches: a 2 x 3 grid)
    image[12:20, 0:6] = 20  # and in patch 3
    mask = np.zeros((20, 28), dtype=np.uint8)
    mask[5:7, 11:13] = 1  # a lesion inside patch 1
    Image.fromarray(image).save(tmp_path / "slide.png")
    Image.fromarray(mask).save(tmp_path / "slide_mask.png")
    configs = [CONFIGS / "common.json", CONFIGS / "evaluate.json", CONFIGS / "datasets" / "patch_bags.json"]
    overrides = {"patch_size": [10, 10], "tissue_threshold": 0.5, "min_tissue_fraction": 0.2, "bundle_root": str(REPO)}
    prepare = mask_pipeline(config_parser(configs, overrides).get_parsed_content("preprocessing"))
    patches, masks, indices = prepare({"image": str(tmp_path / "slide.png"), "mask": str(tmp_path / "slide_mask.png")})
    assert indices.tolist() == [1, 3] and patches.shape == (2, 1, 10, 10) and masks.shape == (2, 10, 10)
    expected = torch.zeros(2, 10, 10, dtype=torch.bool)
    expected[0, 5:7, 1:3] = True  # patch 1 starts at (0, 10); patch 3 (row 1, column 0) has no lesion
    assert torch.equal(masks, expected)


def test_mask_pipeline_rejects_unknown_step():
    from monai.transforms import Compose, RandFlipd

    with pytest.raises(ValueError, match="RandFlipd"):
        mask_pipeline(Compose([RandFlipd(keys="image")]))


def test_compact_json_round_trip():
    value = {"a": [1, 2.5, -3e-05, True, None], "b": {"c": [[1, 2], [3]], "d": ["x  y", "z"]},
             "h": {"1": True, "3": False}, "p": {"layer": {"0": 0.5, "4": 1.0}}, "e": [], "q": {"a,b": 1}}
    text = compact_json(value)
    assert json.loads(text) == value
    assert '"a": [1, 2.5, -3e-05, true, null]' in text and '"layer": {"0": 0.5, "4": 1.0}' in text
    with pytest.raises(ValueError):
        compact_json({"x": float("nan")})


def test_datalist_entry_name_and_tolerance_key():
    assert datalist_entry_name({"image": "/data/case_007.nii.gz", "mask": "/data/mask_007.nii.gz"}) == "case_007.nii.gz"
    assert [tolerance_key(t) for t in (0.0, 4.0, 1.5)] == ["0", "4", "1.5"]


def _result(tmp_path: Path, method: str, **result) -> Path:
    folder = tmp_path / method / "seed0"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "model.pt").write_bytes(b"")
    return folder


def test_find_runs_and_their_datalist(tmp_path):
    configs = ["configs/common.json", "/abs/other.json"]
    _result(tmp_path, "a", eval_configs=configs, seed=0, overrides={"datalist": "d.json"}, display_name="A")
    _result(tmp_path, "b", eval_configs=configs, overrides={"datalist": "d.json"})
    (tmp_path / "c" / "seed0").mkdir(parents=True)  # no result.json: not finished
    runs, missing = find_runs(tmp_path, ["b", "c", "a"], seed=0)
    assert [r.method for r in runs] == ["b", "a"] and missing == ["c"]
    assert runs[1].display_name == "A" and runs[0].display_name == "b"
    assert runs[0].configs == [REPO / "configs" / "common.json", Path("/abs/other.json")]
    assert runs[0].checkpoint == tmp_path / "b" / "seed0" / "model.pt"
    assert runs_datalist(runs) == Path("d.json")
    other = RunInfo("x", tmp_path, {"overrides": {"datalist": "e.json"}})
    with pytest.raises(ValueError, match="different or unrecorded datalists"):
        runs_datalist([*runs, other])
    with pytest.raises(ValueError, match="different or unrecorded datalists"):
        runs_datalist([RunInfo("y", tmp_path, {})])


def test_find_runs_rejects_foreign_results(tmp_path):
    _result(tmp_path, "a")
    with pytest.raises(ValueError, match="no 'eval_configs'"):
        find_runs(tmp_path, ["a"], seed=0)
    _result(tmp_path, "b", seed=1, eval_configs=[])
    with pytest.raises(ValueError, match="seed 1, not 0"):
        find_runs(tmp_path, ["b"], seed=0)


def test_case_metrics_and_summary_exact():
    mask = torch.zeros(3, 2, 2, dtype=torch.bool)
    mask[1, 0, 0] = True
    heat = torch.zeros(3, 2, 2)
    heat[1, 0, 0] = 2.0
    first = case_metrics([2, 1, 0], {"layer": heat}, mask, tops=[1, 3], tolerances=[0.0, 1.0])
    assert first["lesion_positions"] == [1] and first["ranking_top5"] == [2, 1, 0]
    assert first["hit"] == {"1": False, "3": True}
    assert first["pointing"] == {"layer": {"0": 1.0, "1": 1.0}} and first["auroc"] == {"layer": 1.0}
    second = case_metrics([1], {"layer": -heat}, mask, tops=[1, 3], tolerances=[0.0, 1.0])
    assert second["hit"] == {"1": True, "3": True} and second["auroc"] == {"layer": 0.0}
    assert case_metrics([], {}, mask, tops=[1], tolerances=[0.0])["hit"] is None
    summary = summarise([first, second], [1, 3], ["layer"])
    assert summary["n"] == 2 and summary["hit"] == {"1": {"hits": 1, "n": 2}, "3": {"hits": 2, "n": 2}}
    assert summary["auroc"]["layer"]["mean"] == pytest.approx(0.5) and summary["auroc"]["layer"]["n"] == 2
    assert format_rate(summary["hit"]["1"]) == "0.500 (1/2)" and format_rate(None) == "–"
    assert format_stat(summary["auroc"]["layer"], True) == "0.500 ± 0.707"
    assert format_stat(summary["auroc"]["layer"], False) == "0.500" and format_stat({"mean": None}, True) == "–"


def test_localization_pages_are_declared():
    assert {p.name for p in LOCALIZATION_PAGES} >= {"localization.md", "localization_large2d_lesion6-9.md"}


@pytest.mark.parametrize("page", LOCALIZATION_PAGES, ids=lambda p: p.name)
def test_committed_localization_pages_equal_their_json(page):
    """A page is what its JSON gives: a change of the page's layout regenerates every page (or keeps old reports
    as they were, like the score-gap column a report from before it does not have)."""
    report = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
    assert page.read_text(encoding="utf-8") == render_page(report)


def _preprocessing_line(report: dict) -> str:
    return next(line for line in render_page(report).splitlines() if line.startswith("- Preprocessing"))


def test_page_describes_patch_bags_and_volumes_in_their_own_words():
    report = json.loads((RESULTS / "localization.json").read_text(encoding="utf-8"))
    assert _preprocessing_line(report) == (
        "- Preprocessing (of the runs; the reference rows use that of `mims_cnn`): slices `[64, 96]` (h, w), the "
        "central 30 slices along spatial axis 2; the mask takes the same spatial steps with nearest-neighbour "
        "resizing and is binarised (non-zero = lesion)")
    first = next(m for m in report["methods"].values() if m is not None)
    first["preprocessing"].update(image_size=[64, 64], patch_size=[64, 64], patch_overlap=0.0, tissue_threshold=None)
    assert _preprocessing_line(report) == (
        "- Preprocessing (of the runs; the reference rows use that of `mims_cnn`): each image tiled into patches "
        "`[64, 64]` (h, w; overlap 0.0), every patch of the grid, each resized to `[64, 64]`; the mask takes the "
        "same spatial steps with nearest-neighbour resizing and is binarised (non-zero = lesion)")
    assert "read *patch* for *slice*" in render_page(report)
    first["preprocessing"].update(tissue_threshold=0.8, tissue_side="below", min_tissue_fraction=0.5)
    assert "`[64, 64]` (h, w; overlap 0.0), the patches with at least 0.5 of their pixels below 0.8 (tissue), " \
        in _preprocessing_line(report)


def test_score_gap_column_only_where_the_report_has_it():
    old = json.loads((RESULTS / "localization.json").read_text(encoding="utf-8"))
    new = json.loads((RESULTS / "localization_large2d_lesion6-9.json").read_text(encoding="utf-8"))
    assert "score gap" not in render_page(old) and "| score gap |" in render_page(new)
    header = next(line for line in render_page(old).splitlines() if line.startswith("| method |"))
    separator = next(line for line in render_page(old).splitlines() if line.startswith("|---|"))
    assert header.count("|") == separator.count("|")
