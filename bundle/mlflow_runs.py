# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Which process runs an MLflow run, and closing the runs whose process is gone.

A process killed with SIGKILL (or by the machine going down) cannot close its MLflow run: the run would stay
``RUNNING`` forever. So a training run records its process as tags of its MLflow run (:func:`process_tags`:
host, process id, the process's start time and the machine's boot id), and each training run, when it starts,
closes as ``KILLED`` the runs of its experiment that are still ``RUNNING`` although their process is gone
(:func:`close_killed_runs`). A run is only closed when that is certain (:func:`process_gone`): recorded on this
host, and its process no longer exists, is a zombie, or is another process that got the same id (other start
time) or ran before a reboot (other boot id). Runs recorded on another host, or without these tags (written
by an earlier version, or by evaluation), are left as they are, so a concurrent live run is never closed.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

__all__ = ["TAGS", "close_killed_runs", "process_gone", "process_tags"]

logger = logging.getLogger(__name__)

#: the MLflow tags that record a run's process
TAGS = {"host": "mims.host", "pid": "mims.pid", "start": "mims.process_start", "boot": "mims.boot_id"}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state, first); None: not there."""
    text = _read(f"/proc/{pid}/stat")
    return None if not text or ")" not in text else text.rsplit(")", 1)[1].split()


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks after boot (``/proc``; None where there is none)."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that identify a process: host name, process id, start time and boot id (the last two where
    ``/proc`` gives them).

    Args:
        pid: the process (default: this one).
    """
    pid = os.getpid() if pid is None else pid
    tags = {TAGS["host"]: socket.gethostname(), TAGS["pid"]: str(pid)}
    start, boot = _process_start(pid), _read("/proc/sys/kernel/random/boot_id")
    if start:
        tags[TAGS["start"]] = start
    if boot:
        tags[TAGS["boot"]] = boot
    return tags


def process_gone(tags: Mapping[str, str]) -> bool | None:
    """Whether the process recorded in ``tags`` (:func:`process_tags`) is gone.

    Returns:
        True: recorded on this host and the process no longer runs (no such process, a zombie, another process
        with the same id, or a boot since); False: it still runs; None: unknown (no process recorded, or
        another host).
    """
    host, pid = tags.get(TAGS["host"]), tags.get(TAGS["pid"])
    if host is None or pid is None or host != socket.gethostname():
        return None
    try:
        pid_number = int(pid)
    except ValueError:
        return None
    boot = _read("/proc/sys/kernel/random/boot_id")
    if tags.get(TAGS["boot"]) and boot and tags[TAGS["boot"]] != boot:
        return True
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    fields = _stat(pid_number)
    if fields and fields[0] == "Z":
        return True
    start = _process_start(pid_number)
    return bool(tags.get(TAGS["start"]) and start and tags[TAGS["start"]] != start)


def close_killed_runs(client: Any, experiment_id: str, keep: Collection[str] = (), closer: str = "") -> list[str]:
    """Mark ``KILLED`` the runs of an experiment left ``RUNNING`` by a process that is gone (:func:`process_gone`).

    Each closed run gets the tag ``mims.closed`` saying why and by which run, and a WARNING names it.

    Args:
        client: an ``mlflow.MlflowClient``.
        experiment_id: the experiment.
        keep: ids of runs never to close (the caller's own).
        closer: the name of the run that closes them (for the tag).

    Returns:
        the ids of the runs closed.
    """
    closed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        run_id, tags = run.info.run_id, run.data.tags
        if run_id in keep or not process_gone(tags):
            continue
        why = f"process {tags[TAGS['pid']]} on {tags[TAGS['host']]} is gone"
        client.set_terminated(run_id, "KILLED")
        client.set_tag(run_id, "mims.closed", f"marked KILLED by run {closer or '?'}: {why}")
        logger.warning(f"MLflow run {run.info.run_name} ({run_id}) was left RUNNING and its {why}: marked KILLED "
                       "(resume it with --resume_from runs/<run>/checkpoint_epoch=<n>.pt)")
        closed.append(run_id)
    return closed
