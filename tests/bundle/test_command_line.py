# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``--key null`` on MONAI's bundle command line (Fire passes it on as text): found for every option, reported
with the fix. Through ``python -m monai.bundle run``: ``tests/bundle/test_errors.py``."""

from __future__ import annotations

import os

import pytest

from bundle.command_line import check_command_line, is_bundle_command_line, null_text_problems
from bundle.errors import PreflightError

MAIN = os.path.join("venv", "lib", "python3.11", "site-packages", "monai", "bundle", "__main__.py")


def _problem(key: str, value: str) -> str:
    return (f"command line --{key} {value}: MONAI's command line passes '{value}' on as text, not as null; "
            f"write --{key} None for no value")


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([MAIN, "run"], True),
        ([os.path.join("a", "monai", "bundle", "__main__.py")], True),
        (["scripts/compare_methods.py", "--decision_threshold", "null"], False),
        (["-m", "pytest"], False),
        ([os.path.join("monai", "bundle", "other.py")], False),
        ([], False),
    ],
)
def test_is_bundle_command_line(argv, expected):
    assert is_bundle_command_line(argv) is expected


@pytest.mark.parametrize(
    "args, problems",
    [
        (["--decision_threshold", "null"], [_problem("decision_threshold", "null")]),
        (["--icmil_tracking_uri=NULL"], [_problem("icmil_tracking_uri", "NULL")]),
        (["--pretrained_weights", "none", "--epochs", "3"], [_problem("pretrained_weights", "none")]),
        (["--decision_threshold", "null", "--resume_from", "Null"],
         [_problem("decision_threshold", "null"), _problem("resume_from", "Null")]),
        (["--decision_threshold", "None", "--epochs", "null_epochs"], []),  # Fire's None; text that only starts so
        (["--run_name", "nullify", "--use_amp", "--ckpt_path", "models/null.pt"], []),  # a flag without a value
        (["--config_file", "['a.json']", "--", "null"], []),  # after Fire's separator: not an option value
        ([], []),
    ],
)
def test_null_text_problems(args, problems):
    assert null_text_problems([MAIN, "run", *args]) == problems


def test_other_command_lines_have_no_problems():
    assert null_text_problems(["scripts/compare_methods.py", "--decision_threshold", "null"]) == []


def test_check_command_line_raises_for_all_at_once(monkeypatch):
    check_command_line([MAIN, "run", "--epochs", "2"])  # nothing to report
    with pytest.raises(PreflightError) as info:
        check_command_line([MAIN, "run", "--decision_threshold", "null", "--resume_from", "none"])
    assert info.value.problems == [_problem("decision_threshold", "null"), _problem("resume_from", "none")]
    monkeypatch.setattr("sys.argv", [MAIN, "run", "--localization_layer", "null"])  # the default: sys.argv
    with pytest.raises(PreflightError, match="^command line --localization_layer null: "):
        check_command_line()
