# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A dataset of OCT vendor files trains, evaluates and infers through the bundle's configs like NIfTI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from oct_testing import write_topcon, write_vol

from bundle_testing import TINY, TINY_TRAIN, run_workflow


def _vol(path, volume):
    return write_vol(path.with_suffix(".vol"), volume.astype(np.float32) / 65535.0)


def _fds(path, volume):
    return write_topcon(path.with_suffix(".fds"), volume)


def _vendor_dataset(tiny_dataset, out, write):
    """The tiny dataset's volumes, each written as a vendor file, with a datalist of the same splits and labels."""
    datalist = json.loads((tiny_dataset / "datalist.json").read_text())
    out.mkdir()
    converted = {}
    for split in ("training", "validation", "test"):
        rows = []
        for entry in datalist[split]:
            array = np.asarray(nib.load(tiny_dataset / entry["image"]).dataobj, dtype=np.float64)
            scaled = np.round((array - array.min()) / max(np.ptp(array), 1e-8) * 65535).astype(np.uint16)
            path = write(out / entry["image"].replace("/", "_").replace(".nii.gz", ""), scaled)
            rows.append({"image": path.name, "label": entry["label"]})
        converted[split] = rows
    (out / "datalist.json").write_text(json.dumps(converted))
    return out


@pytest.mark.parametrize("write, suffix", [
    pytest.param(_fds, ".fds", id="topcon-fds"),
    pytest.param(_vol, ".vol", id="heidelberg-vol", marks=pytest.mark.slow),  # slow: the Topcon case covers the path
])
def test_vendor_files_train_evaluate_infer(tiny_dataset, tmp_path, write, suffix):
    if suffix == ".vol":
        pytest.importorskip("eyepy", reason="eyepy (reads .vol) not installed: pip install -e .[oct]")
    dataset = _vendor_dataset(tiny_dataset, tmp_path / "vendor", write)
    root = tmp_path / "bundle"
    root.mkdir()
    common = {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY}
    run_workflow(["common.json", "train.json"], "train", {**common, **TINY_TRAIN, "run_stamp": "oct"})
    assert (root / "models" / "model.pt").is_file()

    run_workflow(["common.json", "evaluate.json"], "eval", common)
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    assert metrics["num_cases"] == 4 and 0.0 <= metrics["auroc"] <= 1.0
    rows = list(csv.DictReader((root / "eval" / "predictions.csv").open()))
    assert len(rows) == 4 and all(row["case"].endswith(suffix) for row in rows)
    assert all(json.loads(row["slice_indices"]) == [1, 2, 3, 4, 5, 6] for row in rows)  # 6 central of 8 B-scans

    run_workflow(["common.json", "inference.json"], "infer", {**common, "input": str(dataset)})
    predictions = json.loads((root / "eval" / "inference" / "predictions.json").read_text())
    assert len(predictions) == 12 and all(p["case"].endswith(suffix) for p in predictions)
    assert all(p.get("status", "ok") == "ok" for p in predictions)

    # explanations keep the vendor file's geometry: the heatmap volume has the B-scans' voxel spacing
    from transforms import LoadVolume

    run_workflow(["common.json", "inference.json"], "infer",
                 {**common, "input": str(dataset), "localize": True, "infer_output_dir": str(root / "explained")})
    predictions = json.loads((root / "explained" / "predictions.json").read_text())
    case = predictions[0]["case"]
    # named after the file without its suffix
    heatmap = nib.load(root / "explained" / "localization" / f"{Path(case).stem}_heatmap.nii.gz")
    spacing = np.sqrt((np.asarray(LoadVolume()(case).affine)[:3, :3] ** 2).sum(axis=0))
    assert heatmap.shape == (32, 32, 8)
    np.testing.assert_allclose(heatmap.header.get_zooms()[:3], spacing, rtol=1e-5)
    assert not np.allclose(spacing, 1.0)  # the file's spacing, not a default
