# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Measure how well trained methods localise lesions, on a datalist whose entries carry lesion masks.

For every method's finished run of a comparison (``scripts/compare_methods.py`` layout:
``<run-root>/<method>/seed<k>/model.pt`` and ``result.json``), the network is rebuilt from the exact
config files and overrides recorded in ``result.json`` (``eval_configs`` and ``overrides``) with
``monai.bundle.ConfigParser`` and the checkpoint is loaded strictly. Every positive case of the split
(label = ``--target-class``) is preprocessed as the bundle evaluates it (the config's ``preprocessing``:
loading, channels, intensity scaling, bag of slices, central slices, resize); its lesion mask goes through
the same spatial steps (no intensity steps, nearest-neighbour resizing) and is binarised (non-zero =
lesion). Then, for the class of interest:

- slice scores (:func:`bundle.localization.slice_scores`) rank the slices: key-slice hit at top-1, top-3;
- gradient x input heatmaps (:class:`bundle.localization.GradientTimesInput`, the paper's ``P*``) at the
  network's default layer (its deepest backbone stage) and at the input: pointing game and pixel AUROC
  (:mod:`bundle.localization.metrics`).

Two reference rows need no network: slices in random order with a uniform random heatmap (seeded), and
slices ranked from the centre of the bag outwards (no heatmap). A markdown page and a JSON file with every
case's numbers are written.

Example::

    python scripts/evaluate_localization.py --run-root runs/compare/synthetic_oct --seed 0 \\
        --methods mims_cnn mi_pre mi_pre_conv --output docs/results/localization.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from script_support import display_path, machine_info

__all__ = [
    "DEFAULT_METHODS",
    "RunInfo",
    "Settings",
    "build_parser",
    "case_metrics",
    "central_ranking",
    "compact_json",
    "evaluate_method",
    "evaluate_references",
    "find_runs",
    "load_network",
    "main",
    "mask_pipeline",
    "render_page",
    "run_parser",
    "stable_ranking",
    "summarise",
    "validate_arguments",
]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
DEFAULT_RUN_ROOT = REPO / "runs" / "compare" / "synthetic_oct"
DEFAULT_OUTPUT = REPO / "docs" / "results" / "localization.md"
#: MIMS-CNN and the main baselines of Table 1 (run folders under ``--run-root``)
DEFAULT_METHODS = (
    "mims_cnn", "mi_pre", "mi_pre_conv", "mims_noresizing", "mi_pre_trident", "featpyra_4_5", "mims_patchcls",
)
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "model.pt"
RANDOM_ROW = "random"
CENTRAL_ROW = "central"
DASH = "–"


# ------------------------------------------------------------------------------------------------ runs


@dataclasses.dataclass
class RunInfo:
    """A finished run of one method: its folder and what ``result.json`` says about it."""

    method: str
    folder: Path
    result: dict[str, Any]

    @property
    def display_name(self) -> str:
        return str(self.result.get("display_name") or self.method)

    @property
    def configs(self) -> list[Path]:
        """The evaluation config files of the run (``eval_configs``; relative paths are in this repository)."""
        return [p if p.is_absolute() else REPO / p for p in (Path(c) for c in self.result["eval_configs"])]

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.result.get("overrides", {}))


def find_runs(run_root: Path, methods: Sequence[str], seed: int) -> tuple[list[RunInfo], list[str]]:
    """The finished runs ``<run_root>/<method>/seed<seed>`` (``result.json`` and ``model.pt`` present).

    Returns:
        ``(runs, missing)``: the finished runs in the order of ``methods``, and the methods without one.

    Raises:
        ValueError: a ``result.json`` that lacks ``eval_configs`` or was written for another seed.
    """
    runs, missing = [], []
    for method in methods:
        folder = run_root / method / f"seed{seed}"
        result_path = folder / RESULT_FILE
        if not result_path.is_file() or not (folder / CHECKPOINT_FILE).is_file():
            missing.append(method)
            continue
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if "eval_configs" not in result:
            raise ValueError(f"{result_path} has no 'eval_configs': not written by scripts/compare_methods.py")
        if int(result.get("seed", seed)) != seed:
            raise ValueError(f"{result_path} is the result of seed {result.get('seed')}, not {seed}")
        runs.append(RunInfo(method, folder, result))
    return runs, missing


def run_parser(run: RunInfo) -> Any:
    """A ``ConfigParser`` with the run's evaluation configs and overrides, as its evaluation used them."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(p) for p in run.configs])
    parser.update(run.overrides)
    return parser


def load_network(run: RunInfo, parser: Any, device: Any) -> Any:
    """The run's network (``network_def``) with ``model.pt`` loaded strictly, on ``device``, in eval mode."""
    import torch

    network = parser.get_parsed_content("network_def")
    state = torch.load(run.folder / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # a checkpoint with several objects (model, optimizer, ...)
    network.load_state_dict(state, strict=True)
    return network.to(device).eval()


# ------------------------------------------------------------------------------------- preprocessing


def _flatten(transform: Any) -> list[Any]:
    from monai.transforms import Compose

    if isinstance(transform, Compose):
        return [t for inner in transform.transforms for t in _flatten(inner)]
    return [transform]


def mask_pipeline(preprocessing: Any) -> Callable[[Mapping[str, Any]], tuple[Any, Any, Any]]:
    """A function ``entry -> (image [N, C, h, w], mask [N, h, w] bool, slice indices [N])`` for a config's
    ``preprocessing``.

    The image goes through ``preprocessing`` unchanged. The mask goes through the spatial steps with the same
    parameters (loading, bag of slices, central slices, resize with nearest-neighbour instead of the image's
    mode) and skips the intensity and channel steps; it is then binarised (non-zero in any channel).

    Raises:
        ValueError: a transform this function cannot mirror on the mask (the message names it).
    """
    import torch
    from monai.transforms import MapTransform
    from monai.utils import convert_to_tensor

    from transforms import CentralSlicesd, EnsureChannelsd, LoadVolumed, ResizeSlices, ResizeSlicesd, ToBagd

    steps: list[tuple[Any, Callable[[Any], Any] | None]] = []
    for t in _flatten(preprocessing):
        if isinstance(t, LoadVolumed):
            steps.append((t, t.loader))
        elif isinstance(t, ToBagd):
            steps.append((t, t.to_bag))
        elif isinstance(t, CentralSlicesd):
            steps.append((t, t.central))
        elif isinstance(t, ResizeSlicesd):
            steps.append((t, ResizeSlices(t.resizer.spatial_size, mode="nearest")))
        elif isinstance(t, EnsureChannelsd) or (isinstance(t, MapTransform) and "intensity" in type(t).__module__):
            steps.append((t, None))  # intensity and channel steps concern the image only
        else:
            raise ValueError(
                f"cannot apply the preprocessing step {type(t).__name__} to the lesion mask: only loading, "
                "ToBagd, CentralSlicesd, ResizeSlicesd and intensity/channel steps are supported"
            )

    def apply(entry: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        data: dict[str, Any] = {"image": entry["image"]}
        mask: Any = entry["mask"]
        for transform, on_mask in steps:
            data = transform(data)
            if on_mask is not None:
                mask = on_mask(mask)
            if isinstance(transform, LoadVolumed) and tuple(mask.shape[1:]) != tuple(data["image"].shape[1:]):
                raise ValueError(
                    f"{entry['mask']}: mask of spatial shape {tuple(mask.shape[1:])} does not match the image "
                    f"{entry['image']} ({tuple(data['image'].shape[1:])})"
                )
        image = convert_to_tensor(data["image"], track_meta=False, dtype=torch.float32)
        binary = convert_to_tensor(mask, track_meta=False) != 0
        binary = binary.any(dim=1)  # [N, C, h, w] -> [N, h, w]
        n = int(image.shape[0])
        indices = data.get("slice_indices", torch.arange(n))
        if tuple(binary.shape) != (n, *image.shape[2:]):
            raise ValueError(f"{entry['mask']}: preprocessed mask {tuple(binary.shape)} does not match the image "
                             f"{tuple(image.shape)}")
        return image, binary, torch.as_tensor(indices, dtype=torch.int64)

    return apply


# ---------------------------------------------------------------------------------------- evaluation


def stable_ranking(scores: Any) -> list[int]:
    """Bag positions by descending score; equal scores keep bag order (stable); ``-inf`` (padding) dropped."""
    import torch

    values = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    order = torch.sort(values, descending=True, stable=True).indices.tolist()
    return [int(i) for i in order if values[i] != float("-inf")]


def central_ranking(num_slices: int) -> list[int]:
    """Bag positions from the centre outwards (distance to ``(N - 1) / 2``; ties: lower position first)."""
    centre = (num_slices - 1) / 2.0
    return sorted(range(num_slices), key=lambda n: (abs(n - centre), n))


def _case_name(entry: Mapping[str, Any]) -> str:
    return Path(str(entry["image"])).name


def tolerance_key(tolerance_px: float) -> str:
    """The key of a pointing-game tolerance in the results: ``0``, ``4``, ``1.5``."""
    return f"{tolerance_px:g}"


def case_metrics(
    ranking: Sequence[int], heatmaps: Mapping[str, Any], mask: Any, tops: Sequence[int],
    tolerances: Sequence[float],
) -> dict[str, Any]:
    """Key-slice hits of ``ranking``; pointing game (per tolerance) and AUROC of each heatmap ``[N, h, w]``."""
    from bundle.localization.metrics import heatmap_auroc, key_slice_hit, lesion_slice_positions, pointing_game_hit

    lesions = lesion_slice_positions(mask)
    out: dict[str, Any] = {
        "lesion_positions": lesions,
        "ranking_top5": list(ranking[:5]),
        "hit": {str(top): key_slice_hit(ranking, lesions, top) for top in tops} if ranking else None,
        "pointing": {},
        "auroc": {},
    }
    for name, heat in heatmaps.items():
        out["pointing"][name] = {tolerance_key(t): pointing_game_hit(heat, mask, t) for t in tolerances}
        auroc = heatmap_auroc(heat, mask)
        out["auroc"][name] = None if math.isnan(auroc) else round(auroc, 6)  # NaN: the mask is all lesion
    return out


def _fmt_case(name: str, index: int, total: int, metrics: Mapping[str, Any], extra: str = "") -> str:
    parts = [f"  case {index}/{total} {name}:{extra}"]
    if metrics.get("hit"):
        parts += [f"hit@{k} {'yes' if v else 'no'}" for k, v in metrics["hit"].items()]
    for layer, values in metrics["pointing"].items():
        pointing = "/".join(f"{v:.2f}" for v in values.values())
        auroc = metrics["auroc"][layer]
        parts.append(f"pointing[{layer}] {pointing} AUROC[{layer}] " + (DASH if auroc is None else f"{auroc:.3f}"))
    return " ".join(parts)


def evaluate_method(
    run: RunInfo, cases: Sequence[Mapping[str, Any]], settings: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    """Localization numbers of one run on the positive ``cases``; prints progress through ``log``."""
    import torch

    from bundle.localization import INPUT_LAYER, GradientTimesInput, default_layer, slice_scores

    start = time.perf_counter()
    parser = run_parser(run)
    network = load_network(run, parser, settings.device)
    prepare = mask_pipeline(parser.get_parsed_content("preprocessing"))
    layer = default_layer(network)
    explainers = {"layer": GradientTimesInput(network, layer=layer), "input": GradientTimesInput(network, INPUT_LAYER)}
    if layer == INPUT_LAYER:
        explainers.pop("layer")
    per_case, skipped = [], []
    for i, entry in enumerate(cases, 1):
        tic = time.perf_counter()
        image, mask, indices = prepare(entry)
        if not bool(mask.any()):
            skipped.append(_case_name(entry))
            log(f"  case {i}/{len(cases)} {_case_name(entry)}: no lesion in the evaluated slices, skipped")
            continue
        x = image[None].to(settings.device)
        scores, logits = slice_scores(network, x, class_index=settings.target_class)
        heatmaps = {name: e(x, class_index=settings.target_class)[0][0].cpu() for name, e in explainers.items()}
        metrics = case_metrics(stable_ranking(scores[0].cpu()), heatmaps, mask, settings.tops, settings.tolerances)
        probability = float(torch.softmax(logits[0].float(), dim=0)[settings.target_class])
        metrics.update({
            "case": _case_name(entry),
            "image": display_path(entry["image"]),
            "probability": round(probability, 6),
            "predicted_positive": int(logits[0].argmax()) == settings.target_class,
            "lesion_slices": [int(indices[p]) for p in metrics["lesion_positions"]],
            "scored_slices": int(torch.count_nonzero(scores[0] != 0)),
            "seconds": round(time.perf_counter() - tic, 3),
        })
        per_case.append(metrics)
        log(_fmt_case(metrics["case"], i, len(cases), metrics, f" p={probability:.3f}"))
    return {
        "method": run.method,
        "display_name": run.display_name,
        "run_folder": display_path(run.folder),
        "configs": [display_path(p) for p in run.configs],
        "overrides": {k: v for k, v in run.overrides.items() if k not in _PATH_KEYS},
        "test_auroc": run.result.get("test", {}).get("auroc"),
        "layers": {"layer": layer, "input": INPUT_LAYER} if "layer" in explainers else {"input": INPUT_LAYER},
        "preprocessing": _preprocessing_summary(parser),
        "cases": per_case,
        "skipped_no_lesion": skipped,
        "summary": summarise(per_case, settings.tops, list(explainers)),
        "seconds": time.perf_counter() - start,
    }


def evaluate_references(
    run: RunInfo, cases: Sequence[Mapping[str, Any]], settings: Settings
) -> dict[str, dict[str, Any]]:
    """The reference rows, on the cases as ``run`` preprocesses them: random order and heatmap; central order."""
    import numpy as np

    prepare = mask_pipeline(run_parser(run).get_parsed_content("preprocessing"))
    rng = np.random.default_rng(settings.baseline_seed)
    rows: dict[str, list[dict[str, Any]]] = {RANDOM_ROW: [], CENTRAL_ROW: []}
    for entry in cases:
        _, mask, _ = prepare(entry)
        if not bool(mask.any()):
            continue
        mask = mask.numpy()
        n = int(mask.shape[0])
        random_ranking = [int(p) for p in rng.permutation(n)]
        random_heatmap = {"random": rng.random(mask.shape)}
        rows[RANDOM_ROW].append(
            {"case": _case_name(entry), **case_metrics(random_ranking, random_heatmap, mask, settings.tops,
                                                       settings.tolerances)})
        rows[CENTRAL_ROW].append(
            {"case": _case_name(entry), **case_metrics(central_ranking(n), {}, mask, settings.tops,
                                                       settings.tolerances)})
    return {
        RANDOM_ROW: {"cases": rows[RANDOM_ROW], "summary": summarise(rows[RANDOM_ROW], settings.tops, ["random"])},
        CENTRAL_ROW: {"cases": rows[CENTRAL_ROW], "summary": summarise(rows[CENTRAL_ROW], settings.tops, [])},
    }


def _mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return {
        "mean": statistics.fmean(finite) if finite else None,
        "sd": statistics.stdev(finite) if len(finite) > 1 else None,
        "n": len(finite),
    }


def summarise(cases: Sequence[Mapping[str, Any]], tops: Sequence[int], heatmaps: Sequence[str]) -> dict[str, Any]:
    """Means over cases: hit rates per top, pointing game and heatmap AUROC per heatmap; counts."""
    summary: dict[str, Any] = {"n": len(cases)}
    if cases and cases[0].get("hit") is not None:
        summary["hit"] = {str(t): {"hits": sum(bool(c["hit"][str(t)]) for c in cases), "n": len(cases)} for t in tops}
    keys = list(cases[0]["pointing"][heatmaps[0]]) if cases and heatmaps else []
    summary["pointing"] = {h: {k: _mean_sd([c["pointing"][h][k] for c in cases]) for k in keys} for h in heatmaps}
    summary["auroc"] = {h: _mean_sd([c["auroc"][h] for c in cases]) for h in heatmaps}
    if cases and "predicted_positive" in cases[0]:
        summary["predicted_positive"] = sum(bool(c["predicted_positive"]) for c in cases)
    return summary


# ------------------------------------------------------------------------------------------ the page

_PATH_KEYS = ("datalist", "run_dir", "ckpt_path", "output_dir", "bundle_root", "tracking_uri", "experiment_name",
              "run_name")


def _preprocessing_summary(parser: Any) -> dict[str, Any]:
    keys = ("image_size", "eval_num_slices", "slice_axis", "in_channels")
    return {k: parser.get_parsed_content(k) for k in keys if k in parser}


def _rate(hit: Mapping[str, int] | None) -> str:
    if not hit or not hit["n"]:
        return DASH
    return f"{hit['hits'] / hit['n']:.3f} ({hit['hits']}/{hit['n']})"


def _value(stat: Mapping[str, Any] | None, sd: bool) -> str:
    if not stat or stat["mean"] is None:
        return DASH
    text = f"{stat['mean']:.3f}"
    if sd and stat["sd"] is not None:
        text += f" ± {stat['sd']:.3f}"
    return text


def _row(label: str, summary: Mapping[str, Any] | None, tops: Sequence[int], tolerances: Sequence[str],
         cells: Mapping[str, str], heat: Mapping[str, str]) -> str:
    """One table row; ``heat`` maps the columns 'layer' and 'input' to the summary's heatmap names."""
    s = summary or {}
    hits = [_rate(s.get("hit", {}).get(str(t))) for t in tops]
    pointing = [_value(s.get("pointing", {}).get(heat[c], {}).get(k) if c in heat else None, False)
                for c in ("layer", "input") for k in tolerances]
    auroc = [_value(s.get("auroc", {}).get(heat[c]) if c in heat else None, True) for c in ("layer", "input")]
    n = str(s.get("n", DASH)) if summary else DASH
    return "| " + " | ".join([label, cells.get("layer", DASH), n, cells.get("classification", DASH), *hits, *pointing,
                              *auroc]) + " |"


def _machine() -> str:
    m = machine_info()
    return f"{m['cpu']}, {m['usable_cores']} usable cores, {m['system']}"


def _versions() -> dict[str, str]:
    import monai
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__,
            "numpy": numpy.__version__}


def render_page(report: Mapping[str, Any]) -> str:
    """The markdown page of a localization report (the dictionary written as JSON)."""
    s = report["settings"]
    tops = s["tops"]
    methods = report["methods"]
    first = next((m for m in methods.values() if m is not None), None)
    training_commands = sorted({m["training_command"] for m in methods.values() if m and m.get("training_command")})
    pre = first["preprocessing"] if first else {}
    tolerances = [tolerance_key(t) for t in s["tolerance_px"]]
    pointing_columns = [f"pointing game ({c}, {k} px)" for c in ("layer", "input") for k in tolerances]
    lines = [
        f"# Localization quality: {report['dataset']}",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}; device: {report['device']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s in all)",
        f"- Datalist: `{s['datalist']}`, split `{s['split']}`: {report['num_positive']} positive cases (label "
        f"{s['target_class']}) with lesion masks, of {report['num_split']} cases"
        + (f"; only the first {report['num_evaluated']} evaluated (`--max-cases`)" if s["max_cases"] else ""),
        f"- Runs: `{s['run_root']}/<method>/seed{s['seed']}/` (`model.pt`, network and preprocessing rebuilt from the "
        "run's `result.json`: its `eval_configs` and `overrides`)",
    ]
    if training_commands:
        lines.append("- Runs trained by: " + "; ".join(f"`{c}`" for c in training_commands))
    if pre:
        lines.append(
            f"- Preprocessing (of the runs; the reference rows use that of `{first['method']}`): slices "
            f"`{pre.get('image_size')}` (h, w), the central {pre.get('eval_num_slices')} slices along spatial axis "
            f"{pre.get('slice_axis')}; the mask takes the same spatial steps with nearest-neighbour resizing and is "
            "binarised (non-zero = lesion)"
        )
    lines += [
        f"- Class of interest: {s['target_class']} (`{s.get('class_name') or s['target_class']}`); pointing-game "
        f"tolerances: {', '.join(tolerances)} px; reference seed: {s['baseline_seed']}",
        "",
        "## Metrics",
        "",
        "Computed on every positive case of the split whose evaluated (central, resized) slices hold a lesion "
        "pixel, at the resolution the network sees.",
        "",
        "- **hit@k** (key-slice hit rate): fraction of cases where at least one of the k best-ranked slices holds a "
        "lesion. Slices are ranked by `bundle.localization.slice_scores` for the class of interest (embedding "
        "networks: each slice's share of the logit margin through its pooled top-k activations; per-slice "
        "networks: the slice's own margin). Equal scores keep bag order, lowest slice first (top-k networks give "
        "0 to slices that supplied no pooled activation).",
        "- **pointing game**: whether the heatmap's maximum over all evaluated slices and pixels lies inside the "
        "lesion mask, or within the tolerance of it (Euclidean distance in pixels, same slice); when several "
        "pixels share the maximum, the fraction of them inside (expected hit under random tie-breaking). Mean "
        "over cases.",
        "- **heatmap AUROC**: pixel-level ROC AUC of the heatmap against the mask over all evaluated slices of a "
        "case (ties count one half), mean ± SD over cases.",
        "- Heatmaps: `bundle.localization.GradientTimesInput` (gradient × input of the class's logit, clamped at "
        "0, scaled to [0, 255] per bag, rounded, bilinearly resized: the paper's P*) at the network's default "
        "layer (its deepest backbone stage, named in the table) and at the input image.",
        "- Reference rows: *random*: slices in a random order and a uniform random heatmap (seeded); *central*: "
        "slices ranked from the centre of the bag outwards, no heatmap.",
        "- Classification: positive cases predicted as the class of interest (argmax), and the run's test AUROC "
        "from its `result.json`.",
        "",
        "## Results",
        "",
        "| " + " | ".join(["method", "heatmap layer", "n", "classification", *(f"hit@{t}" for t in tops),
                            *pointing_columns, "heatmap AUROC (layer)", "heatmap AUROC (input)"]) + " |",
        "|---|---|---|---|" + "---|" * (len(tops) + len(pointing_columns) + 2),
    ]
    for key, m in methods.items():
        if m is None:
            lines.append(_row(f"{key} (not run)", None, tops, tolerances, {}, {}))
            continue
        summary = m["summary"]
        classification = DASH
        if "predicted_positive" in summary:
            auc = m.get("test_auroc")
            classification = f"{summary['predicted_positive']}/{summary['n']}" + (
                f", test AUROC {auc:.3f}" if isinstance(auc, (int, float)) else "")
        layer = m["layers"].get("layer", DASH)
        heat = {c: c for c in m["layers"]}
        cells = {"layer": f"`{layer}`", "classification": classification}
        lines.append(_row(m["display_name"], summary, tops, tolerances, cells, heat))
    refs = report["references"]
    if refs:
        lines.append(_row("*random* (reference)", refs[RANDOM_ROW]["summary"], tops, tolerances,
                          {"layer": "uniform noise (in both)"}, {"layer": "random", "input": "random"}))
        lines.append(_row("*central* (reference)", refs[CENTRAL_ROW]["summary"], tops, tolerances, {}, {}))
    lines.append("")
    skipped = {m["display_name"]: len(m["skipped_no_lesion"]) for m in methods.values() if m and m["skipped_no_lesion"]}
    if skipped:
        lines += ["Positive cases skipped because no lesion pixel is left in the evaluated slices: "
                  + ", ".join(f"{k}: {v}" for k, v in skipped.items()), ""]
    times = [f"{m['display_name']} {m['seconds']:.0f} s" for m in methods.values() if m]
    if times:
        lines += ["Time per method (load, preprocess, scores and both heatmaps for every case): " + ", ".join(times)
                  + ".", ""]
    lines += [f"Every case's numbers: `{report['json']}`.", ""]
    if report.get("notes"):
        lines += ["## Notes", "", report["notes"].rstrip("\n"), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- CLI


@dataclasses.dataclass
class Settings:
    """Validated arguments (see :func:`validate_arguments`)."""

    run_root: Path
    methods: list[str]
    seed: int
    datalist: Path | None
    split: str
    target_class: int
    tops: list[int]
    tolerances: list[float]
    baseline_seed: int
    device: Any
    threads: int | None
    max_cases: int | None
    output: Path
    notes: Path | None
    skip_missing: bool
    quiet: bool
    command: str


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Measure the localization quality of trained methods on the positive cases of a datalist with lesion "
            "masks: key-slice hit rate (is a lesion slice among the top-ranked slices), pointing game (is the "
            "heatmap maximum inside a lesion) and pixel-level heatmap AUROC, for gradient x input heatmaps at each "
            "network's default layer and at the input, next to random and central-slice reference rows. Reads the "
            "runs of scripts/compare_methods.py; writes a markdown page and a JSON file with every case."
        ),
    )
    p.add_argument("--run-root", default=str(DEFAULT_RUN_ROOT),
                   help="folder holding <method>/seed<k>/{model.pt,result.json}, i.e. <compare output-root>/<dataset> "
                   "(default: runs/compare/synthetic_oct)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                   help="run folder names under --run-root, in table order (default: "
                   + " ".join(DEFAULT_METHODS) + ")")
    p.add_argument("--seed", type=int, default=0, help="which training seed's runs to evaluate: seed<k> (default: 0)")
    p.add_argument("--datalist",
                   help="datalist JSON whose entries have 'mask' (lesion mask, non-zero = lesion) next to 'image'; "
                   "default: the datalist the runs were trained on (from their result.json; must be the same)")
    p.add_argument("--split", default="test", help="datalist split to evaluate (default: test)")
    p.add_argument("--target-class", type=int, default=1,
                   help="class of interest: cases with this label are the positive cases evaluated, and heatmaps and "
                   "slice scores are computed for this class (default: 1)")
    p.add_argument("--top", nargs="+", type=int, default=[1, 3], metavar="K",
                   help="key-slice hit rates to report: is a lesion slice among the K best-ranked (default: 1 3)")
    p.add_argument("--tolerance-px", nargs="+", type=float, default=[0.0], metavar="PX",
                   help="pointing game: a maximum within this many pixels (Euclidean, same slice) of a lesion pixel "
                   "counts as a hit; one pointing-game column per value and heatmap (default: 0)")
    p.add_argument("--baseline-seed", type=int, default=0,
                   help="seed of the random reference row's slice order and heatmap (default: 0)")
    p.add_argument("--device", default="auto",
                   help="torch device, e.g. cpu or cuda:0; 'auto': cuda:0 when available, else cpu (default: auto)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (torch.set_num_threads); default: torch's own choice")
    p.add_argument("--max-cases", type=int,
                   help="evaluate only the first N positive cases (quick checks; the page says so); default: all")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT),
                   help="markdown page to write; the JSON goes next to it with the suffix .json "
                   "(default: docs/results/localization.md)")
    p.add_argument("--notes", metavar="FILE",
                   help="markdown file inserted verbatim under '## Notes' on the page (default: no such section)")
    p.add_argument("--skip-missing", action="store_true",
                   help="list methods without a finished run (result.json and model.pt) as 'not run' instead of "
                   "stopping with an error")
    p.add_argument("--quiet", action="store_true", help="print one line per method instead of one per case")
    return p


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"--methods: {name!r} is not a run folder name")
    return name


def validate_arguments(args: argparse.Namespace, argv: Sequence[str]) -> Settings:
    """Check every argument before any work; ValueError naming the problem."""
    run_root = Path(args.run_root).expanduser().resolve()
    if not run_root.is_dir():
        raise ValueError(f"--run-root {args.run_root!r} is not a folder")
    methods = list(dict.fromkeys(_check_name(m) for m in args.methods))
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if any(t < 1 for t in args.top) or len(set(args.top)) != len(args.top):
        raise ValueError(f"--top must be distinct positive integers, got {args.top}")
    if not all(t >= 0 for t in args.tolerance_px) or len(set(args.tolerance_px)) != len(args.tolerance_px):
        raise ValueError(f"--tolerance-px must be distinct values >= 0, got {args.tolerance_px}")
    if args.target_class < 0:
        raise ValueError(f"--target-class must be >= 0, got {args.target_class}")
    if args.max_cases is not None and args.max_cases < 1:
        raise ValueError(f"--max-cases must be >= 1, got {args.max_cases}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    datalist = Path(args.datalist).expanduser().resolve() if args.datalist else None
    if datalist is not None and not datalist.is_file():
        raise ValueError(f"--datalist {args.datalist!r} does not exist")
    notes = Path(args.notes).expanduser().resolve() if args.notes else None
    if notes is not None and not notes.is_file():
        raise ValueError(f"--notes {args.notes!r} does not exist")
    output = Path(args.output).expanduser().resolve()
    if output.suffix != ".md":
        raise ValueError(f"--output must end with .md, got {args.output!r}")
    import torch

    name = ("cuda:0" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {args.device!r}: {err}") from None
    return Settings(
        run_root=run_root, methods=methods, seed=args.seed, datalist=datalist, split=args.split,
        target_class=args.target_class, tops=sorted(args.top), tolerances=sorted(float(t) for t in args.tolerance_px),
        baseline_seed=args.baseline_seed, device=device, threads=args.threads, max_cases=args.max_cases,
        output=output, notes=notes, skip_missing=args.skip_missing, quiet=args.quiet,
        command=shlex.join(["python", os.path.relpath(SCRIPT), *argv]),
    )


def _runs_datalist(runs: Sequence[RunInfo]) -> Path:
    paths = {str(r.overrides.get("datalist")) for r in runs}
    if len(paths) != 1 or "None" in paths:
        raise ValueError(f"the runs were trained on different or unrecorded datalists {sorted(paths)}: give --datalist")
    return Path(paths.pop())


def _positive_cases(settings: Settings, datalist: Path, num_classes: int) -> tuple[list[dict], int]:
    from bundle.datalist import load_datalist

    entries = load_datalist(datalist, settings.split, num_classes)
    positives = [e for e in entries if e["label"] == settings.target_class]
    lacking = [_case_name(e) for e in positives if not e.get("mask")]
    if lacking:
        raise ValueError(f"{len(lacking)} positive case(s) of split {settings.split!r} in {datalist} have no 'mask': "
                         f"{', '.join(lacking[:5])}")
    if not positives:
        raise ValueError(f"split {settings.split!r} of {datalist} has no case with label {settings.target_class}")
    return positives, len(entries)


def run(settings: Settings) -> dict[str, Any]:
    """Evaluate every method and the reference rows; write the page and the JSON; return the report."""
    import torch

    started = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    log = (lambda _line: None) if settings.quiet else (lambda line: print(line, flush=True))
    runs, missing = find_runs(settings.run_root, settings.methods, settings.seed)
    if missing and not settings.skip_missing:
        raise ValueError(f"no finished run (result.json and model.pt) under {settings.run_root} for seed "
                         f"{settings.seed} of: {', '.join(missing)} (use --skip-missing to report them as not run)")
    if not runs:
        raise ValueError(f"none of the methods has a finished run under {settings.run_root} (seed {settings.seed})")
    datalist = settings.datalist or _runs_datalist(runs)
    parser = run_parser(runs[0])
    num_classes = int(parser.get_parsed_content("num_classes"))
    if settings.target_class >= num_classes:
        raise ValueError(f"--target-class {settings.target_class} is not a class of the runs ({num_classes} classes)")
    class_names = parser.get_parsed_content("class_names") if "class_names" in parser else None
    cases, num_split = _positive_cases(settings, datalist, num_classes)
    num_positive = len(cases)
    if settings.max_cases:
        cases = cases[: settings.max_cases]
    print(f"{len(cases)} positive case(s) of split {settings.split!r} in {datalist}; {len(runs)} method(s)"
          + (f"; not run: {', '.join(missing)}" if missing else ""), flush=True)

    by_method: dict[str, dict[str, Any] | None] = {}
    found = {r.method: r for r in runs}
    for index, method in enumerate(settings.methods, 1):
        r = found.get(method)
        if r is None:
            by_method[method] = None
            continue
        print(f"[{index}/{len(settings.methods)}] {method}: {display_path(r.folder)}", flush=True)
        result = evaluate_method(r, cases, settings, log)
        result["training_command"] = r.result.get("command")
        by_method[method] = result
        s = result["summary"]
        hits = ", ".join(f"hit@{t} {_rate(s.get('hit', {}).get(str(t)))}" for t in settings.tops)
        print(f"  {method}: {s['n']} case(s), {hits}, "
              + ", ".join(f"pointing[{h}] {'/'.join(_value(v, False) for v in s['pointing'][h].values())} "
                          f"AUROC[{h}] {_value(s['auroc'][h], True)}" for h in s["pointing"])
              + f" ({result['seconds']:.1f} s)", flush=True)
    references = evaluate_references(runs[0], cases, settings)

    json_path = settings.output.with_suffix(".json")
    report = {
        "dataset": runs[0].result.get("dataset", settings.run_root.name),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": _machine(),
        "device": str(settings.device),
        "versions": _versions(),
        "command": settings.command,
        "settings": {
            "run_root": display_path(settings.run_root), "methods": settings.methods, "seed": settings.seed,
            "datalist": display_path(datalist), "split": settings.split, "target_class": settings.target_class,
            "class_name": class_names[settings.target_class] if class_names else None,
            "tops": settings.tops, "tolerance_px": settings.tolerances, "baseline_seed": settings.baseline_seed,
            "max_cases": settings.max_cases,
        },
        "num_positive": num_positive,
        "num_evaluated": len(cases),
        "num_split": num_split,
        "methods": by_method,
        "references": references,
        "json": display_path(json_path),
        "notes": settings.notes.read_text(encoding="utf-8") if settings.notes else None,
        "seconds": time.perf_counter() - started,
    }
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(json_path, compact_json(report))
    _atomic_write(settings.output, render_page(report))
    print(f"wrote {settings.output} and {json_path} ({report['seconds']:.1f} s)", flush=True)
    return report


_SCALAR = r"(?:-?[0-9][0-9.eE+-]*|true|false|null)"
_MEMBER = r'"[^"\\]*": ' + _SCALAR
_SCALAR_LIST = re.compile(r"\[\s*(" + _SCALAR + r"(?:,\s*" + _SCALAR + r")*)\s*\]")
_SCALAR_OBJECT = re.compile(r"\{\s*(" + _MEMBER + r"(?:,\s*" + _MEMBER + r")*)\s*\}")


def compact_json(value: Any) -> str:
    """JSON indented by 2, with lists of numbers, booleans and nulls, and objects of them, on one line.

    NaN and infinity are refused (``allow_nan=False``).
    """
    text = json.dumps(value, indent=2, default=_json_default, allow_nan=False)
    text = _SCALAR_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    text = _SCALAR_OBJECT.sub(lambda m: "{" + ", ".join(v.strip() for v in m.group(1).split(",\n")) + "}", text)
    return text + "\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; 0 on success, 2 for invalid arguments or runs that cannot be evaluated."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = validate_arguments(args, argv)
    except ValueError as err:
        parser.error(str(err))
    try:
        run(settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
