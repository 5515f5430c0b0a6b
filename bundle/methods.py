# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
r"""The methods of the bundle: one config overlay each under ``configs/methods/``, and method specs.

A method is selected by appending its overlay to the config files, e.g.::

    python -m monai.bundle run \
        --config_file "['configs/common.json','configs/train.json','configs/methods/mi_pre_conv.json']"

:data:`METHODS` maps each name to its display name (the paper's; attention MIL's: Ilse et al.'s);
:func:`method_config` turns a name into the overlay path and rejects unknown names with the list of valid
ones. :func:`method_display_name` is the name shown on pages: the paper's, except that FeatPyra's says which
backbone stages the configured ``feature_stage`` makes it use ("FeatPyra-2,3" on stages 1-2;
:func:`configured_value` reads that value).

The comparison tools (``scripts/compare_methods.py``, ``scripts/method_cost.py``) take *method specs*:
a method name, a group (``table1``, ``aggregation``, ``attention``), or ``name:key=value[,key=value]`` for a method with
config overrides of its own (``mims_cnn:top_k=3``). :func:`parse_method_spec` reads one into a
:class:`MethodSpec`; :func:`expand_method_specs` expands groups and drops duplicates. Importing this
module loads neither torch nor MONAI.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.config import parse_override

__all__ = [
    "METHODS",
    "TABLE1_METHODS",
    "AGGREGATION_METHODS",
    "ATTENTION_METHODS",
    "METHODS_DIR",
    "MethodSpec",
    "configured_value",
    "expand_method_specs",
    "method_config",
    "method_display_name",
    "method_groups",
    "parse_method_spec",
    "spec_override",
    "value_text",
]

#: folder of the method overlays (``configs/methods`` of this bundle)
METHODS_DIR = Path(__file__).resolve().parents[1] / "configs" / "methods"

#: overlay name -> display name (the paper's, Li et al. 2019, Table 1 and section 3.3)
METHODS: dict[str, str] = {
    "mims_cnn": "MIMS",
    "mi_pre": "MI-Pre",
    "pyramid_mi_pre": "Pyramid MI-Pre",
    "mi_pre_conv": "MI-Pre-Conv",
    "mims_noresizing": "MIMS-NoResizing",
    "pyramid_mims": "Pyramid MIMS",
    "mi_pre_trident": "MI-Pre-Trident",
    "featpyra_4_5": "FeatPyra-4,5",
    "resnet34_scratch": "ResNet34-scratch",
    "mims_patchcls": "MIMS-patchcls",
    "mi_pre_conv_patchcls": "MI-Pre-Conv-patchcls",
    "mims_mean": "MIMS, mean pooling",
    "mims_max": "MIMS, max pooling (top-1)",
    "mims_max_inst": "MIMS, max-inst",
    "abmil": "Attention MIL",
    "abmil_gated": "Gated attention MIL",
    "patch_scoring_attention": "Patch-scoring attention",
}

#: the rows of the paper's Table 1, in its order
TABLE1_METHODS: tuple[str, ...] = (
    "mi_pre",
    "pyramid_mi_pre",
    "mi_pre_conv",
    "mims_noresizing",
    "pyramid_mims",
    "mi_pre_trident",
    "featpyra_4_5",
    "resnet34_scratch",
    "mims_cnn",
    "mims_patchcls",
    "mi_pre_conv_patchcls",
)

#: the MIL aggregation ablation: method overlays, and top-k of MIMS-CNN with other k (``name:key=value``)
AGGREGATION_METHODS: tuple[str, ...] = (
    "mims_mean",
    "mims_max",
    "mims_max_inst",
    "mims_cnn:top_k=2",
    "mims_cnn:top_k=3",
    "mims_cnn:top_k=4",
    "mims_cnn",
)

#: the related attention-based methods: attention MIL (Ilse et al., ICML 2018), plain and gated, and patch scoring
#: with squared-average attention over the top-scoring instances (Liu et al., 2024)
ATTENTION_METHODS: tuple[str, ...] = ("abmil", "abmil_gated", "patch_scoring_attention")


def method_config(name: str) -> Path:
    """The overlay file of method ``name``.

    Raises:
        ValueError: ``name`` is not a method of the bundle; the message lists the valid names.
        FileNotFoundError: the overlay of a known method is missing from ``configs/methods`` (broken checkout).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}.")
    path = METHODS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"the overlay of method {name!r} is missing: {path}")
    return path


def configured_value(
    name: str, key: str, config_files: Sequence[str | Path] = (), overrides: Mapping[str, Any] | None = None
) -> Any:
    """The plain value of the top-level config id ``key`` in the runs of method ``name``, read without MONAI.

    Read as the bundle merges them: ``configs/common.json``, then ``config_files`` (overlays), then the
    method's overlay, then ``overrides``; the last that sets ``key`` wins.

    Returns:
        the value, or None when nothing sets it or it is a reference or expression (``@``, ``$``, ``%``).
    """
    value = None
    for path in (METHODS_DIR.parent / "common.json", *config_files, method_config(name)):
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        value = config.get(key, value)
    value = (overrides or {}).get(key, value)
    return None if isinstance(value, str) and value[:1] in ("@", "$", "%") else value


def method_display_name(name: str, config: Mapping[str, Any] | None = None) -> str:
    """The display name of method ``name`` when it runs with the top-level config values ``config``.

    ``METHODS[name]``, except FeatPyra's, which says the backbone stages it uses in the paper's naming
    (stage ``k`` is ``conv{k+1}_x``; as ``networks.FeatPyra.network_name``): ``feature_stage`` ``s`` gives
    ``"FeatPyra-{s},{s+1}"``, the paper's FeatPyra-4,5 being ``s = 4``. Without an integer ``feature_stage``
    in ``config`` it is ``METHODS[name]``.

    Raises:
        ValueError: ``name`` is not a method of the bundle.
    """
    method_config(name)
    stage = (config or {}).get("feature_stage")
    if name == "featpyra_4_5" and isinstance(stage, int) and not isinstance(stage, bool):
        return f"FeatPyra-{stage},{stage + 1}"
    return METHODS[name]


def method_groups() -> dict[str, tuple[str, ...]]:
    """Group name -> method specs: ``table1``, ``aggregation`` and ``attention``."""
    return {"table1": TABLE1_METHODS, "aggregation": AGGREGATION_METHODS, "attention": ATTENTION_METHODS}


def value_text(value: Any) -> str:
    """A config value as written in a method spec: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def spec_override(text: str) -> tuple[str, Any]:
    """``key=value`` of a method spec or of the comparison tools' ``--override`` as ``(key, value)``.

    :func:`bundle.config.parse_override` (the value parsed as JSON where it parses, else the text), with
    both sides stripped of surrounding spaces, and stricter: a value is required and the key has no spaces.

    Raises:
        ValueError: no ``=``, an empty key or value, or whitespace inside the key.
    """
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value or re.search(r"\s", key):
        raise ValueError(f"override {text!r} is not of the form key=value (e.g. epochs=5 or image_size=[32,32])")
    return parse_override(f"{key}={value}")


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas that are not inside brackets or braces."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _slug_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", text.replace("#", ".")).strip("-") or "x"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method of the bundle with optional config overrides of its own (``name:key=value,...``).

    Args:
        name: a key of :data:`METHODS`.
        overrides: ``(key, value)`` pairs sorted by key.
        display: the method's display name (:func:`method_display_name`).
    """

    name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    display: str = ""

    @property
    def canonical(self) -> str:
        """The spec as text, overrides sorted: ``mims_cnn:top_k=3``."""
        if not self.overrides:
            return self.name
        return self.name + ":" + ",".join(f"{k}={value_text(v)}" for k, v in self.overrides)

    @property
    def slug(self) -> str:
        """Folder name of the spec: ``mims_cnn__top_k-3``."""
        return self.name + "".join(f"__{_slug_part(k)}-{_slug_part(value_text(v))}" for k, v in self.overrides)

    @property
    def label(self) -> str:
        """Display name with the overrides: ``MIMS (top_k=3)``."""
        extra = ", ".join(f"{k}={value_text(v)}" for k, v in self.overrides)
        return f"{self.display or self.name} ({extra})" if extra else self.display or self.name


def parse_method_spec(
    text: str,
    reserved: Collection[str] = (),
    config_files: Sequence[str | Path] = (),
    base_overrides: Mapping[str, Any] | None = None,
) -> MethodSpec:
    """Parse ``name`` or ``name:key=value[,key=value]`` (values as in :func:`spec_override`).

    Args:
        text: the spec.
        reserved: config ids a spec may not set (the comparison sets them for every run).
        config_files: overlays every run gets before the method's (only read for the display name).
        base_overrides: config values every run gets, before the spec's own (only read for the display name).

    Raises:
        ValueError: an unknown method (the message lists the valid ones and the groups), a malformed or
            repeated override, or a reserved key.
        FileNotFoundError: the overlay of a known method is missing.
    """
    name, sep, rest = text.strip().partition(":")
    name = name.strip()
    try:
        method_config(name)  # ValueError listing the valid names
    except ValueError as e:
        raise ValueError(f"{e} Groups: {', '.join(method_groups())}.") from None
    if sep and not rest.strip():
        raise ValueError(f"method spec {text!r}: nothing after ':' (expected name:key=value[,key=value])")
    overrides: dict[str, Any] = {}
    for part in _split_top_level(rest) if sep else []:
        key, value = spec_override(part)
        if key in overrides:
            raise ValueError(f"method spec {text!r} sets {key!r} twice")
        if key in reserved:
            raise ValueError(f"method spec {text!r} may not set {key!r}: this script sets it for every run")
        overrides[key] = value
    own = tuple(sorted(overrides.items()))
    stage = configured_value(name, "feature_stage", config_files, {**(base_overrides or {}), **overrides})
    return MethodSpec(name, own, method_display_name(name, {"feature_stage": stage}))


def expand_method_specs(
    tokens: Sequence[str],
    reserved: Collection[str] = (),
    config_files: Sequence[str | Path] = (),
    base_overrides: Mapping[str, Any] | None = None,
) -> list[MethodSpec]:
    """Method specs of ``tokens`` with groups expanded and duplicates removed, first occurrence kept.

    Args:
        tokens: method specs and group names (:func:`method_groups`).
        reserved: config ids a spec may not set (see :func:`parse_method_spec`).
        config_files: overlays every run gets (see :func:`parse_method_spec`).
        base_overrides: config values every run gets (see :func:`parse_method_spec`).
    """
    groups = method_groups()
    specs: dict[str, MethodSpec] = {}
    for token in tokens:
        for text in groups.get(token.strip(), (token,)):
            spec = parse_method_spec(text, reserved, config_files, base_overrides)
            specs.setdefault(spec.canonical, spec)
    return list(specs.values())
