# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""How well the trained methods of a comparison localise lesions, on a datalist whose entries carry lesion masks.

For every method's finished run (:mod:`bundle.localization.compared_runs`), the network is rebuilt from the
config files and overrides recorded in ``result.json`` (``eval_configs`` and ``overrides``) with
:func:`bundle.config.build_network`, the checkpoint loaded strictly.
Every positive case (label = the class of interest) is preprocessed as the bundle evaluates it, and its lesion
mask takes the same spatial steps (:mod:`bundle.localization.mask_pipeline`). Then:

- slice scores (:func:`bundle.localization.slice_scores`) rank the slices: key-slice hit at top-k; the mean score
  of the lesion slices minus that of the others (``score_gap``, in the JSON: the attention gap of attention MIL);
- gradient x input heatmaps (:class:`bundle.localization.GradientTimesInput`) at the network's default layer
  and at the input: pointing game and pixel AUROC (:mod:`bundle.localization.metrics`).

Two reference rows need no network: slices in random order with a uniform random heatmap (seeded), and slices
ranked from the centre of the bag outwards (no heatmap). :func:`run` writes the page
(:func:`bundle.localization.evaluation_page.render_page`) and a JSON file with every case's numbers.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.config import build_network
from bundle.reports import atomic_write, code_state, code_text, display_path, machine_text, versions

from .compared_runs import RunInfo, find_runs, runs_datalist
from .evaluation_page import (
    CENTRAL_ROW,
    DASH,
    RANDOM_ROW,
    compact_json,
    format_rate,
    format_stat,
    render_page,
    tolerance_key,
)
from .mask_pipeline import datalist_entry_name, mask_pipeline
from .metrics import heatmap_auroc, instance_score_gap, key_slice_hit, lesion_slice_positions, pointing_game_hit

__all__ = [
    "DEFAULT_METHODS",
    "Settings",
    "case_metrics",
    "central_ranking",
    "evaluate_method",
    "evaluate_references",
    "positive_cases",
    "run",
    "stable_ranking",
    "summarise",
]

#: MIMS-CNN and the main baselines of Table 1 (run folders under the run root)
DEFAULT_METHODS = (
    "mims_cnn", "mi_pre", "mi_pre_conv", "mims_noresizing", "mi_pre_trident", "featpyra_4_5", "mims_patchcls",
)
#: overrides that are paths of one machine, left out of the report
_PATH_KEYS = ("datalist", "run_dir", "ckpt_path", "output_dir", "bundle_root", "tracking_uri", "experiment_name",
              "run_name")


# ------------------------------------------------------------------------------------------ per case


def stable_ranking(scores: Any) -> list[int]:
    """Bag positions by descending score ``[N]``; equal scores keep bag order (stable); ``-inf`` (padding)
    dropped."""
    import torch

    values = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    order = torch.sort(values, descending=True, stable=True).indices.tolist()
    return [int(i) for i in order if values[i] != float("-inf")]


def central_ranking(num_slices: int) -> list[int]:
    """Bag positions from the centre outwards (distance to ``(N - 1) / 2``; ties: lower position first)."""
    centre = (num_slices - 1) / 2.0
    return sorted(range(num_slices), key=lambda n: (abs(n - centre), n))


def case_metrics(
    ranking: Sequence[int], heatmaps: Mapping[str, Any], mask: Any, tops: Sequence[int],
    tolerances: Sequence[float],
) -> dict[str, Any]:
    """Key-slice hits of ``ranking`` (bag positions, best first; empty: no hits) for each of ``tops``; pointing
    game (per tolerance, px) and AUROC of each heatmap ``[N, h, w]`` against ``mask [N, h, w]``."""
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


def _case_line(name: str, index: int, total: int, metrics: Mapping[str, Any], extra: str = "") -> str:
    parts = [f"  case {index}/{total} {name}:{extra}"]
    if metrics.get("hit"):
        parts += [f"hit@{k} {'yes' if v else 'no'}" for k, v in metrics["hit"].items()]
    for layer, values in metrics["pointing"].items():
        pointing = "/".join(f"{v:.2f}" for v in values.values())
        auroc = metrics["auroc"][layer]
        parts.append(f"pointing[{layer}] {pointing} AUROC[{layer}] " + (DASH if auroc is None else f"{auroc:.3f}"))
    return " ".join(parts)


def _mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return {
        "mean": statistics.fmean(finite) if finite else None,
        "sd": statistics.stdev(finite) if len(finite) > 1 else None,
        "n": len(finite),
    }


def summarise(cases: Sequence[Mapping[str, Any]], tops: Sequence[int], heatmaps: Sequence[str]) -> dict[str, Any]:
    """Means over cases: hit rates per top, pointing game and heatmap AUROC per heatmap, the instance-score gap
    (when the cases have one); counts."""
    summary: dict[str, Any] = {"n": len(cases)}
    if cases and cases[0].get("hit") is not None:
        summary["hit"] = {str(t): {"hits": sum(bool(c["hit"][str(t)]) for c in cases), "n": len(cases)} for t in tops}
    keys = list(cases[0]["pointing"][heatmaps[0]]) if cases and heatmaps else []
    summary["pointing"] = {h: {k: _mean_sd([c["pointing"][h][k] for c in cases]) for k in keys} for h in heatmaps}
    summary["auroc"] = {h: _mean_sd([c["auroc"][h] for c in cases]) for h in heatmaps}
    if cases and "score_gap" in cases[0]:
        summary["score_gap"] = _mean_sd([c["score_gap"] for c in cases])
    if cases and "predicted_positive" in cases[0]:
        summary["predicted_positive"] = sum(bool(c["predicted_positive"]) for c in cases)
    return summary


# ------------------------------------------------------------------------------------------ per method


@dataclasses.dataclass
class Settings:
    """What to evaluate and how (the validated command line of ``scripts/evaluate_localization.py``).

    Attributes:
        run_root: folder holding ``<method>/seed<k>/{model.pt,result.json}``.
        methods: run folder names, in table order.
        seed: the training seed whose runs are evaluated.
        datalist: datalist with lesion masks; None: the one the runs were trained on.
        split: datalist split evaluated.
        target_class: the class of interest (positive cases, heatmaps, slice scores).
        tops: key-slice hit rates reported (ascending).
        tolerances: pointing-game tolerances in pixels (ascending).
        baseline_seed: seed of the random reference row.
        device: torch device of the networks.
        threads: torch CPU threads; None: torch's choice.
        max_cases: evaluate only the first positive cases; None: all.
        output: the markdown page; the JSON goes next to it (suffix ``.json``).
        notes: markdown file inserted under ``## Notes``; None: no such section.
        skip_missing: report methods without a finished run as not run instead of failing.
        quiet: one printed line per method instead of one per case.
        command: the command line, for the page.
    """

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


def _preprocessing_summary(parser: Any) -> dict[str, Any]:
    keys = ("image_size", "eval_num_slices", "slice_axis", "in_channels", "patch_size", "patch_overlap",
            "tissue_threshold", "tissue_side", "min_tissue_fraction")
    return {k: parser.get_parsed_content(k) for k in keys if k in parser}


def evaluate_method(
    run: RunInfo, cases: Sequence[Mapping[str, Any]], settings: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    """Localization numbers of one run on the positive ``cases``; prints progress through ``log``."""
    import torch

    from .grad_input import INPUT_LAYER, GradientTimesInput, default_layer
    from .provenance import slice_scores

    start = time.perf_counter()
    network, parser = build_network(run.configs, run.overrides, ckpt=run.checkpoint, device=settings.device)
    prepare = mask_pipeline(parser.get_parsed_content("preprocessing"))
    layer = default_layer(network)
    explainers = {"layer": GradientTimesInput(network, layer=layer), "input": GradientTimesInput(network, INPUT_LAYER)}
    if layer == INPUT_LAYER:
        explainers.pop("layer")
    per_case, skipped = [], []
    for i, entry in enumerate(cases, 1):
        tic = time.perf_counter()
        name = datalist_entry_name(entry)
        image, mask, indices = prepare(entry)
        if not bool(mask.any()):
            skipped.append(name)
            log(f"  case {i}/{len(cases)} {name}: no lesion in the evaluated slices, skipped")
            continue
        x = image[None].to(settings.device)
        scores, logits = slice_scores(network, x, class_index=settings.target_class)
        heatmaps = {key: e(x, class_index=settings.target_class)[0][0].cpu() for key, e in explainers.items()}
        metrics = case_metrics(stable_ranking(scores[0].cpu()), heatmaps, mask, settings.tops, settings.tolerances)
        gap = instance_score_gap(scores[0].cpu(), metrics["lesion_positions"])
        metrics["score_gap"] = None if gap is None else round(gap, 6)
        probability = float(torch.softmax(logits[0].float(), dim=0)[settings.target_class])
        metrics.update({
            "case": name,
            "image": display_path(entry["image"]),
            "probability": round(probability, 6),
            "predicted_positive": int(logits[0].argmax()) == settings.target_class,
            "lesion_slices": [int(indices[p]) for p in metrics["lesion_positions"]],
            "scored_slices": int(torch.count_nonzero(scores[0] != 0)),
            "seconds": round(time.perf_counter() - tic, 3),
        })
        per_case.append(metrics)
        log(_case_line(name, i, len(cases), metrics, f" p={probability:.3f}"))
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

    prepare = mask_pipeline(run.parser().get_parsed_content("preprocessing"))
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
        name = datalist_entry_name(entry)
        rows[RANDOM_ROW].append(
            {"case": name, **case_metrics(random_ranking, random_heatmap, mask, settings.tops, settings.tolerances)})
        rows[CENTRAL_ROW].append(
            {"case": name, **case_metrics(central_ranking(n), {}, mask, settings.tops, settings.tolerances)})
    return {
        RANDOM_ROW: {"cases": rows[RANDOM_ROW], "summary": summarise(rows[RANDOM_ROW], settings.tops, ["random"])},
        CENTRAL_ROW: {"cases": rows[CENTRAL_ROW], "summary": summarise(rows[CENTRAL_ROW], settings.tops, [])},
    }


# ------------------------------------------------------------------------------------------ the report


def positive_cases(datalist: Path, split: str, target_class: int, num_classes: int) -> tuple[list[dict], int]:
    """The entries of ``split`` with label ``target_class``, and the number of entries of the split.

    Raises:
        ValueError: a positive entry has no ``mask``, or there is no positive entry.
    """
    from bundle.datalist import load_datalist

    entries = load_datalist(datalist, split, num_classes)
    positives = [e for e in entries if e["label"] == target_class]
    lacking = [datalist_entry_name(e) for e in positives if not e.get("mask")]
    if lacking:
        raise ValueError(f"{len(lacking)} positive case(s) of split {split!r} in {datalist} have no 'mask': "
                         f"{', '.join(lacking[:5])}")
    if not positives:
        raise ValueError(f"split {split!r} of {datalist} has no case with label {target_class}")
    return positives, len(entries)


def _method_line(method: str, result: Mapping[str, Any], tops: Sequence[int]) -> str:
    s = result["summary"]
    hits = ", ".join(f"hit@{t} {format_rate(s.get('hit', {}).get(str(t)))}" for t in tops)
    return (f"  {method}: {s['n']} case(s), {hits}, "
            + ", ".join(f"pointing[{h}] {'/'.join(format_stat(v, False) for v in s['pointing'][h].values())} "
                        f"AUROC[{h}] {format_stat(s['auroc'][h], True)}" for h in s["pointing"])
            + f" ({result['seconds']:.1f} s)")


def run(settings: Settings) -> dict[str, Any]:
    """Evaluate every method and the reference rows; write the page and the JSON; return the report.

    Raises:
        ValueError: runs missing (unless ``skip_missing``) or none at all, a class or datalist that does not fit.
    """
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
    datalist = settings.datalist or runs_datalist(runs)
    parser = runs[0].parser()
    num_classes = int(parser.get_parsed_content("num_classes"))
    if settings.target_class >= num_classes:
        raise ValueError(f"--target-class {settings.target_class} is not a class of the runs ({num_classes} classes)")
    class_names = parser.get_parsed_content("class_names") if "class_names" in parser else None
    cases, num_split = positive_cases(datalist, settings.split, settings.target_class, num_classes)
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
        print(_method_line(method, result, settings.tops), flush=True)
    references = evaluate_references(runs[0], cases, settings)

    json_path = settings.output.with_suffix(".json")
    report = {
        "dataset": runs[0].result.get("dataset", settings.run_root.name),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_text(logical=False, os_key="system"),
        "device": str(settings.device),
        "versions": versions(),
        "command": settings.command,
        "code": code_text(code_state()),
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
    atomic_write(json_path, compact_json(report))
    atomic_write(settings.output, render_page(report))
    print(f"wrote {settings.output} and {json_path} ({report['seconds']:.1f} s)", flush=True)
    return report
