# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Every submodule of ``bundle`` is reachable as ``bundle.<name>`` in a fresh process, as configs name them
(``$bundle.icmil.load_initial_weights(...)``) without importing them first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import bundle

REPO = Path(__file__).resolve().parents[2]
SUBMODULES = sorted(
    p.stem if p.is_file() else p.name
    for p in (REPO / "bundle").iterdir()
    if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").is_file())
)


def test_all_lists_every_submodule():
    assert sorted(bundle.__all__) == SUBMODULES


def test_every_module_a_config_names_resolves_in_a_fresh_process():
    named = set()
    for config in (REPO / "configs").rglob("*.json"):
        named |= set(re.findall(r"\bbundle\.([a-z_]+)\.", config.read_text(encoding="utf-8")))
    assert "icmil" in named and named <= set(SUBMODULES), sorted(named - set(SUBMODULES))
    code = (
        "import json, sys, bundle\n"
        f"names = {sorted(named)!r}\n"
        "print(json.dumps({n: getattr(bundle, n).__name__ for n in names}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, encoding="utf-8", check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {n: f"bundle.{n}" for n in named}
