# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Class weights of the training loss (``bundle.class_balance``) on hand-made label lists, and as the training
config builds them."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from bundle.class_balance import (
    CLASS_WEIGHTING,
    IMBALANCE_RATIO,
    class_counts,
    class_weights,
    inverse_frequency_weights,
    is_imbalanced,
)
from bundle.config import config_parser
from bundle_testing import CONFIGS, TINY


def _entries(labels):
    return [{"image": f"case_{i}.nii.gz", "label": label} for i, label in enumerate(labels)]


@pytest.mark.parametrize(
    "labels, num_classes, expected",
    [
        ([0, 1], 2, [1.0, 1.0]),
        ([0, 0, 1, 1, 1, 1], 2, [1.5, 0.75]),  # N / (K n_c) = 6 / 4, 6 / 8
        ([0, 0, 0, 1], 2, [4 / 6, 2.0]),
        ([0] * 929 + [1] * 259, 2, [1188 / 1858, 1188 / 518]),  # AdrenalMNIST3D's training split
        ([0, 0, 1, 2, 2, 2], 3, [1.0, 2.0, 2 / 3]),
        ([1, 1, 1, 1, 1, 0, 2, 2], 3, [8 / 3, 8 / 15, 4 / 3]),
    ],
)
def test_inverse_frequency_weights(labels, num_classes, expected):
    counts = class_counts(labels, num_classes)
    weights = inverse_frequency_weights(counts)
    assert weights == pytest.approx(expected, rel=1e-12)
    assert sum(weights[label] for label in labels) / len(labels) == pytest.approx(1.0)  # mean over the cases is 1
    tensor = class_weights(_entries(labels), num_classes, "balanced")
    assert tensor.dtype == torch.float32
    torch.testing.assert_close(tensor, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize(
    "counts, imbalanced",
    [([80, 80], False), ([9, 11], False), ([4, 6], False), ([6, 4], False), ([4, 7], True), ([929, 259], True),
     ([10, 10, 6], True), ([10, 10, 7], False), ([0, 5], True)],
)
def test_imbalance_rule(counts, imbalanced):
    assert IMBALANCE_RATIO == pytest.approx(2 / 3)
    assert is_imbalanced(counts) is imbalanced


@pytest.mark.parametrize(
    "labels, class_weighting, expected",
    [
        ([0, 0, 1, 1], "auto", None),  # balanced: plain cross-entropy
        ([0, 0, 0, 1], "auto", [4 / 6, 2.0]),
        ([0, 0, 1, 1], "balanced", [1.0, 1.0]),
        ([0, 0, 0, 1], "none", None),
        ([0, 0, 0, 0], "none", None),  # no weights: a missing class is not the weighting's concern
    ],
)
def test_class_weights_by_option(labels, class_weighting, expected):
    weights = class_weights(_entries(labels), 2, class_weighting)
    if expected is None:
        assert weights is None
    else:
        torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float32))


def test_class_weights_are_created_on_the_device():
    weights = class_weights(_entries([0, 0, 0, 1]), 2, "auto", device=torch.device("meta"))
    assert weights.device.type == "meta" and weights.shape == (2,)


@pytest.mark.parametrize("value", ["Auto", "inverse", "", None])
def test_unknown_class_weighting_names_the_allowed_values(value):
    assert CLASS_WEIGHTING == ("auto", "balanced", "none")
    with pytest.raises(ValueError, match=r"class_weighting must be one of 'auto', 'balanced', 'none', got "):
        class_weights(_entries([0, 1]), 2, value)


def test_a_class_without_training_cases_cannot_be_weighted():
    with pytest.raises(ValueError, match=r"classes \[1\] have no training case.*set class_weighting to 'none'"):
        class_weights(_entries([0, 0, 0]), 2, "auto")
    with pytest.raises(ValueError, match=r"labels \[2\] are not classes: allowed 0..1"):
        class_counts([0, 1, 2], 2)


def test_one_log_line_says_which_weighting_applies(caplog):
    with caplog.at_level(logging.INFO, logger="bundle.class_balance"):
        class_weights(_entries([0, 0, 0, 1]), 2, "auto", class_names=["normal", "cyst"])
        class_weights(_entries([0, 1]), 2, "auto", class_names=["normal", "cyst"])
    lines = [r.getMessage() for r in caplog.records if r.name == "bundle.class_balance"]
    assert lines == [
        "class weighting 'auto': training split 3 'normal', 1 'cyst' is imbalanced (smallest / largest class "
        "0.33 < 0.67); loss weights 'normal': 0.6667, 'cyst': 2.0000",
        "class weighting 'auto': training split 1 'normal', 1 'cyst' is balanced (smallest / largest class "
        "1.00 >= 0.67); loss without class weights",
    ]


def _datalist(tiny_dataset, tmp_path, training_labels):
    """The tiny dataset's datalist (absolute paths) with the training labels replaced."""
    content = json.loads((tiny_dataset / "datalist.json").read_text())
    for split in ("training", "validation", "test"):
        content[split] = [{**e, "image": str(tiny_dataset / e["image"]), "mask": str(tiny_dataset / e["mask"])}
                          for e in content[split]]
    content["training"] = [dict(entry, label=label) for entry, label in zip(content["training"], training_labels)]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize(
    "training_labels, class_weighting, expected",
    [([0, 1, 0, 1], "auto", None), ([0, 0, 0, 1], "auto", [4 / 6, 2.0]), ([0, 0, 0, 1], "none", None),
     ([0, 1, 0, 1], "balanced", [1.0, 1.0])],
)
def test_training_loss_takes_its_weights_from_the_training_split(
    tiny_dataset, tmp_path, training_labels, class_weighting, expected
):
    datalist = _datalist(tiny_dataset, tmp_path, training_labels)
    overrides = {**TINY, "datalist": str(datalist), "class_weighting": class_weighting}
    parser = config_parser([CONFIGS / "common.json", CONFIGS / "train.json"], overrides)
    loss = parser.get_parsed_content("loss")
    assert isinstance(loss, torch.nn.CrossEntropyLoss)
    if expected is None:
        assert loss.weight is None
    else:
        torch.testing.assert_close(loss.weight, torch.tensor(expected, dtype=torch.float32))
        assert parser.get_parsed_content("class_weights") is loss.weight


def test_training_loss_weights_are_on_the_training_device(tiny_dataset, tmp_path):
    """A CPU weight in the loss of a CUDA model fails at the first step: the config creates it on ``@device``."""
    overrides = {**TINY, "datalist": str(_datalist(tiny_dataset, tmp_path, [0, 0, 0, 1]))}
    parser = config_parser([CONFIGS / "common.json", CONFIGS / "train.json"], overrides)
    parser["device"] = "$torch.device('meta')"
    weight = parser.get_parsed_content("loss").weight
    assert weight.device.type == "meta" and weight.shape == (2,)


def test_training_config_rejects_an_unknown_class_weighting(tiny_dataset):
    parser = config_parser([CONFIGS / "common.json", CONFIGS / "train.json"],
                           {**TINY, "dataset_dir": str(tiny_dataset), "class_weighting": "yes"})
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("loss")
    message = str(error.value) + str(error.value.__cause__)
    assert "class_weighting must be one of 'auto', 'balanced', 'none', got 'yes'" in message
