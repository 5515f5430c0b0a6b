# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``scripts/make_results_pages.py``: its options, --check's exit code, a bad pages file.

The engine (``bundle.comparison.pages``) is tested in ``tests/bundle/test_results_pages.py``.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_results_pages.py"


@pytest.fixture(scope="module")
def mrp():
    """The script as a module (scripts/ is on sys.path: tests/conftest.py)."""
    return importlib.import_module("make_results_pages")


def test_help_explains_every_option(mrp, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True,
                            encoding="utf-8", check=True)
    for action in mrp.build_parser()._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in result.stdout


def test_check_exit_code_and_bad_pages_file(mrp, tmp_path, capsys):
    spec = {"spec": "mims_cnn", "slug": "mims_cnn", "dataset": "demo", "seed": 0, "test": {"auroc": 0.75}}
    record = tmp_path / "records" / "demo" / "mims_cnn" / "seed0.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps(spec))
    pages_file = tmp_path / "pages.json"
    pages_file.write_text(json.dumps({"pages": [{"page": "demo.md", "title": "Demo", "records": "demo", "seeds": [0],
                                                 "tables": [{"title": "T", "methods": ["mims_cnn"]}]}]}))
    assert mrp.main(["--pages-file", str(pages_file), "--check"]) == 1
    assert mrp.main(["--pages-file", str(pages_file)]) == 0 and (tmp_path / "demo.md").is_file()
    assert mrp.main(["--pages-file", str(pages_file), "--check"]) == 0
    pages_file.write_text("{}")
    with pytest.raises(SystemExit) as e:
        mrp.main(["--pages-file", str(pages_file)])
    assert e.value.code == 2 and "a JSON object with a list 'pages' expected" in capsys.readouterr().err
