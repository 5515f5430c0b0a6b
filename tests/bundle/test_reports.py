# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.reports``: atomic writes, paths as pages show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle import reports
from bundle.reports import atomic_path, atomic_write, display_path


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


def test_code_state(tmp_path):
    state = reports.code_state()
    assert len(state["commit"]) == 40 and isinstance(state["uncommitted_changes"], bool)
    assert reports.code_state(tmp_path) is None  # not a git work tree


def test_code_state_counts_changes_to_what_runs_only(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for path in ("bundle/x.py", "docs/page.md", "tests/test_x.py", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    assert reports.code_state(tmp_path)["uncommitted_changes"] is False
    for path in ("docs/page.md", "tests/test_x.py", "README.md"):
        (tmp_path / path).write_text("b\n")
    assert reports.code_state(tmp_path)["uncommitted_changes"] is False  # documentation and tests do not run
    (tmp_path / "bundle/x.py").write_text("b\n")
    assert reports.code_state(tmp_path)["uncommitted_changes"] is True


def test_code_text():
    assert reports.code_text(None) == "unknown (no git)"
    assert reports.code_text({"commit": "0123456789abcdef", "uncommitted_changes": False}) == "commit `0123456789ab`"
    assert reports.code_text({"commit": "0123456789abcdef", "uncommitted_changes": True}).endswith(
        " with uncommitted changes")


def test_display_path_inside_root_relative_outside_absolute(tmp_path):
    root = tmp_path / "clone"
    (root / "data").mkdir(parents=True)
    assert display_path(root / "data" / "x.json", root) == str(Path("data") / "x.json")
    assert display_path(tmp_path / "elsewhere.json", root) == str(tmp_path / "elsewhere.json")


def test_display_path_keeps_a_symlinked_folder_relative(tmp_path):
    """A clone whose ``data`` links to another clone's data names its datalist like that clone does."""
    shared = tmp_path / "main" / "data"
    shared.mkdir(parents=True)
    clone = tmp_path / "second"
    clone.mkdir()
    (clone / "data").symlink_to(shared, target_is_directory=True)
    assert display_path(clone / "data" / "datalist.json", clone) == str(Path("data") / "datalist.json")
    assert display_path(shared / "datalist.json", tmp_path / "main") == str(Path("data") / "datalist.json")
    # a link pointing into the root from outside is resolved
    outside = tmp_path / "link_to_main"
    outside.symlink_to(tmp_path / "main", target_is_directory=True)
    assert display_path(outside / "data" / "d.json", tmp_path / "main") == str(Path("data") / "d.json")


def test_load_sampler_summarizes_the_samples():
    values = iter([[1.0, 0, 0], [3.0, 0, 0], [2.0, 0, 0]])
    sampler = reports.LoadSampler(interval_s=3600.0, sample=lambda: next(values)).start()
    sampler._take()  # as the thread would every interval
    summary = sampler.stop()
    assert summary["one_minute_min"] == 1.0 and summary["one_minute_max"] == 3.0
    assert summary["one_minute_mean"] == 2.0 and summary["samples"] == 3 and summary["usable_cores"] >= 1
    assert reports.LoadSampler(sample=lambda: None).start().stop() is None  # an OS without load average


@pytest.mark.parametrize("mean, cores, shared", [(2.0, 2, False), (2.5, 2, False), (2.51, 2, True), (0.6, 0, True)])
def test_shared_machine_means_load_beyond_the_runs_own_cores(mean, cores, shared):
    assert reports.shared_machine({"one_minute_mean": mean, "usable_cores": cores}) is shared
