# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Config values given on MONAI's command line as the text ``null`` where the user meant "no value".

``python -m monai.bundle run --key value`` reads its arguments with Python Fire: ``--key None`` gives Python's
None (the configs' ``null``), but ``--key null`` -- the JSON spelling the configs themselves use -- gives the text
``'null'``, which replaces the config's null. Every nullable option then fails late and far from the cause: a
decision threshold that is "not a number", an MLflow tracking URI ``null``, a checkpoint file named ``null``.
:func:`null_text_problems` finds such arguments on the command line, for every option at once; the pre-flight
(:func:`bundle.preflight.preflight`) and the ICMIL workflow (which has no pre-flight) report them before any
work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bundle.errors import PreflightError

__all__ = ["NULL_TEXTS", "is_bundle_command_line", "null_text_problems", "check_command_line"]

#: values (compared without case) that mean "no value" to a user and are text to Fire; ``None`` itself is
#: Python's None to Fire and is fine
NULL_TEXTS = ("null", "none")


def is_bundle_command_line(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is the command line of ``python -m monai.bundle`` (also under torchrun): its first item is
    the path of MONAI's ``monai/bundle/__main__.py``."""
    return bool(argv) and os.path.normpath(str(argv[0])).endswith(os.path.join("monai", "bundle", "__main__.py"))


def _options(argv: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of every ``--key value`` and ``--key=value`` argument of ``argv``."""
    pairs = []
    for index, token in enumerate(argv):
        if not token.startswith("--") or token == "--":
            continue
        if "=" in token:
            key, value = token[2:].split("=", 1)
        elif index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            key, value = token[2:], argv[index + 1]
        else:
            continue
        pairs.append((key, value))
    return pairs


def null_text_problems(argv: Sequence[str] | None = None) -> list[str]:
    """One line per ``--key null`` (or ``none``, any case but ``None``) on MONAI's bundle command line.

    Args:
        argv: the command line; None: ``sys.argv``. Any other program's command line (a script, pytest) has no
            problems: its arguments are not Fire's.

    Returns:
        ``command line --key null: ...`` lines naming the fix, ``--key None``; empty when there is none.
    """
    argv = list(sys.argv if argv is None else argv)
    if not is_bundle_command_line(argv):
        return []
    return [
        f"command line --{key} {value}: MONAI's command line passes '{value}' on as text, not as null; "
        f"write --{key} None for no value"
        for key, value in _options(argv[1:])
        if value.strip().lower() in NULL_TEXTS and value.strip() != "None"
    ]


def check_command_line(argv: Sequence[str] | None = None) -> None:
    """Raise for the problems of :func:`null_text_problems`, all at once.

    Raises:
        PreflightError: one line per ``--key null`` argument.
    """
    problems = null_text_problems(argv)
    if problems:
        raise PreflightError(problems)
