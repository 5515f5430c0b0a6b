# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Does GLAM-style global-local saliency localize small lesions in large images better than the plain heatmap?

Steps:

1. the synthetic large-image dataset (``bundle.data.synthetic_large2d``; 512 x 512 grey PNGs, label 1 =
   1-2 bright lesions of radius 4-6 px) is generated into ``--data`` unless its ``datalist.json``
   exists there;
2. MIMS-CNN is trained on it through the bundle (``monai.bundle.ConfigWorkflow`` with
   ``configs/common.json`` + ``configs/train.json`` + ``configs/datasets/synthetic_large2d.json``:
   images resized to ``--image-size``, bags of one slice), unless ``--ckpt`` gives a checkpoint;
3. the checkpoint is evaluated on the test split with ``configs/evaluate.json`` (classification AUROC);
4. on every positive test image, the plain gradient x input heatmap of the lesion class (global pass
   at ``--image-size``, upsampled to full resolution) is compared with the GLAM-style fused map of
   :class:`bundle.localization.glam.GlobalLocalSaliency` for each window size x number of windows
   asked for, and with the image intensity itself as a reference: pointing game (the map's maximum
   inside the lesion mask, and within ``--tolerance`` px of it), distance from the maximum to the
   nearest lesion pixel, pixel AUROC and pixel average precision against the mask;
5. a results page (``--report``) with date, machine, versions, the commands, the settings, the table,
   timings and a figure of three examples (``--figure``) is written.

Example::

    python scripts/evaluate_glam.py                      # generate, train (~10 min on 2 CPU cores), evaluate, report
    python scripts/evaluate_glam.py --ckpt runs/glam/model.pt --window-sizes 256 --num-windows 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from script_support import display_path, machine_info, override_arg

__all__ = [
    "MapScores",
    "average_precision",
    "build_parser",
    "command_lines",
    "main",
    "peak_distances",
    "pixel_auroc",
    "pointing_game",
    "score_map",
    "shortcut_auroc",
]

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DATASET_OVERLAY = CONFIGS / "datasets" / "synthetic_large2d.json"
LESION_CLASS = 1
#: names of the two reference maps in the results table
PLAIN = "plain heatmap (global pass)"
INTENSITY = "image intensity (reference)"


# ------------------------------------------------------------------------------------------ map metrics


def _check(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heatmap, mask = np.asarray(heatmap, dtype=np.float64), np.asarray(mask) != 0
    if heatmap.shape != mask.shape or heatmap.ndim != 2:
        raise ValueError(f"heatmap {heatmap.shape} and mask {mask.shape} must be the same [H, W] shape")
    if not mask.any():
        raise ValueError("the mask has no lesion pixel")
    if not np.isfinite(heatmap).all():
        raise ValueError("the heatmap holds NaN or infinite values")
    return heatmap, mask


def peak_distances(heatmap: np.ndarray, mask: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance (px) from every pixel holding the heatmap's maximum to the nearest lesion pixel.

    Args:
        heatmap: ``[H, W]`` map.
        mask: ``[H, W]``, non-zero = lesion (at least one lesion pixel).
        chunk: peak pixels processed at once (memory bound only).

    Returns:
        ``[P]`` distances, one per tied maximum (0 for a maximum inside the lesion).
    """
    heatmap, mask = _check(heatmap, mask)
    peaks = np.argwhere(heatmap == heatmap.max()).astype(np.float64)
    lesion = np.argwhere(mask).astype(np.float64)
    out = np.empty(len(peaks))
    for start in range(0, len(peaks), chunk):
        block = peaks[start : start + chunk]
        d2 = ((block[:, None, :] - lesion[None, :, :]) ** 2).sum(axis=2)
        out[start : start + chunk] = np.sqrt(d2.min(axis=1))
    return out


def pointing_game(heatmap: np.ndarray, mask: np.ndarray, tolerance: float = 0.0) -> float:
    """Pointing game: 1 when the heatmap's maximum lies within ``tolerance`` px of a lesion pixel, else 0.

    Ties count fractionally: with several pixels at the maximum, the fraction of them that hit (the
    expected hit of a random tie-break), so a constant map scores the chance level.
    """
    return float((peak_distances(heatmap, mask) <= tolerance).mean())


def pixel_auroc(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Pixel AUROC: probability that a random lesion pixel scores above a random background pixel (ties 1/2)."""
    heatmap, mask = _check(heatmap, mask)
    pos, neg = heatmap[mask], np.sort(heatmap[~mask])
    if neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (pos.size * neg.size))


def average_precision(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Pixel average precision: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct heatmap values, high to low.

    Pixels of equal value enter together (one threshold), so ties are never broken in anyone's favour.
    A map that ranks every lesion pixel first scores 1; a constant map scores the lesion's pixel share.
    """
    heatmap, mask = _check(heatmap, mask)
    values, inverse = np.unique(-heatmap.ravel(), return_inverse=True)  # ascending -value = descending value
    tp = np.bincount(inverse, weights=mask.ravel().astype(np.float64), minlength=len(values)).cumsum()
    total = np.bincount(inverse, minlength=len(values)).cumsum()
    precision, recall = tp / total, tp / tp[-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


@dataclass
class MapScores:
    """Localization scores of one heatmap against one lesion mask."""

    pointing: float
    pointing_tolerant: float
    peak_distance: float
    auroc: float
    ap: float


def score_map(heatmap: np.ndarray, mask: np.ndarray, tolerance: float) -> MapScores:
    """All scores of the results table for one map (``peak_distance``: mean over tied maxima, px)."""
    d = peak_distances(heatmap, mask)
    return MapScores(
        pointing=float((d <= 0).mean()),
        pointing_tolerant=float((d <= tolerance).mean()),
        peak_distance=float(d.mean()),
        auroc=pixel_auroc(heatmap, mask),
        ap=average_precision(heatmap, mask),
    )


# ------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Train MIMS-CNN on synthetic large 2D images with small lesions (or reuse a checkpoint) and compare "
            "the plain gradient x input heatmap with the GLAM-style global-local fused map on the positive test "
            "images: pointing game, peak distance, pixel AUROC and average precision against the lesion masks. "
            "Writes a markdown page and a PNG figure."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, default=REPO / "data" / "synthetic_large2d",
                   help="dataset folder; generated there unless it holds a datalist.json")
    g.add_argument("--num-train", type=int, default=240, help="training images when generating")
    g.add_argument("--num-val", type=int, default=60, help="validation images when generating")
    g.add_argument("--num-test", type=int, default=60, help="test images when generating")
    g.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=[512, 512],
                   help="full-resolution image size when generating")
    g.add_argument("--lesion-radius", type=float, nargs=2, metavar=("MIN", "MAX"), default=[4.0, 6.0],
                   help="lesion radius in px when generating")
    g.add_argument("--lesion-contrast", type=float, nargs=2, metavar=("MIN", "MAX"), default=[0.25, 0.4],
                   help="brightness a lesion adds (intensities in [0, 1]) when generating")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the generated dataset")
    g = p.add_argument_group("training")
    g.add_argument("--work-dir", type=Path, default=REPO / "runs" / "glam",
                   help="folder for the run: checkpoints (train/), model.pt, eval/, glam_results.json")
    g.add_argument("--ckpt", type=Path, default=None,
                   help="use this checkpoint (a model state dict saved by the bundle) instead of training")
    g.add_argument("--epochs", type=int, default=12, help="training epochs")
    g.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=[256, 256],
                   help="network input size of whole images (global resolution); training uses it too")
    g.add_argument("--seed", type=int, default=0, help="training seed")
    g.add_argument("--override", action="append", type=override_arg, default=[], metavar="KEY=JSON",
                   help="extra bundle config override for training and evaluation, e.g. learning_rate=0.001 "
                        "(value parsed as JSON, else taken as a string); repeatable")
    g = p.add_argument_group("GLAM-style saliency")
    g.add_argument("--window-sizes", type=int, nargs="+", default=[256, 128],
                   help="window sizes (square, full-resolution px) to evaluate; the first is the main setting")
    g.add_argument("--num-windows", type=int, nargs="+", default=[1, 2],
                   help="windows per image to evaluate; the first is the main setting")
    g.add_argument("--layer", default=None,
                   help="layer of the gradient x input maps; default: the deepest backbone stage used")
    g.add_argument("--tolerance", type=float, default=8.0,
                   help="a maximum within this many px of a lesion pixel counts as a tolerant pointing hit")
    g = p.add_argument_group("output")
    g.add_argument("--report", type=Path, default=REPO / "docs" / "results" / "glam.md", help="markdown page")
    g.add_argument("--figure", type=Path, default=REPO / "docs" / "results" / "glam_examples.png",
                   help="PNG figure of three examples (the first three positive test images)")
    g.add_argument("--note", action="append", default=[],
                   help="a paragraph for the page's Notes section (e.g. what was changed since an earlier run); "
                        "repeatable")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.ckpt is not None and not args.ckpt.is_file():
        raise ValueError(f"--ckpt {args.ckpt} is not a file")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if min(args.window_sizes) < 1 or min(args.num_windows) < 1 or min(args.image_size) < 1:
        raise ValueError("--window-sizes, --num-windows and --image-size must be positive")
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0, got {args.tolerance}")


# ------------------------------------------------------------------------------------------- the steps


def prepare_dataset(args: argparse.Namespace) -> tuple[Path, float | None]:
    """The datalist: generated unless it exists. Returns its path and the generation time (None if reused)."""
    from bundle.data.synthetic_large2d import SyntheticLarge2DConfig, make_synthetic_large2d_dataset

    datalist = args.data / "datalist.json"
    if datalist.is_file():
        print(f"[glam] using the existing dataset {datalist}", flush=True)
        return datalist, None
    print(f"[glam] generating the dataset in {args.data}", flush=True)
    start = time.perf_counter()
    make_synthetic_large2d_dataset(
        args.data, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test, seed=args.data_seed,
        size=tuple(args.size), progress=not args.no_progress,
        config=SyntheticLarge2DConfig(lesion_radius=tuple(args.lesion_radius),
                                      lesion_contrast=tuple(args.lesion_contrast)),
    )
    return datalist, time.perf_counter() - start


def _overrides(args: argparse.Namespace, datalist: Path, ckpt: Path) -> dict[str, Any]:
    return {
        "bundle_root": str(REPO),
        "dataset_dir": str(datalist.parent),
        "datalist": str(datalist),
        "ckpt_path": str(ckpt),
        "output_dir": str(args.work_dir / "eval"),
        "image_size": list(args.image_size),
        "seed": args.seed,
        **dict(args.override),
    }


def _workflow(configs: Sequence[Path], workflow_type: str, overrides: dict[str, Any]) -> Any:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=[str(c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    workflow.initialize()
    return workflow


def train(args: argparse.Namespace, datalist: Path, ckpt: Path) -> dict[str, Any]:
    """Train through the bundle; the best checkpoint (validation AUROC) is promoted to ``ckpt``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    overrides = {
        **_overrides(args, datalist, ckpt),
        "epochs": args.epochs,
        "run_dir": str(args.work_dir / "train" / stamp),
        "num_overlay_cases": 0,  # no validation heatmaps during training
    }
    print(f"[glam] training MIMS-CNN for {args.epochs} epochs (run folder {overrides['run_dir']})", flush=True)
    workflow = _workflow([CONFIGS / "common.json", CONFIGS / "train.json", DATASET_OVERLAY], "train", overrides)
    start = time.perf_counter()
    try:
        workflow.run()
        state = workflow.parser.get_parsed_content("validate#evaluator").state
        best = {"metric": state.key_metric_name, "best": float(state.best_metric),
                "epoch": int(state.best_metric_epoch)}
        iterations = int(workflow.parser.get_parsed_content("train#trainer").state.iteration)
    finally:
        workflow.finalize()
    return {"train_s": time.perf_counter() - start, "validation": best, "iterations": iterations,
            "run_dir": overrides["run_dir"]}


def evaluate(args: argparse.Namespace, datalist: Path, ckpt: Path) -> tuple[dict[str, Any], Any, Any]:
    """Bundle evaluation on the test split; returns the metrics, the loaded network and the deterministic
    preprocessing (load, channels, intensity scaling, bag: full resolution, no resizing)."""
    from monai.transforms import Compose

    print(f"[glam] evaluating {ckpt} on the test split", flush=True)
    overrides = {**_overrides(args, datalist, ckpt), "eval_split": "test"}
    workflow = _workflow([CONFIGS / "common.json", CONFIGS / "evaluate.json", DATASET_OVERLAY], "eval", overrides)
    start = time.perf_counter()
    try:
        workflow.run()
        network = workflow.parser.get_parsed_content("network")
        preprocessing = Compose(workflow.parser.get_parsed_content("deterministic_transforms"))
    finally:
        workflow.finalize()
    metrics = json.loads((args.work_dir / "eval" / "metrics.json").read_text(encoding="utf-8"))
    metrics["evaluate_s"] = time.perf_counter() - start
    return metrics, network, preprocessing


def shortcut_auroc(preprocessing: Any, datalist: Path) -> float:
    """AUROC of the mean intensity of the preprocessed (min-max scaled) test images as a lesion score.

    A value far from 0.5 means the label can be read off a global statistic without finding any lesion;
    the classifier may then be right for the wrong reason and its heatmaps need not point at lesions.
    """
    import torch

    from bundle.datalist import load_datalist

    items = load_datalist(datalist, "test", 2)
    means = [float(torch.as_tensor(preprocessing({"image": d["image"]})["image"]).mean()) for d in items]
    labels = np.array([int(d["label"]) for d in items])
    pos, neg = np.asarray(means)[labels == LESION_CLASS], np.sort(np.asarray(means)[labels != LESION_CLASS])
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    return float((below + 0.5 * (np.searchsorted(neg, pos, side="right") - below)).sum() / (pos.size * neg.size))


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


def settings_from_args(args: argparse.Namespace) -> list[Setting]:
    """The main setting first (first window size, first number of windows, geometric fusion), then the
    same with the mean rule, then every other window size x number of windows with the geometric rule."""
    main = Setting(args.window_sizes[0], args.num_windows[0], "geometric")
    out = [main, Setting(main.window, main.num_windows, "mean")]
    for w in args.window_sizes:
        for n in args.num_windows:
            if (w, n) != (main.window, main.num_windows):
                out.append(Setting(w, n, "geometric"))
    return out


def localize(args: argparse.Namespace, network: Any, preprocessing: Any, datalist: Path,
             settings: Sequence[Setting]) -> tuple[list[CaseResult], list[dict[str, Any]]]:
    """Maps and scores on every positive test image; also returns the first three cases' maps for the figure."""
    import torch
    from tqdm.auto import tqdm

    from bundle.datalist import load_datalist
    from bundle.localization.glam import GlobalLocalSaliency, fuse_maps
    from transforms import LoadVolume

    device = next(network.parameters()).device
    items = [d for d in load_datalist(datalist, "test", 2) if int(d["label"]) == LESION_CLASS]
    if not items:
        raise ValueError(f"{datalist}: the test split has no positive image")
    load_mask = LoadVolume()
    results, examples = [], []
    for index, item in enumerate(tqdm(items, desc="GLAM-style saliency", unit="img", disable=args.no_progress)):
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
                glam = GlobalLocalSaliency(network, input_size=tuple(args.image_size), window_size=setting.window,
                                           num_windows=setting.num_windows, layer=args.layer, fusion="geometric")
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
        result = CaseResult(case=Path(item["image"]).name, prob_lesion=prob, seconds=seconds)
        for name, m in maps.items():
            result.scores[name] = score_map(m, mask, args.tolerance)
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


def make_figure(examples: Sequence[dict[str, Any]], path: Path, main_name: str) -> None:
    """Image (lesion outlined, windows drawn), plain heatmap, fused map, and the first window enlarged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(examples), 4, figsize=(13, 3.3 * len(examples)), squeeze=False)
    for row, ex in zip(axes, examples):
        gy, gx = np.unravel_index(np.argmax(ex["global"]), ex["global"].shape)
        fy, fx = np.unravel_index(np.argmax(ex["fused"]), ex["fused"].shape)
        panels = [(ex["image"], "gray", f"{ex['case']}  p(lesion) = {ex['prob']:.2f}"),
                  (ex["global"], "inferno", "plain heatmap (global pass)"),
                  (ex["fused"], "inferno", "GLAM-style fused map")]
        for ax, (img, cmap, title) in zip(row[:3], panels):
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if cmap == "inferno" else None)
            ax.contour(ex["mask"], levels=[0.5], colors="cyan", linewidths=0.8)
            for y0, x0, y1, x1 in ex["windows"]:
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.2))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        row[1].plot(gx, gy, "x", color="white", ms=8, mew=2)
        row[2].plot(fx, fy, "+", color="white", ms=10, mew=2)
        if len(ex["windows"]):
            y0, x0, y1, x1 = ex["windows"][0]
            ax = row[3]
            ax.imshow(ex["image"][y0:y1, x0:x1], cmap="gray", extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5))
            ax.contour(np.arange(x0, x1), np.arange(y0, y1), ex["mask"][y0:y1, x0:x1], levels=[0.5], colors="cyan",
                       linewidths=0.8)
            for (py, px, marker, label) in ((gy, gx, "x", "plain max"), (fy, fx, "+", "fused max")):
                if y0 <= py < y1 and x0 <= px < x1:
                    ax.plot(px, py, marker, color="red" if marker == "x" else "yellow", ms=10, mew=2, label=label)
            ax.legend(fontsize=7, loc="lower right")
            ax.set_title("first window, full resolution", fontsize=9)
        row[3].axis("off")
    fig.suptitle(f"cyan: lesion mask; green: windows of '{main_name}'", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    from PIL import Image

    with Image.open(path) as img:  # 256 colours: about 40 % smaller, no visible change
        quantized = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    quantized.save(path, optimize=True)


def machine_text() -> str:
    m = machine_info()
    return f"{m['cpu']}, {m['usable_cores']} usable cores, {m['platform']}"


def versions_text() -> str:
    import monai
    import torch

    return (f"Python {platform.python_version()}, torch {torch.__version__}, MONAI {monai.__version__}, "
            f"numpy {np.__version__}")


def _fmt(value: float | None, digits: int = 3, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{100 * value:.0f} %" if percent else f"{value:.{digits}f}"


def render_report(ctx: dict[str, Any]) -> str:
    """The markdown page (``ctx`` holds everything measured, see :func:`main`)."""
    rows, n, tol = ctx["rows"], ctx["num_positive"], ctx["tolerance"]
    lines = [
        "# GLAM-style global-local saliency vs the plain heatmap on large images with small lesions",
        "",
        f"Generated by `scripts/evaluate_glam.py` on {ctx['date']}. Machine: {ctx['machine']}; device "
        f"`{ctx['device']}`. {ctx['versions']}.",
        "",
        "## Question",
        "",
        "A classifier sees a large image at a reduced resolution, so its gradient x input heatmap is coarse: one cell "
        "of MIMS-CNN's deepest feature map covers many full-resolution pixels. GLAM (Liu et al., MIDL 2021) "
        "re-analyses "
        "the most salient windows at full resolution and fuses their fine saliency into the global map. Does that "
        "localize small lesions better than the plain heatmap? `bundle.localization.glam.GlobalLocalSaliency` is a "
        "simplified GLAM (one network for both passes, gradient x input saliency, fixed fusion rule; its module "
        "docstring lists the simplifications).",
        "",
        "## Commands",
        "",
        "```bash",
        *ctx["commands"],
        "```",
        "",
        "## Settings",
        "",
        f"- **Data**: `{ctx['datalist']}`: {ctx['data_description']} Splits: {ctx['split_sizes']}; "
        f"{ctx['generated_text']}.",
        f"- **Network and training**: {ctx['training_text']}",
        f"- **Global pass**: the full-resolution image ({ctx['full_size']}) resized to {ctx['image_size']} (area), "
        f"gradient x input of the class `lesion` at `{ctx['layer']}` (feature map {ctx['feature_size']}), "
        "clamped at 0, "
        "scaled to [0, 1] per image, bilinear to full resolution: the **plain heatmap**.",
        f"- **Local pass**: windows of the given size chosen greedily by mean plain-heatmap value (one-pixel stride, "
        f"disjoint), cropped from the full-resolution image and resized to {ctx['image_size']} (no resizing when the "
        "window has that size); their gradient x input maps of the same class are scaled to [0, 1] per window. "
        "**Fusion**: `geometric` = sqrt(global x local) inside windows, `mean` = 0.5 global + 0.5 local; the plain "
        "heatmap elsewhere.",
        f"- **Scores** on the {n} positive test images (the class `lesion` is explained whatever the prediction): "
        f"pointing game = the map's maximum inside the lesion mask (ties count fractionally); within {tol:g} px = the "
        "maximum at most that far from a lesion pixel; peak distance = distance from the maximum to the nearest lesion "
        "pixel (median over images); pixel AUROC and pixel average precision (AP) of the map against the mask (mean "
        "over images); window coverage = share of lesion pixels inside the chosen windows. The first GLAM row is the "
        "setting fixed before the run; the others are variations reported alongside, not a tuned choice. The image "
        "intensity itself (lesions are bright) is a reference, not a saliency method.",
        "",
        "## Results",
        "",
        f"Classification, test split ({ctx['num_test']} images, `configs/evaluate.json`): "
        f"**AUROC {ctx['test_auroc']:.3f}**, "
        f"accuracy {ctx['test_accuracy']:.3f}. {ctx['validation_text']} Shortcut check: the mean intensity of the "
        f"scaled test images alone, used as a lesion score, has AUROC {ctx['shortcut_auroc']:.3f} (0.5 = no "
        "image-level shortcut).",
        "",
        f"Localization on the {n} positive test images:",
        "",
        f"| map | pointing game | within {tol:g} px | peak distance (px, median) | pixel AUROC | pixel AP "
        "| window coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"**{r['map']}**" if r["map"] == ctx["main_name"] else r["map"]
        lines.append(
            f"| {name} | {_fmt(r['pointing'], percent=True)} | {_fmt(r['pointing_tolerant'], percent=True)} | "
            f"{_fmt(r['peak_distance_median'], 1)} | {_fmt(r['auroc'])} | {_fmt(r['ap'])} | "
            f"{_fmt(r['coverage'], percent=True)} |"
        )
    lines += ["", ctx["comparison_text"], "", f"![examples]({ctx['figure_rel']})", "",
              "*The first three positive test images in datalist order (not selected). Columns: image with the lesion "
              "outlined and the windows; plain heatmap (x: its maximum); GLAM-style fused map of the main setting "
              "(+: its maximum); the first window at full resolution with both maxima.*", "", "## Timings", ""]
    lines += [f"- {t}" for t in ctx["timings"]]
    if ctx["notes"]:
        lines += ["", "## Notes", ""] + [f"{note}\n" for note in ctx["notes"]]
    lines += ["", "Per-image numbers: `glam_results.json` in the work folder (not committed).", ""]
    return "\n".join(lines)


def comparison_text(rows: Sequence[dict[str, Any]], main_name: str, n: int) -> str:
    """Plain sentences comparing the main GLAM-style row with the plain heatmap (no judgement beyond the numbers)."""
    by = {r["map"]: r for r in rows}
    g, f = by[PLAIN], by[main_name]

    def change(key: str, percent: bool = False, digits: int = 3) -> str:
        a, b = g[key], f[key]
        if percent:
            return f"{100 * a:.0f} % → {100 * b:.0f} %"
        return f"{a:.{digits}f} → {b:.{digits}f}"

    better = sum(f[k] > g[k] for k in ("pointing", "pointing_tolerant", "auroc", "ap")) + (
        f["peak_distance_median"] < g["peak_distance_median"])
    return (
        f"Main setting vs plain heatmap (n = {n}): pointing game {change('pointing', True)}, within tolerance "
        f"{change('pointing_tolerant', True)}, median peak distance {change('peak_distance_median', digits=1)} px, "
        f"pixel AUROC {change('auroc')}, pixel AP {change('ap')}; the GLAM-style map is better on {better} of these 5 "
        f"numbers. With {n} images, one image is {100 / n:.1f} percentage points of the pointing game."
    )


def command_lines(argv: Sequence[str]) -> list[str]:
    """The command of this run for the page; ``--note`` texts (printed in the Notes section) become variables."""
    words, notes = [], []
    it = iter(argv)
    for word in it:
        if word == "--note" or word.startswith("--note="):
            notes.append(word.split("=", 1)[1] if "=" in word else next(it, ""))
            words.append(f'--note "$NOTE{len(notes)}"')
        else:
            words.append(shlex.quote(word))
    lines = [f"# NOTE1 ... NOTE{len(notes)}: the paragraphs of the Notes section, in order"] if notes else []
    return lines + [f"nice -n 19 .venv/bin/python scripts/evaluate_glam.py {' '.join(words)}".rstrip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; returns 0 on success, 1 for invalid arguments."""
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    import torch

    from bundle.localization.grad_input import default_layer

    started = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    datalist, generate_s = prepare_dataset(args)
    ckpt = args.ckpt if args.ckpt is not None else args.work_dir / "model.pt"
    trained = None if args.ckpt is not None else train(args, datalist, ckpt)
    metrics, network, preprocessing = evaluate(args, datalist, ckpt)
    settings = settings_from_args(args)
    glam_start = time.perf_counter()
    results, examples = localize(args, network, preprocessing, datalist, settings)
    glam_s = time.perf_counter() - glam_start
    rows = summarize(results)

    data = json.loads(datalist.read_text(encoding="utf-8"))
    gen = data.get("generator", {})
    layer = args.layer or default_layer(network)
    # the layer's own map is the largest branch (MSConv's resized copies and pyramid levels are smaller)
    sizes = network.feature_map_sizes(*args.image_size) if hasattr(network, "feature_map_sizes") else []
    feature = max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes and args.layer is None else "?"
    full_size = "x".join(map(str, gen.get("size", args.size)))
    commands = command_lines(sys.argv[1:] if argv is None else list(argv))
    if trained is None:
        training_text = f"checkpoint `{display_path(args.ckpt)}` reused (not trained by this run)."
        validation_text = ""
    else:
        v = trained["validation"]
        training_text = (
            f"MIMS-CNN with the bundle defaults (`configs/common.json`, `configs/train.json`: ResNet-10 stages 1-2 "
            f"from random initialisation, MSConv {{2(8), 3(10)}} at scales 1/2, 3/4, 1, top-k k = 5, AdamW, lr 2e-3) "
            f"and `configs/datasets/synthetic_large2d.json` (bags of one slice, images resized to "
            f"{args.image_size[0]}x{args.image_size[1]}, batch 8, random left-right flips), {args.epochs} epoch(s) "
            f"({trained['iterations']} iterations), seed {args.seed}"
            + (f", overrides {', '.join(args.override)}" if args.override else "")
            + "; best checkpoint by validation AUROC."
        )
        validation_text = f"Best validation {v['metric']} {v['best']:.3f} at epoch {v['epoch']}."
    timings = []
    if generate_s is not None:
        timings.append(f"data generation: {generate_s:.0f} s")
    if trained is not None:
        timings.append(f"training: {trained['train_s'] / 60:.1f} min ({args.epochs} epoch(s), validation after each)")
    timings.append(f"bundle evaluation of the test split: {metrics['evaluate_s']:.0f} s")
    per_setting = {}
    for r in results:
        for k, s in r.seconds.items():
            per_setting.setdefault(k, []).append(s)
    for k, s in per_setting.items():
        w, nw = k.split("x")
        timings.append(f"global + local passes, {nw} x {w} px window(s): {np.mean(s):.2f} s per image")
    total_min = (time.perf_counter() - started) / 60
    timings.append(f"localization step in all: {glam_s:.0f} s; whole script: {total_min:.1f} min")
    timings.append("all with `nice -n 19` while another long benchmark ran on the same 2 cores: times are upper bounds")

    ctx = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_text(),
        "device": str(next(network.parameters()).device),
        "versions": versions_text(),
        "commands": commands,
        "datalist": display_path(datalist),
        "data_description": data.get("description", ""),
        "split_sizes": ", ".join(f"{k} {len(data.get(k, []))}" for k in ("training", "validation", "test")),
        "generated_text": "reused" if generate_s is None else f"generated by this run in {generate_s:.0f} s",
        "training_text": training_text,
        "validation_text": validation_text,
        "image_size": "x".join(map(str, args.image_size)),
        "full_size": full_size,
        "layer": layer,
        "feature_size": "x".join(map(str, feature)) if not isinstance(feature, str) else feature,
        "num_positive": len(results),
        "num_test": int(metrics.get("num_cases", len(data.get("test", [])))),
        "tolerance": args.tolerance,
        "test_auroc": float(metrics["auroc"]),
        "test_accuracy": float(metrics.get("accuracy", float("nan"))),
        "shortcut_auroc": shortcut_auroc(preprocessing, datalist),
        "rows": rows,
        "main_name": settings[0].name,
        "comparison_text": comparison_text(rows, settings[0].name, len(results)),
        "figure_rel": os.path.relpath(args.figure, args.report.parent),
        "timings": timings,
        "notes": args.note,
    }
    if examples:
        make_figure(examples, args.figure, settings[0].name)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(render_report(ctx), encoding="utf-8")
    record = {"context": {k: v for k, v in ctx.items() if k != "rows"}, "rows": rows,
              "cases": [{"case": r.case, "prob_lesion": r.prob_lesion, "coverage": r.coverage, "seconds": r.seconds,
                         "scores": {k: vars(v) for k, v in r.scores.items()}} for r in results],
              "test_metrics": metrics, "training": trained, "device_cuda": torch.cuda.is_available()}
    (args.work_dir / "glam_results.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"[glam] classification test AUROC {ctx['test_auroc']:.3f}; localization on {len(results)} positive images:")
    for r in rows:
        print(f"  {r['map']:<60} pointing {r['pointing']:.3f}  "
              f"within {args.tolerance:g}px {r['pointing_tolerant']:.3f}  "
              f"peak dist {r['peak_distance_median']:.1f}  AUROC {r['auroc']:.3f}  AP {r['ap']:.3f}")
    print(f"[glam] report written to {args.report}, figure to {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
