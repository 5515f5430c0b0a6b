# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""ResNetBackbone.load_torchvision_weights against the state-dict layout of real torchvision ResNets.

torchvision is not a dependency (CI has none), so the keys and shapes of ``torchvision.models.resnet18``,
``resnet34``, ``resnet50``, ``resnet101`` and ``resnet152`` (``weights=None``: the layout of the ImageNet
checkpoints users download) were written once into ``torchvision_resnet_state_dicts.json`` next to this
file, by the torchvision that the MONAI Label environment installs. Its ``torchvision`` field names the
version, its ``command`` field is the one-line command that regenerates it, from the repository root, with
that environment's python (``.venv-label/bin/python``, made by ``scripts/setup_label_env.sh``). Each test
fills those keys with random tensors of exactly those shapes.
ResNet-10 has no torchvision model and is left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from networks.nets import ResNetBackbone

FIXTURE = Path(__file__).with_name("torchvision_resnet_state_dicts.json")
LAYOUT = json.loads(FIXTURE.read_text(encoding="utf-8"))
ARCHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}
#: number of state-dict entries of each torchvision model (parameters and buffers, with its ``fc`` head)
NUM_KEYS = {"resnet18": 122, "resnet34": 218, "resnet50": 320, "resnet101": 626, "resnet152": 932}
STAGE_PREFIXES = ("layer1.", "layer2.", "layer3.", "layer4.")


def random_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's ``<arch>().state_dict()`` keys and shapes, filled with random values (counters: ints)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in LAYOUT["state_dicts"][arch]:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(1, 1000, shape, generator=generator, dtype=torch.int64)
        else:
            state[key] = torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """``arch -> path`` of a saved random state dict with torchvision's layout, written on first use."""
    folder = tmp_path_factory.mktemp("torchvision")
    paths: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in paths:
            paths[arch] = folder / f"{arch}.pth"
            torch.save(random_state_dict(arch), paths[arch])
        return paths[arch]

    return get


def test_fixture_header_and_sizes():
    assert LAYOUT["torchvision"].startswith("0.")
    assert LAYOUT["command"].startswith(".venv-label/bin/python -c ")
    assert FIXTURE.name in LAYOUT["command"]
    assert {arch: len(entries) for arch, entries in LAYOUT["state_dicts"].items()} == NUM_KEYS
    assert LAYOUT["state_dicts"]["resnet50"][0] == ["conv1.weight", [64, 3, 7, 7]]
    assert ["fc.weight", [1000, 2048]] in LAYOUT["state_dicts"]["resnet101"]


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("feature_stage", [1, 2, 3, 4])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_loads_torchvision_layout_strictly(checkpoints, arch, feature_stage, in_channels):
    path = checkpoints(arch)
    backbone = ResNetBackbone(in_channels=in_channels, depth=ARCHS[arch], feature_stage=feature_stage)
    backbone.load_torchvision_weights(str(path))
    source = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    own = backbone.state_dict()
    # every backbone tensor comes from the file; the file's head and deleted stages are all that is left out
    kept = {k for k in source if not k.startswith(("fc.", *STAGE_PREFIXES[feature_stage:]))}
    assert set(own) == kept
    for key, value in own.items():
        expected = source[key]
        if key == "conv1.weight" and in_channels == 1:
            expected = expected.sum(dim=1, keepdim=True)  # grey conv1 = sum of the RGB kernels
        assert value.dtype == expected.dtype and torch.equal(value, expected), key
    assert own["conv1.weight"].shape == (64, in_channels, 7, 7)
    last = f"layer{feature_stage}.0.bn1.running_var"
    torch.testing.assert_close(backbone.get_submodule(f"layer{feature_stage}")[0].bn1.running_var, source[last])


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])  # basic and bottleneck blocks
def test_loads_torchvision_layout_without_max_pool(checkpoints, arch):
    # the stem's max-pooling has no parameters: the same file loads, strictly, into the small-input backbone
    path = checkpoints(arch)
    with_pool = ResNetBackbone(in_channels=1, depth=ARCHS[arch], feature_stage=2)
    without = ResNetBackbone(in_channels=1, depth=ARCHS[arch], feature_stage=2, max_pool=False)
    with_pool.load_torchvision_weights(str(path))
    without.load_torchvision_weights(str(path))
    theirs = without.state_dict()
    assert list(theirs) == list(with_pool.state_dict())
    assert all(torch.equal(value, theirs[key]) for key, value in with_pool.state_dict().items())


BREAKS = [
    ("missing", lambda sd: sd.pop("layer1.0.bn1.running_var"), "missing keys [layer1.0.bn1.running_var]"),
    (
        "shape",
        lambda sd: sd.__setitem__("layer1.0.conv1.weight", torch.zeros(1, 1, 1, 1)),
        "shape mismatches [layer1.0.conv1.weight: checkpoint (1, 1, 1, 1) vs model",
    ),
]


@pytest.mark.parametrize("what, breaks, message", BREAKS)
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])  # basic and bottleneck blocks
def test_broken_torchvision_layout_raises_naming_the_file(tmp_path, arch, what, breaks, message):
    state = random_state_dict(arch)
    breaks(state)
    path = tmp_path / f"{arch}_{what}.pth"
    torch.save(state, path)
    backbone = ResNetBackbone(in_channels=3, depth=ARCHS[arch], feature_stage=1)
    with pytest.raises(ValueError) as error:
        backbone.load_torchvision_weights(str(path))
    assert repr(str(path)) in str(error.value)
    assert message in str(error.value)
