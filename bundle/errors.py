# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""One readable line for the user's errors: the file (or config key), the problem, the fix.

MONAI wraps every error raised while a config is evaluated (``RuntimeError("Failed to evaluate
ConfigExpression ...")``, ``RuntimeError("Failed to instantiate component ...")``, ``"applying transform
..."``), so the last line Python prints is the wrapper, under a traceback of 50 to 130 lines. The configs'
``run`` lists start with :func:`install_excepthook`, which replaces ``sys.excepthook`` for the run:

- a **user-facing error** anywhere in the chain of causes (:func:`user_error`) ends the output with its
  message, ``error: <message>`` as the last line of stderr (a message of several lines prints its listed
  lines first and its summary last, see :func:`error_lines`). The full traceback is written to a file whose
  path is printed above (:func:`traceback_file`), or printed in full when the environment variable
  ``MIMS_DEBUG`` is set to ``1`` (:data:`DEBUG_ENV`). Pre-flight errors (:class:`PreflightError`) need no
  traceback: none is written;
- any other exception (a bug) is printed as Python prints it: the full traceback.

User-facing errors, by class: :class:`BundleUserError` and its subclasses (:class:`PreflightError`,
:class:`ConfigValueError`, ``bundle.case_errors.CaseError``, ``bundle.datalist.DatalistError``); an
``OSError`` that names a file (``filename`` set, e.g. ``PermissionError`` of a read-only output folder):
``<file>: <reason>``; and a ``ValueError`` by which a component of the configs rejected its arguments
(:class:`ComponentArgumentError`).

Under ``torchrun`` the message is also written to the rank's error file (``TORCHELASTIC_ERROR_FILE``), so
torchrun's failure summary shows it instead of a link to its documentation.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from types import TracebackType

__all__ = [
    "DEBUG_ENV",
    "BundleUserError",
    "ComponentArgumentError",
    "ConfigValueError",
    "PreflightError",
    "debug_enabled",
    "error_lines",
    "excepthook",
    "install_excepthook",
    "is_user_facing",
    "traceback_file",
    "user_error",
    "user_message",
]

#: environment variable that prints the full traceback of a user-facing error (``MIMS_DEBUG=1``)
DEBUG_ENV = "MIMS_DEBUG"
_TRUE = ("1", "true", "yes", "on")
# MONAI's wrapper of a component's error (monai.utils.module.instantiate)
_INSTANTIATE = re.compile(r"^Failed to instantiate component '([^']+)'")
#: the hook that was in place before :func:`install_excepthook` (Python's own, normally)
_previous_hook = None


class BundleUserError(Exception):
    """An error of the user's input, checkpoint, configuration or environment, whose message says it all.

    The message names the file (or config key) and the problem, with the fix where there is one. A
    message of several lines is a summary (first line) and a listing (the other lines, indented).
    """


class PreflightError(BundleUserError, ValueError):
    """The pre-flight checks (:mod:`bundle.preflight`) found problems before any work started.

    Args:
        problems: one line each (file or config key, problem, fix); a repeated one is kept once.
        summary: the line that closes the listing when there is more than one problem.

    Attributes:
        problems: the problems, one line each.
    """

    def __init__(self, problems: Sequence[str], summary: str = "") -> None:
        self.problems = list(dict.fromkeys(str(p) for p in problems))  # e.g. a missing datalist, once
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            summary = summary or f"pre-flight: {len(self.problems)} problems (listed above); nothing was started"
            message = summary + ":\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)


def is_user_facing(error: BaseException) -> bool:
    """Whether ``error`` is one of the user-facing kinds (see the module docstring)."""
    if isinstance(error, BundleUserError):
        return True
    return isinstance(error, OSError) and getattr(error, "filename", None) is not None


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes (``__cause__``, else an unsuppressed ``__context__``), outermost first."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        chain.append(current)
        seen.add(id(current))
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        current = cause
    return chain


class ConfigValueError(BundleUserError, ValueError):
    """A config value that is not one of the allowed ones; the message names the key (``bundle.config.as_bool``)."""


class ComponentArgumentError(BundleUserError, ValueError):
    """A component of the configs rejected its arguments (a ``ValueError`` of its constructor)."""


def user_error(error: BaseException) -> BaseException | None:
    """The user-facing error in the chain of ``error``; None: none (a bug: its traceback says more).

    The outermost user-facing error of the chain; else, when a component of the configs rejected its
    arguments (MONAI's ``Failed to instantiate component '<target>'`` caused by a ``ValueError``), a
    :class:`ComponentArgumentError` ``"<target>: <message>"``.
    """
    chain = _chain(error)
    found = next((e for e in chain if is_user_facing(e)), None)
    if found is not None:
        return found
    for wrapper, cause in zip(chain, chain[1:]):
        match = _INSTANTIATE.match(str(wrapper))
        if type(wrapper) is RuntimeError and match and type(cause) is ValueError:
            return ComponentArgumentError(f"{match.group(1)}: {' '.join(str(cause).split())}")
    return None


def user_message(error: BaseException) -> str:
    """The message of a user-facing error: its text; for an ``OSError`` with a file, ``<file>: <reason>``."""
    if isinstance(error, OSError) and not isinstance(error, BundleUserError) and error.filename is not None:
        reason = error.strerror or str(error)
        target = f" -> {error.filename2}" if getattr(error, "filename2", None) else ""
        return f"{error.filename}{target}: {reason}"
    return str(error).strip() or type(error).__name__


def error_lines(message: str) -> list[str]:
    """The lines to print for ``message``, the last one ``error: <summary>``.

    A one-line message gives ``["error: <message>"]``. A message of several lines (a summary ending with
    ``:`` and an indented listing) gives the listing first and ``error: <summary>`` last, so that the last line
    of the output says what happened.

    Example::

        >>> error_lines("2 problems:\\n  a.nii: missing\\n  b.nii: missing")
        ['  a.nii: missing', '  b.nii: missing', 'error: 2 problems']
    """
    lines = [line.rstrip() for line in str(message).strip().splitlines()]
    head, rest = lines[0], [line for line in lines[1:] if line.strip()]
    if rest:
        head = head.rstrip(":")
    return rest + [f"error: {head}"]


def debug_enabled() -> bool:
    """Whether ``MIMS_DEBUG`` asks for full tracebacks (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in _TRUE


def traceback_file(exc_type: type[BaseException], error: BaseException, tb: TracebackType | None) -> str | None:
    """Write the full traceback to a new file in the temporary folder; its path, or None if it cannot be written."""
    try:
        handle, path = tempfile.mkstemp(prefix="mims_cnn_traceback_", suffix=".txt")
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {' '.join(sys.argv)}\n\n")
            f.write("".join(traceback.format_exception(exc_type, error, tb)))
        return path
    except OSError:
        return None


def _write_torchrun_error_file(text: str) -> None:
    """Give torchrun's failure summary the message (``TORCHELASTIC_ERROR_FILE``, set for each rank by torchrun)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"message": text, "timestamp": int(time.time())}, f)
    except OSError:
        pass


def excepthook(exc_type: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` of a run: a user-facing error ends with ``error: <message>``; any other, Python's output."""
    previous = _previous_hook or sys.__excepthook__
    found = user_error(error) if isinstance(error, Exception) else None
    if found is None:
        previous(exc_type, error, tb)
        return
    lines = error_lines(user_message(found))
    if debug_enabled():
        previous(exc_type, error, tb)
    elif not isinstance(found, PreflightError):
        path = traceback_file(exc_type, error, tb)
        where = f"written to {path}" if path else "not written"
        lines.insert(0, f"(full traceback {where}; {DEBUG_ENV}=1 prints it here)")
    _write_torchrun_error_file("\n".join(lines))
    sys.stdout.flush()
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def install_excepthook() -> None:
    """Make :func:`excepthook` this process's ``sys.excepthook`` (again: no change). The first item of the
    configs' ``run`` lists, so it is in place before the pre-flight and the work can fail."""
    global _previous_hook
    if sys.excepthook is not excepthook:
        _previous_hook = sys.excepthook
        sys.excepthook = excepthook
