# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The method registry and method specs; every method overlay under configs/methods trains, evaluates, infers and
exports through the bundle."""

from __future__ import annotations

import json

import pytest
import torch

from bundle.comparison.settings import MANAGED_KEYS
from bundle.config import merged_config
from bundle.methods import (
    AGGREGATION_METHODS,
    ATTENTION_METHODS,
    METHODS,
    METHODS_DIR,
    TABLE1_METHODS,
    configured_value,
    expand_method_specs,
    method_config,
    method_display_name,
    parse_method_spec,
    spec_override,
)
from bundle_testing import CONFIGS, TINY, TINY_TRAIN, run_workflow

#: config ids an overlay may set besides ``method_name``, ``network_def`` and ``network_def#<argument>`` overrides
OVERLAY_EXTRAS = {"top_k", "input_scales", "dilations", "pretrained_weights", "backbone_depth", "feature_stage"}
#: the attention methods' own settings (width of the embedding and attention layers, weight normalisation,
#: spatial pooling of each instance's map)
OVERLAY_EXTRAS |= {"attention_embedding_dim", "attention_dim", "attention_normalization", "num_selected_instances",
                   "attention_instance_pooling"}


def _network_target(name):
    """``_target_`` of ``network_def`` once the overlay of method ``name`` is merged onto ``common.json``."""
    return merged_config([CONFIGS / "common.json", method_config(name)])["network_def"]["_target_"]


def test_registry_and_overlay_files_agree():
    assert sorted(p.stem for p in METHODS_DIR.glob("*.json")) == sorted(METHODS)
    assert set(TABLE1_METHODS) <= set(METHODS) and set(ATTENTION_METHODS) <= set(METHODS)
    assert {spec.split(":")[0] for spec in AGGREGATION_METHODS} <= set(METHODS)
    for name in METHODS:
        overlay = json.loads(method_config(name).read_text())
        assert overlay["method_name"] == name
        assert _network_target(name).startswith("networks.")
        settings = {key for key in overlay if not key.startswith("network_def#")}
        assert settings - {"method_name", "network_def"} <= OVERLAY_EXTRAS, name


def test_attention_group_and_overlays():
    specs = expand_method_specs(["attention"])
    assert [s.canonical for s in specs] == ["abmil", "abmil_gated", "patch_scoring_attention"]
    assert [s.label for s in specs] == ["Attention MIL", "Gated attention MIL", "Patch-scoring attention"]
    for name, gated in (("abmil", False), ("abmil_gated", True)):
        merged = merged_config([CONFIGS / "common.json", method_config(name)])
        assert merged["network_def"]["_target_"] == "networks.AttentionMIL"
        assert merged["network_def"]["gated"] is gated
        assert merged["network_def"]["attention_normalization"] == "@attention_normalization"
        assert configured_value(name, "attention_normalization") == "softmax"
    merged = merged_config([CONFIGS / "common.json", method_config("patch_scoring_attention")])
    assert merged["network_def"]["_target_"] == "networks.PatchScoringAttentionMIL"
    assert configured_value("patch_scoring_attention", "attention_normalization") == "squared_average"
    assert configured_value("patch_scoring_attention", "num_selected_instances") == 8
    spec = parse_method_spec("abmil:attention_normalization=squared_average")
    assert spec.slug == "abmil__attention_normalization-squared_average"


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'mims'; valid methods: mims_cnn, mi_pre, .*mims_max_inst"):
        method_config("mims")


# ------------------------------------------------------------------------------------------- method specs


def test_groups_expand_in_order_without_duplicates():
    specs = expand_method_specs(["mi_pre_conv", "table1", "aggregation", "mims_cnn:top_k=3"])
    expected = ["mi_pre_conv"] + [m for m in TABLE1_METHODS if m != "mi_pre_conv"]
    expected += [m for m in AGGREGATION_METHODS if m not in expected]
    assert [s.canonical for s in specs] == expected
    assert len({s.canonical for s in specs}) == len(specs)


@pytest.mark.parametrize(
    "text, overrides, canonical, slug, label",
    [
        ("mims_cnn", (), "mims_cnn", "mims_cnn", "MIMS"),
        ("mims_cnn:top_k=3", (("top_k", 3),), "mims_cnn:top_k=3", "mims_cnn__top_k-3", "MIMS (top_k=3)"),
        (" mims_cnn : top_k = 3 ", (("top_k", 3),), "mims_cnn:top_k=3", "mims_cnn__top_k-3", "MIMS (top_k=3)"),
        (
            "mi_pre:scales=[0.5,1.0],pretrained_weights=null,backbone_depth=18",
            (("backbone_depth", 18), ("pretrained_weights", None), ("scales", [0.5, 1.0])),
            "mi_pre:backbone_depth=18,pretrained_weights=null,scales=[0.5,1.0]",
            "mi_pre__backbone_depth-18__pretrained_weights-null__scales-0.5-1.0",
            "MI-Pre (backbone_depth=18, pretrained_weights=null, scales=[0.5,1.0])",
        ),
        (
            "mims_mean:note=plain text", (("note", "plain text"),), "mims_mean:note=plain text",
            "mims_mean__note-plain-text", "MIMS, mean pooling (note=plain text)",
        ),
    ],
)
def test_method_spec_parsing(text, overrides, canonical, slug, label):
    spec = parse_method_spec(text)
    assert spec.overrides == overrides
    assert (spec.canonical, spec.slug, spec.label) == (canonical, slug, label)


def test_spec_written_two_ways_is_one_spec():
    specs = expand_method_specs(["mims_cnn:top_k=3,learning_rate=0.001", "mims_cnn:learning_rate=1e-3, top_k=3"])
    assert len(specs) == 1


# (spec, base overlays, base overrides, label): FeatPyra's name says the stages feature_stage makes it use
FEATPYRA_LABEL_CASES = [
    ("featpyra_4_5", (), None, "FeatPyra-2,3"),  # common.json: feature_stage 2 -> stages 1, 2 = conv2_x, conv3_x
    ("featpyra_4_5", (), {"feature_stage": 4}, "FeatPyra-4,5"),  # the paper's
    ("featpyra_4_5:feature_stage=3", (), {"feature_stage": 4}, "FeatPyra-3,4 (feature_stage=3)"),  # the spec wins
    ("featpyra_4_5", ("stage4.json",), None, "FeatPyra-4,5"),  # an overlay that sets it
    ("featpyra_4_5", ("stage_ref.json",), None, "FeatPyra-4,5"),  # a reference: the paper's name, as before
    ("mi_pre", (), {"feature_stage": 4}, "MI-Pre"),
]


@pytest.mark.parametrize("text, overlays, base, label", FEATPYRA_LABEL_CASES)
def test_featpyra_label_follows_the_configured_stage(tmp_path, text, overlays, base, label):
    (tmp_path / "stage4.json").write_text(json.dumps({"feature_stage": 4}))
    (tmp_path / "stage_ref.json").write_text(json.dumps({"feature_stage": "@other"}))
    files = [tmp_path / f for f in overlays]
    assert parse_method_spec(text, config_files=files, base_overrides=base).label == label
    assert [s.label for s in expand_method_specs([text], config_files=files, base_overrides=base)] == [label]


@pytest.mark.parametrize("stage", [2, 3, 4])
def test_featpyra_display_name_equals_the_network_name(stage):
    from networks import FeatPyra

    network = FeatPyra(in_channels=1, num_classes=2, backbone_depth=10, feature_stage=stage)
    assert method_display_name("featpyra_4_5", {"feature_stage": stage}) == network.network_name


@pytest.mark.parametrize("name", ["featpyra_4_5", "resnet34_scratch"])
def test_configured_value_agrees_with_the_merged_config(name):
    merged = merged_config([CONFIGS / "common.json", method_config(name)])
    assert configured_value(name, "feature_stage") == merged["feature_stage"]
    assert configured_value(name, "feature_stage", overrides={"feature_stage": 1}) == 1


def test_unknown_method_spec_lists_the_valid_names_and_groups():
    with pytest.raises(ValueError) as e:
        expand_method_specs(["mims_cnn", "no_such_method"])
    message = str(e.value)
    assert "no_such_method" in message
    assert all(name in message for name in METHODS) and "table1" in message and "aggregation" in message


@pytest.mark.parametrize(
    "text", ["mims_cnn:", "mims_cnn:top_k", "mims_cnn:=3", "mims_cnn:top_k=", "mims_cnn:top_k=3,top_k=4",
             "mims_cnn:seed=1"]
)
def test_malformed_method_spec_is_refused(text):
    with pytest.raises(ValueError):
        parse_method_spec(text, MANAGED_KEYS)


def test_reserved_keys_are_refused_only_when_given():
    assert parse_method_spec("mims_cnn:seed=1").overrides == (("seed", 1),)
    with pytest.raises(ValueError, match="may not set 'seed'"):
        expand_method_specs(["mims_cnn:seed=1"], reserved=("seed",))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("epochs=5", ("epochs", 5)),
        ("image_size=[32,32]", ("image_size", [32, 32])),
        ("learning_rate=1e-3", ("learning_rate", 0.001)),
        ("use_amp=true", ("use_amp", True)),
        ("pretrained_weights=null", ("pretrained_weights", None)),
        ("pretrained_weights=/a/b.pth", ("pretrained_weights", "/a/b.pth")),
        ("kernel_groups={\"2\": 8}", ("kernel_groups", {"2": 8})),
        ("train#dataset#cache_rate=0.5", ("train#dataset#cache_rate", 0.5)),
        ("device=$torch.device('cpu')", ("device", "$torch.device('cpu')")),
        (" note = plain text ", ("note", "plain text")),
    ],
)
def test_override_values_are_json_or_text(text, expected):
    assert spec_override(text) == expected


@pytest.mark.parametrize("text", ["epochs", "=3", "epochs=", "epochs= ", "top k=3"])
def test_malformed_override_is_refused(text):
    with pytest.raises(ValueError, match="is not of the form key=value"):
        spec_override(text)


# --------------------------------------------------------------------------------------- method overlays


def _overrides(root, dataset, train=False, **extra):
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **(TINY_TRAIN if train else {}), **extra}


# ResNet34-scratch (the largest network, 21 M parameters) is slow: the default suite stays under 15 min
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "resnet34_scratch" else n for n in sorted(METHODS)]
)
def test_method_trains_evaluates_infers_and_exports(name, tiny_dataset, bundle_root):
    from monai.bundle import ConfigParser, ckpt_export

    overlay = f"methods/{name}.json"
    run_workflow(
        ["common.json", "train.json", overlay], "train", _overrides(bundle_root, tiny_dataset, True, run_stamp="r")
    )
    ckpt = bundle_root / "models" / "model.pt"
    assert ckpt.is_file()

    run_workflow(["common.json", "evaluate.json", overlay], "eval", _overrides(bundle_root, tiny_dataset))
    metrics = json.loads((bundle_root / "eval" / "metrics.json").read_text())
    assert metrics["num_cases"] == 4 and 0.0 <= metrics["auroc"] <= 1.0

    overrides = _overrides(bundle_root, tiny_dataset, input=str(tiny_dataset / "images"))
    run_workflow(["common.json", "inference.json", overlay], "infer", overrides)
    predictions = json.loads((bundle_root / "eval" / "inference" / "predictions.json").read_text())
    assert len(predictions) == 12

    ts_path = bundle_root / "models" / "model.ts"
    configs = [str(CONFIGS / "common.json"), str(CONFIGS / overlay)]
    tiny = {k: v for k, v in TINY.items()}
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(ckpt),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=configs,
        key_in_ckpt="model",
        **tiny,
    )
    parser = ConfigParser()
    parser.read_config(configs)
    parser.update(tiny)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(ckpt, weights_only=True))
    exported = torch.jit.load(str(ts_path))
    bag, mask = torch.rand(2, 5, 1, 32, 32), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        network.eval()
        torch.testing.assert_close(exported(bag, mask), network(bag, mask))
    assert type(network).__name__ == _network_target(name).split(".")[-1]


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("decay, expected", [(0.5, [16 / 31, 8 / 31, 4 / 31, 2 / 31, 1 / 31]), (1.0, [0.2] * 5)])
def test_topk_init_decay_reaches_every_method(name, decay, expected):
    """The configs' ``topk_init_decay`` sets the initial top-k weights of every method's network (mean pooling:
    no top-k weights)."""
    from bundle.config import build_network

    network, parser = build_network([CONFIGS / "common.json", method_config(name)],
                                    {**TINY, "topk_init_decay": decay})
    if name in ATTENTION_METHODS:  # no top-k pooling at all
        assert not any(hasattr(m, "weights") and callable(m.weights) for m in network.modules())
        return
    if network.pooling == "mean":
        assert not hasattr(network.pool, "weights")
        return
    k = network.pool.k
    assert k == int(parser.get_parsed_content("top_k"))
    weights = network.pool.weights().detach()
    torch.testing.assert_close(weights, torch.tensor(expected[:k]) / sum(expected[:k]))


@pytest.mark.parametrize("overlays, decay", [([], 1.0), (["datasets/adrenalmnist3d.json"], 0.5)])
def test_topk_init_decay_defaults(overlays, decay):
    """Equal initial top-k weights by default (the demo found its lesions with every training seed tried); the
    AdrenalMNIST3D overlay keeps the paper's decaying weights, the setting its comparison table ran with."""
    merged = merged_config([CONFIGS / "common.json", *[CONFIGS / o for o in overlays]])
    assert merged["topk_init_decay"] == decay
