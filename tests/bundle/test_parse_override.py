# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.config.parse_override``: the ``KEY=VALUE`` type of the scripts' ``--override`` options."""

from __future__ import annotations

import argparse

import pytest

from bundle.config import parse_override


@pytest.mark.parametrize(
    "text, expected",
    [("image_size=[32,32]", ("image_size", [32, 32])), ("method=mi_pre", ("method", "mi_pre")),
     (" epochs =3", ("epochs", 3)), ("name=", ("name", "")), ("a#b=null", ("a#b", None))],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["no_equals_sign", "=5", " =5"])
def test_parse_override_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        parse_override(text)
