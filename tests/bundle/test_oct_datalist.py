# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""build_datalist's --split-scans: one case per scan of a multi-scan OCT file, read back through LoadVolumed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from oct_testing import write_e2e, write_topcon

from bundle.data.folder_datalist import build_datalist_from_csv
from bundle.datalist import load_datalist
from transforms import LoadVolumed

pytest.importorskip("eyepy", reason="eyepy (reads .e2e) not installed: pip install -e .[oct]")

ONE = np.full((4, 3, 2), 63 << 10, np.uint16)
TWO = np.full((5, 3, 3), 62 << 10, np.uint16)


@pytest.mark.parametrize("group_column", [None, "patient"])
@pytest.mark.parametrize("split_scans", [False, True])
def test_split_scans(tmp_path, split_scans, group_column):
    images = tmp_path / "images"
    images.mkdir()
    write_e2e(images / "both_eyes.e2e", [(ONE, "OD"), (TWO, "OS")])
    write_e2e(images / "one_eye.e2e", [(ONE, "OS")])
    write_topcon(images / "t.fds", np.zeros((4, 3, 2), np.uint16))
    (tmp_path / "labels.csv").write_text("image,label,patient\nboth_eyes.e2e,1,p1\none_eye.e2e,0,p2\nt.fds,0,p3\n")
    out = build_datalist_from_csv(images, tmp_path / "labels.csv", tmp_path / "datalist.json", val_fraction=0.0,
                                  group_column=group_column, split_scans=split_scans)
    entries = json.loads(out.read_text())["training"]
    found = sorted((e["image"], e.get("scan")) for e in entries)
    if split_scans:  # the two-scan file gives two cases, the others one entry without "scan"
        assert found == [("images/both_eyes.e2e", 0), ("images/both_eyes.e2e", 1), ("images/one_eye.e2e", None),
                         ("images/t.fds", None)]
    else:
        assert found == [("images/both_eyes.e2e", None), ("images/one_eye.e2e", None), ("images/t.fds", None)]
    assert all(e["label"] == (1 if "both" in e["image"] else 0) for e in entries)
    loader = LoadVolumed("image")
    for entry in load_datalist(out, "training"):
        if "both_eyes" in entry["image"] and not split_scans:
            with pytest.raises(ValueError, match="holds 2 scans"):
                loader(entry)
            continue
        image = loader(entry)["image"]
        expected = {None: None, 0: (1, 4, 3, 2), 1: (1, 5, 3, 3)}[entry.get("scan")]
        if expected is not None:
            assert tuple(image.shape) == expected and image.meta["laterality"] == ("OD", "OS")[entry["scan"]]


def test_split_scans_keep_a_file_in_one_split(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = ["image,label"]
    for i in range(6):
        write_e2e(images / f"c{i}.e2e", [(ONE, "OD"), (TWO, "OS")])
        rows.append(f"c{i}.e2e,{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = build_datalist_from_csv(images, tmp_path / "labels.csv", tmp_path / "d.json", val_fraction=0.34,
                                  split_scans=True)
    content = json.loads(out.read_text())
    splits = {}
    for split in ("training", "validation"):
        for entry in content[split]:
            splits.setdefault(entry["image"], set()).add(split)
    assert len(splits) == 6 and all(len(s) == 1 for s in splits.values())
    assert len(content["validation"]) == 4 and content["split"]["split_scans"] is True


def test_script_option():
    from build_datalist import build_parser

    args = build_parser().parse_args(["--images-dir", "i", "--labels-csv", "l.csv", "--out", "o.json", "--split-scans"])
    assert args.split_scans is True
    assert "--split-scans" in build_parser().format_help()
