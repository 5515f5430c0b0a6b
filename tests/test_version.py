# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""One version number: pyproject.toml's project version is configs/metadata.json's, which has a changelog entry."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pyproject_version() -> str:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: the one line is enough
        match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), flags=re.MULTILINE)
        assert match, "pyproject.toml has no version line"
        return match.group(1)
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_pyproject_and_metadata_carry_one_version():
    metadata = json.loads((REPO / "configs" / "metadata.json").read_text())
    assert _pyproject_version() == metadata["version"], "set the same version in pyproject.toml and metadata.json"
    assert metadata["version"] in metadata["changelog"], "metadata.json's changelog lacks its own version"
