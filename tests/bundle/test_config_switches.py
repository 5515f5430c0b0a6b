# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Switches given on the command line arrive as strings ("false"); the configs must parse them."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

from bundle_testing import CONFIGS


@pytest.mark.parametrize(
    "value, on_cuda", [("false", False), ("False", False), (False, False), ("true", True), (True, True)]
)
def test_use_amp_string_is_parsed(value, on_cuda):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json"), str(CONFIGS / "train.json")])
    parser.update({"use_amp": value, "device": "$torch.device('cpu')"})
    assert parser.get_parsed_content("amp") is False  # never on CPU
    parser.update({"device": "$torch.device('cuda')"})
    parser.parse(reset=True)
    assert parser.get_parsed_content("amp") is on_cuda


def test_invalid_use_amp_is_an_error():
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json"), str(CONFIGS / "train.json")])
    parser.update({"use_amp": "maybe"})
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("amp")
    assert "use_amp must be true or false, got 'maybe'" in str(error.value.__cause__ or error.value)


def test_torch_is_importable_for_the_cuda_expression():
    assert torch.device("cuda").type == "cuda"  # building the device object needs no GPU
