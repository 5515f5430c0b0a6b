# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.reports``: atomic writes."""

from __future__ import annotations

import pytest

from bundle.reports import atomic_path, atomic_write


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "page.md"
    target.write_text("old")
    assert atomic_write(target, "new\n") == target
    assert target.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["page.md"]


def test_atomic_path_keeps_the_suffix_and_the_old_file_on_error(tmp_path):
    target = tmp_path / "volume.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".nii.gz") and tmp != target
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["volume.nii.gz"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["volume.nii.gz"]
