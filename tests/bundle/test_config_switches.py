# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Switches given on the command line arrive as strings ("false"); the configs must parse them. Values that
depend on a setting are derived from it in every workflow (``amp`` from ``use_amp``, the volume network's slice
axis from ``slice_axis``)."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser

from bundle.config import config_parser
from bundle_testing import CONFIGS, TINY


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


@pytest.mark.parametrize("config, engine", [("train.json", "train#trainer"), ("evaluate.json", "evaluator"),
                                            ("inference.json", "evaluator"), ("train.json", "validate#evaluator")])
@pytest.mark.parametrize("use_amp", ["true", "false"])
def test_every_workflow_takes_amp_from_use_amp(config, engine, use_amp):
    parser = config_parser([CONFIGS / "common.json", CONFIGS / config], {"use_amp": use_amp})
    parser["device"] = "$torch.device('cuda')"
    engine_config = parser.get(engine)
    engine_config = parser.get(engine_config[1:]) if isinstance(engine_config, str) else engine_config  # an @alias
    assert engine_config["amp"] == "@amp"
    assert parser.get_parsed_content("amp") is (use_amp == "true")


@pytest.mark.parametrize("slice_axis", [0, 1, 2, -1, -3])
def test_volume_network_slices_along_slice_axis(slice_axis):
    """``network_volume_def`` makes the same bag of a volume as the preprocessing's ``ToBagd``."""
    from transforms import ToBag

    parser = config_parser([CONFIGS / "common.json"], {**TINY, "slice_axis": slice_axis})
    volume_network = parser.get_parsed_content("network_volume_def")
    assert volume_network.slice_dim == slice_axis % 3
    volume = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(1, 2, 3, 4, 5)
    torch.testing.assert_close(volume_network.to_bag(volume)[0], ToBag(slice_axis)(volume[0]))


def test_metadata_describes_the_default_configuration():
    """``metadata.json`` restates the default input and output format (MONAI metadata holds no expressions):
    it must agree with ``common.json``; the zoo package rewrites it from the package's own configs."""
    meta = json.loads((CONFIGS / "metadata.json").read_text())["network_data_format"]
    parser = config_parser([CONFIGS / "common.json"])
    classes = {str(i): name for i, name in enumerate(parser.get_parsed_content("class_names"))}
    image = meta["inputs"]["image"]
    assert image["num_channels"] == parser.get_parsed_content("in_channels")
    assert image["spatial_shape"] == [*parser.get_parsed_content("image_size"), "*"]
    assert parser.get_parsed_content("slice_axis") % 3 == 2  # the "*" (any number of slices) is the last axis
    for section in ("outputs", "post_processed_outputs"):
        assert meta[section]["pred"]["num_channels"] == parser.get_parsed_content("num_classes") == len(classes)
        assert meta[section]["pred"]["channel_def"] == classes
