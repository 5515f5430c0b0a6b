# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Does GLAM-style global-local saliency localize small lesions in large images better than the plain heatmap?

:func:`run` does every step of ``scripts/evaluate_glam.py``:

1. the synthetic large-image dataset (``bundle.data.synthetic_large2d``) is generated unless its
   ``datalist.json`` exists;
2. MIMS-CNN is trained on it through the bundle unless a checkpoint is given;
3. the checkpoint is evaluated on the test split with ``configs/evaluate.json`` (steps 1-3:
   :mod:`bundle.localization.glam_training`);
4. on every positive test image, the plain gradient x input heatmap of the lesion class is compared with the
   fused map of :class:`bundle.localization.glam.GlobalLocalSaliency` for each window setting, and with the
   image intensity as a reference (:func:`localize`, :func:`score_map`);
5. the page, its figure (:mod:`bundle.localization.glam_report`) and ``glam_results.json`` are written.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bundle.reports import (
    LoadSampler,
    atomic_write,
    code_state,
    code_text,
    display_path,
    machine_text,
    shared_machine,
    versions_text,
)

from .glam_options import GlamOptions
from .glam_report import INTENSITY, PLAIN, command_lines, comparison_text, make_figure, render_report
from .glam_training import evaluate, prepare_dataset, train
from .mask_pipeline import datalist_entry_name
from .metrics import average_precision, heatmap_auroc, peak_distances, pointing_game_hit

__all__ = [
    "CaseResult",
    "MapScores",
    "Setting",
    "glam_settings",
    "localize",
    "run",
    "score_map",
    "shortcut_auroc",
    "summarize",
]

LESION_CLASS = 1


# ------------------------------------------------------------------------------------------- the scores


@dataclass
class MapScores:
    """Localization scores of one heatmap against one lesion mask."""

    pointing: float
    pointing_tolerant: float
    peak_distance: float
    auroc: float
    ap: float


def score_map(heatmap: np.ndarray, mask: np.ndarray, tolerance: float) -> MapScores:
    """All scores of the results table for one map ``[H, W]`` against its mask ``[H, W]`` (non-zero = lesion):
    pointing game, within ``tolerance`` px, peak distance (mean over tied maxima, px), pixel AUROC and AP.

    Raises:
        ValueError: shapes differ, the map holds NaN or infinity, or the mask has no lesion pixel.
    """
    distance = float(peak_distances(heatmap, mask).mean())
    return MapScores(
        pointing=pointing_game_hit(heatmap, mask, 0),
        pointing_tolerant=pointing_game_hit(heatmap, mask, tolerance),
        peak_distance=distance,
        auroc=heatmap_auroc(heatmap, mask),
        ap=average_precision(heatmap, mask),
    )


# ------------------------------------------------------------------------------------------- the steps


def shortcut_auroc(preprocessing: Any, datalist: Path) -> float:
    """AUROC of the mean intensity of the preprocessed (min-max scaled) test images as a lesion score.

    A value far from 0.5 means the label can be read off a global statistic without finding any lesion;
    the classifier may then be right for the wrong reason and its heatmaps need not point at lesions.
    NaN when the test split lacks one of the classes.
    """
    import torch

    from bundle.datalist import load_datalist

    items = load_datalist(datalist, "test", 2)
    means = [float(torch.as_tensor(preprocessing({"image": d["image"]})["image"]).mean()) for d in items]
    labels = np.array([int(d["label"]) for d in items])
    return heatmap_auroc(np.asarray(means), labels == LESION_CLASS)  # the images' means as the "pixels"


@dataclass
class Setting:
    """One GLAM-style configuration: square windows of ``window`` px, ``num_windows`` of them, a fusion rule."""

    window: int
    num_windows: int
    fusion: str

    @property
    def name(self) -> str:
        return f"GLAM-style fused ({self.fusion}), {self.num_windows} x {self.window} px window" + (
            "s" if self.num_windows > 1 else ""
        )


@dataclass
class CaseResult:
    """Per-image results of every map."""

    case: str
    prob_lesion: float
    scores: dict[str, MapScores] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)  # lesion pixels inside the windows
    seconds: dict[str, float] = field(default_factory=dict)


def glam_settings(options: GlamOptions) -> list[Setting]:
    """The main setting first (first window size, first number of windows, geometric fusion), then the
    same with the mean rule, then every other window size x number of windows with the geometric rule."""
    main = Setting(options.window_sizes[0], options.num_windows[0], "geometric")
    out = [main, Setting(main.window, main.num_windows, "mean")]
    for w in options.window_sizes:
        for n in options.num_windows:
            if (w, n) != (main.window, main.num_windows):
                out.append(Setting(w, n, "geometric"))
    return out


def localize(options: GlamOptions, network: Any, preprocessing: Any, datalist: Path,
             settings: Sequence[Setting]) -> tuple[list[CaseResult], list[dict[str, Any]]]:
    """Maps and scores on every positive test image; also returns the first three cases' maps for the figure.

    Args:
        options: image size, layer, tolerance, progress bars.
        network: the trained bag network (eval mode, on its device).
        preprocessing: the deterministic preprocessing at full resolution (image ``[1, C, H, W]``: a bag of one).
        datalist: the datalist; its test split's positive entries (with ``mask``) are used.
        settings: the window settings (:func:`glam_settings`), the main one first.

    Returns:
        ``(results, examples)``: one :class:`CaseResult` per positive image; for the first three, the full-resolution
        ``[H, W]`` maps, mask and windows that :func:`bundle.localization.glam_report.make_figure` draws.

    Raises:
        ValueError: the test split has no positive image.
    """
    import torch
    from tqdm.auto import tqdm

    from bundle.datalist import load_datalist
    from transforms import LoadVolume

    from .glam import GlobalLocalSaliency, fuse_maps

    device = next(network.parameters()).device
    items = [d for d in load_datalist(datalist, "test", 2) if int(d["label"]) == LESION_CLASS]
    if not items:
        raise ValueError(f"{datalist}: the test split has no positive image")
    load_mask = LoadVolume()
    results, examples = [], []
    for index, item in enumerate(tqdm(items, desc="GLAM-style saliency", unit="img", disable=options.no_progress)):
        image = torch.as_tensor(preprocessing({"image": item["image"]})["image"], dtype=torch.float32)
        x = image[None].to(device)  # [1, 1, C, H, W] full resolution
        mask = load_mask(item["mask"])[0].numpy() != 0
        maps = {INTENSITY: image[0].mean(dim=0).numpy()}
        windows: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        passes: dict[tuple[int, int], Any] = {}  # one global + local computation per window size and count
        for setting in settings:
            key = (setting.window, setting.num_windows)
            if key not in passes:
                start = time.perf_counter()
                glam = GlobalLocalSaliency(network, input_size=tuple(options.image_size), window_size=setting.window,
                                           num_windows=setting.num_windows, layer=options.layer, fusion="geometric")
                passes[key] = glam(x, class_index=LESION_CLASS)
                seconds[f"{setting.window}x{setting.num_windows}"] = time.perf_counter() - start
            out = passes[key]
            maps.setdefault(PLAIN, out.global_map[0].cpu().numpy())
            valid = out.windows[0, :, 0] >= 0
            boxes = out.windows[0][valid]
            if setting.fusion == "geometric":
                fused = out.fused_map[0]
            else:
                local = [out.local_maps[0, j] for j in range(setting.num_windows) if valid[j]]
                fused = fuse_maps(out.global_map[0], local, boxes, fusion=setting.fusion)
            maps[setting.name] = fused.cpu().numpy()
            windows[setting.name] = boxes.cpu().numpy()
        first = passes[(settings[0].window, settings[0].num_windows)]
        prob = float(torch.softmax(first.logits[0], dim=0)[LESION_CLASS])
        result = CaseResult(case=datalist_entry_name(item), prob_lesion=prob, seconds=seconds)
        for name, m in maps.items():
            result.scores[name] = score_map(m, mask, options.tolerance)
        for name, boxes in windows.items():
            covered = np.zeros_like(mask)
            for y0, x0, y1, x1 in boxes:
                covered[y0:y1, x0:x1] = True
            result.coverage[name] = float((covered & mask).sum() / mask.sum())
        results.append(result)
        if index < 3:
            examples.append({"case": result.case, "image": maps[INTENSITY], "mask": mask,
                             "global": maps[PLAIN], "fused": maps[settings[0].name],
                             "windows": windows[settings[0].name], "prob": prob})
    return results, examples


# ------------------------------------------------------------------------------------------------ output


def summarize(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """One row per map: means over images (median for the peak distance), window coverage and time."""
    rows = []
    for name in results[0].scores:
        s = [r.scores[name] for r in results]
        cov = [r.coverage[name] for r in results if name in r.coverage]
        rows.append({
            "map": name,
            "pointing": float(np.mean([v.pointing for v in s])),
            "pointing_tolerant": float(np.mean([v.pointing_tolerant for v in s])),
            "peak_distance_median": float(np.median([v.peak_distance for v in s])),
            "auroc": float(np.nanmean([v.auroc for v in s])),
            "ap": float(np.mean([v.ap for v in s])),
            "coverage": float(np.mean(cov)) if cov else None,
        })
    return rows




def _training_texts(options: GlamOptions, trained: dict[str, Any] | None) -> tuple[str, str]:
    """The page's sentences on the network's training and on its best validation score."""
    if trained is None:
        return f"checkpoint `{display_path(options.ckpt)}` reused (not trained by this run).", ""
    v = trained["validation"]
    overrides = ", ".join(f"{key}={json.dumps(value)}" for key, value in options.override)
    training_text = (
        f"MIMS-CNN with the bundle defaults (`configs/common.json`, `configs/train.json`: ResNet-10 stages 1-2 "
        f"from random initialisation, MSConv {{2(8), 3(10)}} at scales 1/2, 3/4, 1, top-k k = 5, AdamW, lr 2e-3) "
        f"and `configs/datasets/synthetic_large2d.json` (bags of one slice, images resized to "
        f"{options.image_size[0]}x{options.image_size[1]}, batch 8, random left-right flips), {options.epochs} "
        f"epoch(s) ({trained['iterations']} iterations), seed {options.seed}"
        + (f", overrides {overrides}" if options.override else "")
        + "; best checkpoint by validation AUROC."
    )
    return training_text, f"Best validation {v['metric']} {v['best']:.3f} at epoch {v['epoch']}."


def _load_text(load: dict[str, Any] | None) -> str:
    """The machine's 1-minute load during the run (:meth:`bundle.reports.LoadSampler.summary`), and whether other
    work shared it (:func:`bundle.reports.shared_machine`), which makes the times upper bounds."""
    if load is None:
        return "load average unknown on this system: the timings may include other work"
    text = (f"1-minute load average during the run: mean {load['one_minute_mean']:.1f}, max "
            f"{load['one_minute_max']:.1f} ({load['samples']} samples, every {load['interval_s']:.0f} s; "
            f"{load['usable_cores']} usable cores)")
    if shared_machine(load):
        text += "; other work shared the machine, so the times are upper bounds"
    return text


def _timings(options: GlamOptions, generate_s: float | None, trained: dict[str, Any] | None,
             metrics: dict[str, Any], results: Sequence[CaseResult], glam_s: float, started: float,
             load: dict[str, Any] | None) -> list[str]:
    timings = []
    if generate_s is not None:
        timings.append(f"data generation: {generate_s:.0f} s")
    if trained is not None:
        timings.append(f"training: {trained['train_s'] / 60:.1f} min ({options.epochs} epoch(s), validation after "
                       "each)")
    timings.append(f"bundle evaluation of the test split: {metrics['evaluate_s']:.0f} s")
    per_setting: dict[str, list[float]] = {}
    for r in results:
        for k, s in r.seconds.items():
            per_setting.setdefault(k, []).append(s)
    for k, s in per_setting.items():
        w, nw = k.split("x")
        timings.append(f"global + local passes, {nw} x {w} px window(s): {np.mean(s):.2f} s per image")
    total_min = (time.perf_counter() - started) / 60
    timings.append(f"localization step in all: {glam_s:.0f} s; whole script: {total_min:.1f} min")
    timings.append(_load_text(load))
    return timings


def run(options: GlamOptions, argv: Sequence[str]) -> dict[str, Any]:
    """Every step (see the module docstring); writes the page, the figure and ``<work_dir>/glam_results.json``.

    Args:
        options: what to do.
        argv: the command-line arguments of the run, for the page's command (:func:`command_lines`).

    Returns:
        the record written to ``glam_results.json``.
    """
    import torch

    from .grad_input import GradientTimesInput, default_layer

    started = time.perf_counter()
    sampler = LoadSampler().start()
    options.work_dir.mkdir(parents=True, exist_ok=True)
    datalist, generate_s = prepare_dataset(options)
    ckpt = options.ckpt if options.ckpt is not None else options.work_dir / "model.pt"
    trained = None if options.ckpt is not None else train(options, datalist, ckpt)
    metrics, network, preprocessing = evaluate(options, datalist, ckpt)
    settings = glam_settings(options)
    glam_start = time.perf_counter()
    results, examples = localize(options, network, preprocessing, datalist, settings)
    glam_s = time.perf_counter() - glam_start
    rows = summarize(results)

    data = json.loads(datalist.read_text(encoding="utf-8"))
    gen = data.get("generator", {})
    layer = options.layer or default_layer(network)
    # the layer's map at the input size (the largest call when an input pyramid runs it several times)
    feature: Any = "?"
    if options.layer is None:
        import torch

        probe = torch.zeros(1, 1, network.in_channels, *options.image_size, device=next(network.parameters()).device)
        _, _, sizes = GradientTimesInput(network, layer=layer).attributions(probe)
        feature = max(sizes, key=lambda hw: hw[0] * hw[1])
    training_text, validation_text = _training_texts(options, trained)
    ctx = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_text(logical=False, os_key="platform"),
        "device": str(next(network.parameters()).device),
        "versions": versions_text(labels={"python": "Python", "monai": "MONAI"}),
        "code": code_text(code_state()),
        "commands": command_lines(argv),
        "datalist": display_path(datalist),
        "data_description": data.get("description", ""),
        "split_sizes": ", ".join(f"{k} {len(data.get(k, []))}" for k in ("training", "validation", "test")),
        "generated_text": "reused" if generate_s is None else f"generated by this run in {generate_s:.0f} s",
        "training_text": training_text,
        "validation_text": validation_text,
        "image_size": "x".join(map(str, options.image_size)),
        "full_size": "x".join(map(str, gen.get("size", options.size))),
        "layer": layer,
        "feature_size": "x".join(map(str, feature)) if not isinstance(feature, str) else feature,
        "num_positive": len(results),
        "num_test": int(metrics.get("num_cases", len(data.get("test", [])))),
        "tolerance": options.tolerance,
        "test_auroc": float(metrics["auroc"]),
        "test_accuracy": float(metrics.get("accuracy", float("nan"))),
        "shortcut_auroc": shortcut_auroc(preprocessing, datalist),
        "rows": rows,
        "main_name": settings[0].name,
        "comparison_text": comparison_text(rows, settings[0].name, len(results)),
        "figure_rel": os.path.relpath(options.figure, options.report.parent),
        "timings": _timings(options, generate_s, trained, metrics, results, glam_s, started, sampler.stop()),
        "notes": options.note,
    }
    if examples:
        make_figure(examples, options.figure, settings[0].name)
    options.report.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(options.report, render_report(ctx))
    record = {"context": {k: v for k, v in ctx.items() if k != "rows"}, "rows": rows,
              "cases": [{"case": r.case, "prob_lesion": r.prob_lesion, "coverage": r.coverage, "seconds": r.seconds,
                         "scores": {k: vars(v) for k, v in r.scores.items()}} for r in results],
              "test_metrics": metrics, "training": trained, "device_cuda": torch.cuda.is_available()}
    (options.work_dir / "glam_results.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                                       encoding="utf-8")
    print(f"[glam] classification test AUROC {ctx['test_auroc']:.3f}; localization on {len(results)} positive images:")
    for r in rows:
        print(f"  {r['map']:<60} pointing {r['pointing']:.3f}  "
              f"within {options.tolerance:g}px {r['pointing_tolerant']:.3f}  "
              f"peak dist {r['peak_distance_median']:.1f}  AUROC {r['auroc']:.3f}  AP {r['ap']:.3f}")
    print(f"[glam] report written to {options.report}, figure to {options.figure}")
    return record
