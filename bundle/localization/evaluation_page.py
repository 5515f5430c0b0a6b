# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The page and the JSON file of a localization report (:func:`bundle.localization.evaluation.run`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CENTRAL_ROW", "DASH", "RANDOM_ROW", "compact_json", "format_rate", "format_stat", "render_page",
           "tolerance_key"]

#: what a table cell shows when there is no value
DASH = "–"
#: names of the reference rows in the report
RANDOM_ROW = "random"
CENTRAL_ROW = "central"


def tolerance_key(tolerance_px: float) -> str:
    """The key of a pointing-game tolerance in the results: ``0``, ``4``, ``1.5``."""
    return f"{tolerance_px:g}"


def format_rate(hit: Mapping[str, int] | None) -> str:
    """``0.667 (2/3)`` for ``{"hits": 2, "n": 3}``; a dash without cases."""
    if not hit or not hit["n"]:
        return DASH
    return f"{hit['hits'] / hit['n']:.3f} ({hit['hits']}/{hit['n']})"


def format_stat(stat: Mapping[str, Any] | None, sd: bool) -> str:
    """``0.512`` or, with ``sd``, ``0.512 ± 0.100`` for ``{"mean": ..., "sd": ...}``; a dash without a mean."""
    if not stat or stat["mean"] is None:
        return DASH
    text = f"{stat['mean']:.3f}"
    if sd and stat["sd"] is not None:
        text += f" ± {stat['sd']:.3f}"
    return text


def _row(label: str, summary: Mapping[str, Any] | None, tops: Sequence[int], tolerances: Sequence[str],
         cells: Mapping[str, str], heat: Mapping[str, str], with_gap: bool = True) -> str:
    """One table row; ``heat`` maps the columns 'layer' and 'input' to the summary's heatmap names; ``with_gap``:
    the score-gap column (reports from before it have none)."""
    s = summary or {}
    hits = [format_rate(s.get("hit", {}).get(str(t))) for t in tops]
    gap = [format_stat(s.get("score_gap"), True)] if with_gap else []
    pointing = [format_stat(s.get("pointing", {}).get(heat[c], {}).get(k) if c in heat else None, False)
                for c in ("layer", "input") for k in tolerances]
    auroc = [format_stat(s.get("auroc", {}).get(heat[c]) if c in heat else None, True) for c in ("layer", "input")]
    n = str(s.get("n", DASH)) if summary else DASH
    return "| " + " | ".join([label, cells.get("layer", DASH), n, cells.get("classification", DASH), *hits, *gap,
                              *pointing, *auroc]) + " |"


def _slice_text(pre: Mapping[str, Any]) -> str:
    return (f"slices `{pre.get('image_size')}` (h, w), the central {pre.get('eval_num_slices')} slices along "
            f"spatial axis {pre.get('slice_axis')}")


def _patch_text(pre: Mapping[str, Any]) -> str:
    """The patch tiling of a patch-bag run (``configs/datasets/patch_bags.json``)."""
    threshold = pre.get("tissue_threshold")
    kept = ("every patch of the grid" if threshold is None else
            f"the patches with at least {pre.get('min_tissue_fraction')} of their pixels {pre.get('tissue_side')} "
            f"{threshold} (tissue)")
    return (f"each image tiled into patches `{pre.get('patch_size')}` (h, w; overlap {pre.get('patch_overlap', 0)}), "
            f"{kept}, each resized to `{pre.get('image_size')}`")


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
    summaries = [m["summary"] for m in methods.values() if m is not None]
    summaries += [r["summary"] for r in report["references"].values()] if report["references"] else []
    with_gap = any("score_gap" in summary for summary in summaries)
    gap_columns = ["score gap"] if with_gap else []
    lines = [
        f"# Localization quality: {report['dataset']}",
        "",
        f"- Date: {report['date']}",
        f"- Machine: {report['machine']}; device: {report['device']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        f"- Command: `{report['command']}` ({report['seconds']:.0f} s in all)",
        f"- Code: {report['code']}",
        f"- Datalist: `{s['datalist']}`, split `{s['split']}`: {report['num_positive']} positive cases (label "
        f"{s['target_class']}) with lesion masks, of {report['num_split']} cases"
        + (f"; only the first {report['num_evaluated']} evaluated (`--max-cases`)" if s["max_cases"] else ""),
        f"- Runs: `{s['run_root']}/<method>/seed{s['seed']}/` (`model.pt`, network and preprocessing rebuilt from the "
        "run's `result.json`: its `eval_configs` and `overrides`)",
    ]
    if training_commands:
        lines.append("- Runs trained by: " + "; ".join(f"`{c}`" for c in training_commands))
    patches = "patch_size" in pre
    if pre:
        lines.append(f"- Preprocessing (of the runs; the reference rows use that of `{first['method']}`): "
                     + (_patch_text(pre) if patches else _slice_text(pre)) + "; the mask takes the same spatial steps "
                     "with nearest-neighbour resizing and is binarised (non-zero = lesion)")
    lines += [
        f"- Class of interest: {s['target_class']} (`{s.get('class_name') or s['target_class']}`); pointing-game "
        f"tolerances: {', '.join(tolerances)} px; reference seed: {s['baseline_seed']}",
        "",
        "## Metrics",
        "",
        "Computed on every positive case of the split whose evaluated (central, resized) slices hold a lesion "
        "pixel, at the resolution the network sees."
        + (" The runs read 2-D images as bags of patches: each patch is an instance, so read *patch* for *slice* "
           "below (key patches, lesion patches; the pointing game's 'same slice' is the same patch)." if patches
           else ""),
        "",
        "- **hit@k** (key-slice hit rate): fraction of cases where at least one of the k best-ranked slices holds a "
        "lesion. Slices are ranked by `bundle.localization.slice_scores` for the class of interest (embedding "
        "networks: each slice's share of the logit margin through its pooled top-k activations; per-slice "
        "networks: the slice's own margin). Equal scores keep bag order, lowest slice first (top-k networks give "
        "0 to slices that supplied no pooled activation).",
        *(["- **score gap**: mean score of the lesion slices (or patches) minus that of the other slices of the "
        "case, by the scores that rank them, mean ± SD over cases. For attention MIL the scores are the attention "
        "weights (each bag's sum to 1), so this is the attention gap between positive and negative instances that "
        "Liu et al. (2024) compare between softmax and squared-average attention; between networks with other "
        "scores only its sign compares."] if with_gap else []),
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
                            *gap_columns, *pointing_columns, "heatmap AUROC (layer)", "heatmap AUROC (input)"]) + " |",
        "|---|---|---|---|" + "---|" * (len(tops) + len(gap_columns) + len(pointing_columns) + 2),
    ]
    for key, m in methods.items():
        if m is None:
            lines.append(_row(f"{key} (not run)", None, tops, tolerances, {}, {}, with_gap))
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
        lines.append(_row(m["display_name"], summary, tops, tolerances, cells, heat, with_gap))
    refs = report["references"]
    if refs:
        lines.append(_row("*random* (reference)", refs[RANDOM_ROW]["summary"], tops, tolerances,
                          {"layer": "uniform noise (in both)"}, {"layer": "random", "input": "random"}, with_gap))
        lines.append(_row("*central* (reference)", refs[CENTRAL_ROW]["summary"], tops, tolerances, {}, {}, with_gap))
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


_SCALAR = r"(?:-?[0-9][0-9.eE+-]*|true|false|null)"
_MEMBER = r'"[^"\\]*": ' + _SCALAR
_SCALAR_LIST = re.compile(r"\[\s*(" + _SCALAR + r"(?:,\s*" + _SCALAR + r")*)\s*\]")
_SCALAR_OBJECT = re.compile(r"\{\s*(" + _MEMBER + r"(?:,\s*" + _MEMBER + r")*)\s*\}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def compact_json(value: Any) -> str:
    """JSON indented by 2, with lists of numbers, booleans and nulls, and objects of them, on one line.

    Arrays and tensors are written as lists. NaN and infinity are refused (``allow_nan=False``: ValueError).
    """
    text = json.dumps(value, indent=2, default=_json_default, allow_nan=False)
    text = _SCALAR_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    text = _SCALAR_OBJECT.sub(lambda m: "{" + ", ".join(v.strip() for v in m.group(1).split(",\n")) + "}", text)
    return text + "\n"
