# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Small helpers the report-writing scripts share (no torch, no MONAI: cheap to import).

The scripts run as ``python scripts/<name>.py``, so this folder is on ``sys.path`` and they import it as
``script_support``; the tests put the folder on ``sys.path`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["REPO", "display_path", "machine_info", "override_arg", "reset_peak_rss"]

#: the repository (bundle) root
REPO = Path(__file__).resolve().parents[1]


def display_path(path: str | os.PathLike) -> str:
    """``path`` relative to the repository when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def machine_info() -> dict[str, Any]:
    """CPU model (``/proc/cpuinfo``, else what ``platform`` knows), core counts, OS and platform of this machine."""
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.lower().startswith("model name")), None)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu or platform.processor() or platform.machine() or "unknown CPU",
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "system": platform.system(),
    }


def override_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of a ``--override`` option as ``(key, value)``, the value parsed as JSON where it parses.

    For ``argparse`` ``type=``: ``image_size=[32,32]`` gives ``("image_size", [32, 32])``, ``method=mi_pre``
    gives ``("method", "mi_pre")``. The key is stripped of surrounding spaces.

    Raises:
        argparse.ArgumentTypeError: no ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux ``clear_refs``).

    ``ru_maxrss`` then reports the peak since the reset, unless a larger value was inherited at exec().

    Returns:
        False where that is impossible (not Linux).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False
