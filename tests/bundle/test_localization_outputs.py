# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Localization outputs: inference with ``localize`` on, validation overlays in MLflow, handler contracts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from PIL import Image

from bundle.localization import LocalizationWriter, ValidationOverlayLogger
from bundle_testing import CONFIGS, TINY, TINY_TRAIN, run_workflow

INFERENCE = ["common.json", "inference.json"]
TRAIN = ["common.json", "train.json"]


def _tiny_network():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update(TINY)
    return parser.get_parsed_content("network_def")


@pytest.fixture
def random_checkpoint(bundle_root) -> Path:
    """A randomly initialised (seeded) network saved where the inference config loads it from."""
    torch.manual_seed(0)
    path = bundle_root / "models" / "model.pt"
    path.parent.mkdir()
    torch.save(_tiny_network().state_dict(), path)
    return path


def _png(path: Path) -> tuple[str, tuple[int, int]]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.mode, image.size


def _infer(bundle_root, dataset, **extra):
    overrides = {"bundle_root": str(bundle_root), "dataset_dir": str(dataset), **TINY, **extra}
    return run_workflow(INFERENCE, "infer", overrides)


def _inputs_with_world_coordinates(tiny_dataset, folder: Path) -> Path:
    """One tiny test volume as an oblique NIfTI and as an NRRD with its own origin, spacing and directions."""
    import SimpleITK as sitk

    folder.mkdir()
    source = sorted((tiny_dataset / "images").glob("*.nii.gz"))[0]
    data = np.asarray(nib.load(source).dataobj, dtype=np.float32)
    c, s = np.cos(0.5), np.sin(0.5)
    affine = np.array(
        [[0.5 * c, -2.0 * s, 0.0, 10.0], [0.5 * s, 2.0 * c, 0.0, -20.0], [0.0, 0.0, 3.0, 5.0], [0.0, 0.0, 0.0, 1.0]]
    )
    nib.save(nib.Nifti1Image(data, affine), folder / "oblique.nii.gz")
    image = sitk.GetImageFromArray(np.transpose(data))  # SimpleITK arrays are (z, y, x)
    image.SetOrigin((1.0, 2.0, 3.0))
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0))
    sitk.WriteImage(image, str(folder / "scan.nrrd"))
    return folder


def test_inference_localize_writes_aligned_heatmaps(tiny_dataset, bundle_root, random_checkpoint):
    import SimpleITK as sitk

    inputs = _inputs_with_world_coordinates(tiny_dataset, bundle_root / "inputs")
    _infer(bundle_root, tiny_dataset, input=str(inputs), localize=True)  # 6 central of 8 slices each
    out = bundle_root / "eval" / "inference"
    rows = json.loads((out / "predictions.json").read_text())
    csv_rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [Path(r["case"]).name for r in rows] == ["oblique.nii.gz", "scan.nrrd"] and len(csv_rows) == 2
    peaks = []
    for row, csv_row in zip(rows, csv_rows):
        assert row["slice_indices"] == [1, 2, 3, 4, 5, 6]
        assert len(row["key_slices"]) == 3 and set(row["key_slices"]) <= set(row["slice_indices"])
        scores = row["key_slice_scores"]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert row["heatmap_class"] == row["prediction"]
        assert json.loads(csv_row["key_slices"]) == row["key_slices"]

        stem = Path(row["case"]).name.split(".")[0]
        heatmap_path = out / "localization" / f"{stem}_heatmap.nii.gz"
        # the same grid in world coordinates as the input, as ITK (ITK-SNAP, 3D Slicer) reads both files
        source, heatmap = sitk.ReadImage(row["case"]), sitk.ReadImage(str(heatmap_path))
        assert heatmap.GetSize() == source.GetSize() == (32, 32, 8)
        for geometry in ("GetOrigin", "GetSpacing", "GetDirection"):
            np.testing.assert_allclose(getattr(heatmap, geometry)(), getattr(source, geometry)(), atol=1e-5)
        if row["case"].endswith(".nii.gz"):
            np.testing.assert_allclose(nib.load(heatmap_path).affine, nib.load(row["case"]).affine, atol=1e-5)
        values = np.asarray(nib.load(heatmap_path).dataobj)
        assert values.min() >= 0.0 and values.max() <= 255.0
        assert not values[..., [0, 7]].any()  # slices outside the evaluated window stay 0
        assert values[..., 1:7].reshape(-1, 6).any(axis=0).sum() >= 3  # the evaluated ones carry heat
        peaks.append(values.max())

        # one value per evaluated slice: the slice's instance score, the best key slice holding the largest
        instance = np.asarray(nib.load(out / "localization" / f"{stem}_instance_scores.nii.gz").dataobj)
        assert instance.shape == (32, 32, 8) and not instance[..., [0, 7]].any()
        per_slice = instance[0, 0, :]
        assert np.all(instance == per_slice[None, None, :])
        assert per_slice[row["key_slices"][0]] == pytest.approx(max(per_slice[1:7]), abs=1e-6)
        assert per_slice[row["key_slices"][0]] == pytest.approx(scores[0], abs=1e-5)

        for index in row["key_slices"]:
            assert _png(out / "localization" / f"{stem}_slice{index}.png") == ("RGB", (32, 32))
        mode, (width, height) = _png(out / "localization" / f"{stem}_montage.png")
        assert mode == "RGB" and width >= 3 * 32 and height >= 2 * 32  # 6 slices in 3 columns
    assert max(peaks) > 128  # each volume's peak is scaled to 255 before the bilinear resizing


def test_inference_localize_on_2d_images_and_switch_off(tiny_dataset, bundle_root, random_checkpoint):
    images = bundle_root / "images_2d"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8)).save(images / "grey.png")
    # the switch as the command line gives it (python-fire passes the string "true")
    _infer(bundle_root, tiny_dataset, input=str(images), localize="true")
    out = bundle_root / "eval" / "inference"
    (row,) = json.loads((out / "predictions.json").read_text())
    assert row["key_slices"] == [0] and row["slice_indices"] == [0]
    written = sorted(p.name for p in (out / "localization").iterdir())
    # no NIfTI (heatmap or instance scores) without world coordinates
    assert written == ["grey_heatmap.png", "grey_montage.png", "grey_slice0.png"]
    assert _png(out / "localization" / "grey_heatmap.png") == ("L", (50, 40))  # the input's size
    assert _png(out / "localization" / "grey_slice0.png") == ("RGB", (32, 32))

    _infer(bundle_root, tiny_dataset, input=str(images), localize="false", infer_output_dir=str(bundle_root / "off"))
    (row,) = json.loads((bundle_root / "off" / "predictions.json").read_text())
    assert "key_slices" not in row and not (bundle_root / "off" / "localization").exists()


def test_tracked_training_logs_validation_overlays(tiny_dataset, bundle_root):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    overrides = {"bundle_root": str(bundle_root), "dataset_dir": str(tiny_dataset), **TINY, **TINY_TRAIN}
    overrides["run_stamp"] = "ov"
    run_workflow(TRAIN, "train", overrides, "mlflow")
    epoch_1 = bundle_root / "runs" / "train_synthetic_oct_ov" / "overlays" / "epoch_001"
    written = sorted(p.name for p in epoch_1.iterdir())
    validation = json.loads((tiny_dataset / "datalist.json").read_text())["validation"]
    positives = [Path(c["image"]).name[: -len(".nii.gz")] for c in validation if c["label"] == 1][:2]
    assert written == sorted(f"{p}_montage.png" for p in positives)

    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(bundle_root / "eval" / "mlruns.db")))
    (run,) = client.search_runs([client.get_experiment_by_name("mims_cnn").experiment_id])
    logged = sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, "overlays/epoch_001"))
    assert logged == written


def _fake_batch(label: int, name: str) -> dict:
    image = MetaTensor(torch.rand(4, 1, 16, 16), meta={"filename_or_obj": f"/data/{name}.nii.gz"})
    return {
        "image": image,
        "mask": torch.tensor([True, True, True, False]),
        "slice_indices": torch.tensor([2, 3, 4, -1]),
        "label": torch.tensor(label),
    }


def test_validation_overlays_pick_positives_and_leave_training_alone(tmp_path):
    torch.manual_seed(0)
    network = _tiny_network()
    network.train()
    for p in network.parameters():
        p.grad = torch.full_like(p, 0.5)
    buffers = {k: v.clone() for k, v in network.state_dict().items()}
    engine = Engine(lambda e, batch: batch)  # a stand-in validator: outputs are the (decollated) batch
    engine.network = network
    logger = ValidationOverlayLogger(tmp_path, num_cases=2, num_key_slices=2)
    logger.attach(engine)
    labels = [0, 1, 0, 1, 1]
    data = [[_fake_batch(label, f"case{i}")] for i, label in enumerate(labels)]
    rng_before = torch.get_rng_state()
    engine.run(data, max_epochs=1)
    assert [c["case"] for c in logger.selected_cases()] == ["/data/case1.nii.gz", "/data/case3.nii.gz"]
    assert sorted(p.name for p in (tmp_path / "epoch_001").iterdir()) == ["case1_montage.png", "case3_montage.png"]
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert network.training
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in network.parameters())
    assert all(torch.equal(v, buffers[k]) for k, v in network.state_dict().items())

    # one positive only: a label-0 case fills up
    logger = ValidationOverlayLogger(tmp_path / "few", num_cases=2)
    engine = Engine(lambda e, batch: batch)
    engine.network = network
    logger.attach(engine)
    engine.run([[_fake_batch(0, "a")], [_fake_batch(1, "b")], [_fake_batch(0, "c")]], max_epochs=1)
    assert [c["label"] for c in logger.selected_cases()] == [1, 0]


def test_localization_writer_names_the_case_in_errors(tmp_path):
    torch.manual_seed(0)
    engine = Engine(lambda e, batch: (batch, batch))
    engine.network = _tiny_network()

    @engine.on(Events.ITERATION_COMPLETED)
    def _split(e):  # outputs and batches as a decollating MONAI engine leaves them
        e.state.batch, e.state.output = e.state.output

    LocalizationWriter(tmp_path).attach(engine)
    item = _fake_batch(1, "broken")
    item["image"].meta["spatial_shape"] = torch.tensor([16, 16, 4])  # slice index 4 does not exist
    message = r"^/data/broken.nii.gz: localization failed: slice indices \[4\] out of range"
    with pytest.raises(RuntimeError, match=message):
        engine.run([[item]], max_epochs=1)
    with pytest.raises(ValueError, match="num_key_slices"):
        LocalizationWriter(tmp_path, num_key_slices=0)


def test_attention_mil_localization_writes_its_attention_weights(tiny_dataset, bundle_root):
    """Attention MIL's key slices and instance-score volume are its attention weights, which sum to 1."""
    from monai.bundle import ConfigParser

    overlay = CONFIGS / "methods" / "abmil_gated.json"
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json"), str(overlay)])
    parser.update(TINY)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    (bundle_root / "models").mkdir()
    torch.save(network.state_dict(), bundle_root / "models" / "model.pt")
    overrides = {"bundle_root": str(bundle_root), "dataset_dir": str(tiny_dataset), **TINY}
    overrides.update(input=str(tiny_dataset / "images"), localize=True, num_key_slices=2)
    run_workflow(INFERENCE + ["methods/abmil_gated.json"], "infer", overrides)
    out = bundle_root / "eval" / "inference"
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == 12
    for row in rows[:3]:
        stem = Path(row["case"]).name.split(".")[0]
        per_slice = np.asarray(nib.load(out / "localization" / f"{stem}_instance_scores.nii.gz").dataobj)[0, 0, :]
        evaluated = row["slice_indices"]
        assert per_slice[evaluated].sum() == pytest.approx(1.0, abs=1e-5) and (per_slice[evaluated] > 0).all()
        assert row["key_slices"] == sorted(evaluated, key=lambda i: -per_slice[i])[:2]
        assert row["key_slice_scores"] == pytest.approx([per_slice[i] for i in row["key_slices"]], abs=1e-5)
        assert (out / "localization" / f"{stem}_heatmap.nii.gz").is_file()  # gradient x input at backbone.layer2
