# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""What every report of the bundle records about where it ran, and how reports are written.

Benchmarks, comparisons and evaluation pages state the machine, the library versions, the load and
the memory they ran with; these are the one place that measures them. Importing this module loads
neither torch nor MONAI (they are imported where versions are asked for).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LOAD_INTERVAL_S",
    "LOAD_TOLERANCE",
    "NOT_RUN_PATHS",
    "LoadSampler",
    "atomic_path",
    "atomic_write",
    "code_state",
    "code_text",
    "display_path",
    "load_average",
    "machine_info",
    "machine_text",
    "peak_rss_bytes",
    "reset_peak_rss",
    "rss_bytes",
    "shared_machine",
    "versions",
    "versions_text",
]

#: the repository (bundle) root
REPO = Path(__file__).resolve().parents[1]


#: seconds between two samples of the load average (:class:`LoadSampler`)
LOAD_INTERVAL_S = 15.0
#: a run that keeps every core busy makes a 1-minute load of about its usable cores by itself; its timings count
#: as clean up to this much more than that (other work on the machine shows as load above it)
LOAD_TOLERANCE = 0.5
#: tracked paths whose uncommitted changes cannot change a run (git pathspecs): documentation and tests
NOT_RUN_PATHS = (":(exclude)docs", ":(exclude)tests", ":(exclude)*.md")


def code_state(repo: str | os.PathLike = REPO) -> dict[str, Any] | None:
    """The git commit of ``repo`` (``HEAD``) and whether tracked files that a run executes or reads had
    uncommitted changes (documentation and tests, :data:`NOT_RUN_PATHS`, do not count); None without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_RUN_PATHS],
                                cwd=repo, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit.stdout.strip(), "uncommitted_changes": bool(status.stdout.strip())}


def code_text(state: dict[str, Any] | None) -> str:
    """``commit abc123def456`` (+ ``with uncommitted changes``) for a report; ``unknown (no git)`` for None."""
    if not state:
        return "unknown (no git)"
    return f"commit `{state['commit'][:12]}`" + (" with uncommitted changes" if state["uncommitted_changes"] else "")


def display_path(path: str | os.PathLike, root: str | os.PathLike = REPO) -> str:
    """``path`` relative to ``root`` (default: the repository) when inside it, else absolute.

    A path that lies inside ``root`` as written (e.g. ``data/x`` where ``data`` is a symbolic link to another
    clone's data) stays relative, so two clones that share their data name it alike; otherwise symbolic links
    are resolved before comparing.
    """
    for candidate, base in ((Path(os.path.abspath(path)), Path(os.path.abspath(root))),
                            (Path(path).resolve(), Path(root).resolve())):
        try:
            return str(candidate.relative_to(base))
        except ValueError:
            continue
    return str(Path(path).resolve())


def _proc_field(path: str, name: str) -> str | None:
    """The value of the first ``name: value`` line of a ``/proc`` file (None where unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(name.lower()):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model (``/proc/cpuinfo``, else what ``platform`` knows), core counts, RAM, OS and platform."""
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine() or "unknown CPU"
    mem_total = _proc_field("/proc/meminfo", "MemTotal")  # "<n> kB"
    if mem_total:
        ram_gib = int(mem_total.split()[0]) / 1024**2
    else:
        try:
            ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
        except (AttributeError, ValueError, OSError):
            ram_gib = float("nan")
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": ram_gib,
        "platform": platform.platform(),
        "system": platform.system(),
    }


def machine_text(machine: dict[str, Any] | None = None, logical: bool = True, os_key: str | None = None) -> str:
    """One line: CPU model and usable of logical cores (of ``machine``, default this machine).

    Args:
        machine: a :func:`machine_info` dictionary; None: this machine.
        logical: name the logical cores too (``2 usable of 4 logical cores``); False: ``2 usable cores``.
        os_key: a key of :func:`machine_info` whose value ends the line after a comma (``"system"``: ``Linux``;
            ``"platform"``: the full platform string); None: no operating system.
    """
    m = machine_info() if machine is None else machine
    cores = f"{m.get('usable_cores')} usable" + (f" of {m.get('logical_cores')} logical" if logical else "")
    text = f"{m.get('cpu')}, {cores} cores"
    return text if os_key is None else f"{text}, {m.get(os_key)}"


def versions(packages: tuple[str, ...] = ("torch", "monai", "numpy")) -> dict[str, str]:
    """Python and the installed versions of ``packages`` (``"not installed"`` where missing), without importing
    them."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def versions_text(packages: tuple[str, ...] = ("torch", "monai", "numpy"), labels: dict[str, str] | None = None) -> str:
    """``python 3.11.7, torch 2.13.0, monai 1.6.1, numpy ...``; ``labels`` renames entries, e.g.
    ``{"python": "Python", "monai": "MONAI"}`` gives ``Python 3.11.7, torch 2.13.0, MONAI 1.6.1, ...``."""
    labels = labels or {}
    return ", ".join(f"{labels.get(name, name)} {version}" for name, version in versions(packages).items())


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


class LoadSampler:
    """Samples the 1-minute load average in a daemon thread: at start, every ``interval_s`` and at stop.

    Args:
        interval_s: seconds between two samples.
        sample: returns the load averages (1, 5, 15 minutes) or None (:func:`bundle.reports.load_average`).
    """

    def __init__(self, interval_s: float = LOAD_INTERVAL_S, sample: Any = load_average) -> None:
        self.interval_s = interval_s
        self.sample = sample
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load-sampler", daemon=True)

    def _take(self) -> None:
        loads = self.sample()
        if loads:
            self.values.append(float(loads[0]))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()

    def start(self) -> LoadSampler:
        """Take the first sample and start the thread; returns ``self``."""
        self._take()
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any] | None:
        """Stop the thread, take a last sample and return :meth:`summary`."""
        self._stop.set()
        self._thread.join()
        self._take()
        return self.summary()

    def summary(self) -> dict[str, Any] | None:
        """Min, mean and max of the samples, their number, the interval and the usable cores; None without
        samples (an OS without load average)."""
        if not self.values:
            return None
        return {
            "one_minute_min": min(self.values),
            "one_minute_mean": statistics.fmean(self.values),
            "one_minute_max": max(self.values),
            "samples": len(self.values),
            "interval_s": self.interval_s,
            "usable_cores": machine_info()["usable_cores"],
        }


def shared_machine(load: dict[str, Any]) -> bool:
    """Whether other work shared the machine during a run: its mean 1-minute load (:meth:`LoadSampler.summary`)
    exceeds the usable cores by more than :data:`LOAD_TOLERANCE`, so its timings are upper bounds."""
    return float(load["one_minute_mean"]) > (load.get("usable_cores") or 0) + LOAD_TOLERANCE


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write instead of ``path``, renamed onto ``path`` when the block ends without error.

    A reader never sees half a file and an interrupted write leaves the old one. The temporary file is
    ``.tmp_<name>`` in the same folder (same file system, so the rename is atomic; the suffix is kept, for
    writers that choose the format from it such as nibabel); on an error it is removed and the error raised.

    Example::

        with atomic_path("models/model.pt") as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".tmp_{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def peak_rss_bytes() -> int:
    """``ru_maxrss`` of this process in bytes (KiB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def rss_bytes() -> int:
    """Current resident set size of this process (``/proc/self/statm``; else the peak from ``resource``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


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
