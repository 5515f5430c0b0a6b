# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The benchmark's report as markdown (``docs/performance.md``): how each figure was measured, the goals and
whether each was met."""

from __future__ import annotations

import json
from typing import Any

from bundle.benchmark.timing import ratio
from bundle.reports import code_text

__all__ = ["INFER_GOAL", "MEMORY_GOAL", "TRAIN_GOAL", "render_markdown"]

TRAIN_GOAL = 0.95  # end-to-end / model-only training iterations/s, at least
INFER_GOAL = 0.9  # end-to-end / model-only inference volumes/s, at least
MEMORY_GOAL = 1.2  # peak RSS of chunked inference, large bag / small bag, at most


def _verdict(value: float, goal: float, at_least: bool) -> str:
    return "PASS" if (value >= goal if at_least else value <= goal) else "MISS"


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _header(report: dict[str, Any]) -> list[str]:
    m, s = report["machine"], report["settings"]
    loads = ["n/a" if v is None else " / ".join(_fmt(x) for x in v) for v in (report["load_start"], report["load_end"])]
    overrides = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in report["config_overrides"].items())
    lines = [
        "# Performance",
        "",
        "Written by `scripts/benchmark.py`: run the command below again rather than editing this file. Every figure "
        "is a ratio of two measurements taken in the same run. The two sides of a throughput ratio run in the same "
        "process, interleaved round by round (which side goes first alternates), warm-up rounds excluded; each side "
        "of a memory ratio runs in a fresh process by design. Absolute rates depend on the machine and its load.",
        "",
        f"- Date: {report['date']}",
        f"- Command: `{report['command']}`",
        f"- Code: {code_text(report.get('code'))}",
        f"- Machine: {m['cpu']}; {m['logical_cores']} logical cores ({m['usable_cores']} usable by this process); "
        f"torch.get_num_threads() = {m['torch_threads']} (torch's default, not changed); "
        f"RAM {_fmt(m['ram_gib'], 1)} GiB; {m['platform']}",
        f"- Load average (1 / 5 / 15 min): {loads[0]} at the start, {loads[1]} at the end",
        f"- Versions: python {m['python']}, torch {m['torch']}, monai {m['monai']}, numpy {m['numpy']}",
        "- Device: CPU (the configs' `device` is overridden to cpu)",
        f"- Data: `make_synthetic_oct_dataset` (seed {s['seed']}), volumes of "
        f"{' x '.join(map(str, s['volume_shape']))} (H x W x D), {s['train_volumes']} training and "
        f"{s['test_volumes']} test volumes",
        f"- Config overrides on configs/*.json: {overrides}",
        f"- Timed rounds per measurement: {s['iterations']}, after {s['warmup']} warm-up round(s) that are not counted",
        f"- Total benchmark time: {report['elapsed_s']:.0f} s",
    ]
    load = report["load_start"]
    if load is not None and m["usable_cores"] and load[0] >= 0.5 * m["usable_cores"]:
        lines += [
            "",
            f"**Warning: the machine was busy when the run started** (1-minute load average {_fmt(load[0])} on "
            f"{m['usable_cores']} cores). With torch's default of one thread per core, other processes stall its "
            "parallel regions, which can slow small operations by an order of magnitude and distort even the ratios. "
            "Run the benchmark again on an idle machine before relying on these numbers.",
        ]
    return lines


def _memory_ratios(report: dict[str, Any]) -> dict[str, float]:
    small, large = report["settings"]["slices"]
    rows = {(r["chunked"], r["slices"]): r for r in report["memory"]}
    out = {}
    for name, chunked in (("chunked", True), ("plain", False)):
        out[f"{name}_peak"] = ratio(rows[chunked, large]["peak_mib"], rows[chunked, small]["peak_mib"])
        out[f"{name}_increment"] = ratio(rows[chunked, large]["increment_mib"], rows[chunked, small]["increment_mib"])
    return out


def _summary(report: dict[str, Any]) -> list[str]:
    tr, inf = report["training"], report["inference"]
    small, large = report["settings"]["slices"]
    mem = _memory_ratios(report)
    return [
        "",
        "## Summary",
        "",
        "| Figure | Value | Goal | Result |",
        "|---|---|---|---|",
        f"| Training iterations/s, end to end / model only | {_fmt(tr['ratio'], 3)} | >= {TRAIN_GOAL} | "
        f"{_verdict(tr['ratio'], TRAIN_GOAL, True)} |",
        f"| Inference volumes/s, end to end / model only | {_fmt(inf['ratio'], 3)} | >= {INFER_GOAL} | "
        f"{_verdict(inf['ratio'], INFER_GOAL, True)} |",
        f"| Peak RSS of chunked inference (whole process), {large} / {small} slices | {_fmt(mem['chunked_peak'], 3)} | "
        f"<= {MEMORY_GOAL} | {_verdict(mem['chunked_peak'], MEMORY_GOAL, False)} |",
        f"| RSS increment of chunked inference (over the RSS before it), {large} / {small} slices | "
        f"{_fmt(mem['chunked_increment'], 3)} | none stated; {MEMORY_GOAL} applied | "
        f"{_verdict(mem['chunked_increment'], MEMORY_GOAL, False)} |",
    ]


def _training_section(report: dict[str, Any]) -> list[str]:
    tr = report["training"]
    return [
        "",
        "## 1. Training throughput",
        "",
        "How it was measured: `configs/common.json` + `configs/train.json` are parsed with `monai.bundle.ConfigParser` "
        "and `train#dataloader` is built; its `CacheDataset` caches the deterministic transforms (load, channels, "
        f"intensity scaling, to-bag, resize) once, before any timing ({tr['num_volumes']} volumes, "
        f"{_fmt(tr['cache_fill_s'], 1)} s). Each round takes the next batch from the dataloader (copy of the cached "
        "item, `RandSampleSlicesd`, `RandFlipd`, `pad_bag_collate`; a new shuffled epoch when one ends) and applies "
        "the config's `prepare_batch` (timed), then runs the step of `SupervisedTrainer` (`network.train()`, "
        "zero_grad, the config's `network` through `train#inferer`, `loss`, backward, `optimizer` step; no handlers) "
        "twice, in alternating order: on the batch as the pipeline delivers it, which completes one end-to-end "
        "iteration, and on the same batch held in memory as plain tensors, one model-only iteration. Both sides "
        "thus process identical shapes; a rate is timed rounds / their total time.",
        "",
        "| | iterations/s | median s / iteration |",
        "|---|---|---|",
        f"| End to end (dataloader + prepare_batch + step) | {_fmt(tr['e2e_it_s'], 3)} | "
        f"{_fmt(tr['e2e_median_s'], 4)} |",
        f"| Model step only (batch in memory) | {_fmt(tr['model_it_s'], 3)} | {_fmt(tr['model_median_s'], 4)} |",
        "",
        f"- Ratio end to end / model only: **{_fmt(tr['ratio'], 3)}**, goal >= {TRAIN_GOAL}: "
        f"**{_verdict(tr['ratio'], TRAIN_GOAL, True)}**",
        f"- Batch size {tr['batch_size']}, {_fmt(tr['mean_slices'], 1)} real slices per batch on average",
        f"- Where an end-to-end iteration goes (means): {_fmt(1000 * tr['data_mean_s'], 1)} ms to fetch and prepare "
        f"the batch, {_fmt(1000 * tr['step_mean_s'], 1)} ms for the step on the pipeline's batch (a `MetaTensor`), "
        f"against {_fmt(1000 * tr['model_mean_s'], 1)} ms for the same step on plain tensors",
    ]


def _inference_section(report: dict[str, Any]) -> list[str]:
    inf = report["inference"]
    return [
        "",
        "## 2. Inference throughput",
        "",
        "How it was measured: `configs/common.json` + `configs/inference.json` are parsed. The config's "
        f"`dataloader` (a `{inf['loader']}`, {inf['num_workers']} worker processes) may prefetch the next volume "
        "while the model runs, so volumes are not timed one by one: a round is a whole pass over the "
        f"{inf['num_volumes']} test volumes. An end-to-end pass iterates the dataloader (the NIfTI file is read, "
        "from the OS file cache after the first pass, and goes through `preprocessing`: load, channels, intensity "
        "scaling, to-bag, central slices, resize; then `pad_bag_collate`), applies `prepare_batch` and runs the "
        "config's `inferer` (`ChunkedBagInferer`, `eval_mode`, no_grad) and `postprocessing` (softmax) on every "
        "volume; a model-only pass runs the same inferer and a softmax on the same bags held in memory as plain "
        f"tensors. The two alternate which goes first; {inf['passes']} passes of each are timed after the warm-up. "
        f"Batch size {inf['batch_size']}, {_fmt(inf['slices_per_volume'], 0)} slices per volume, chunk size "
        f"{inf['chunk_size']}.",
        "",
        "| | volumes/s | mean s / volume |",
        "|---|---|---|",
        f"| End to end (file + preprocessing + inferer + softmax) | {_fmt(inf['e2e_vol_s'], 3)} | "
        f"{_fmt(inf['e2e_mean_s'], 4)} |",
        f"| Model only (bag in memory, inferer + softmax) | {_fmt(inf['model_vol_s'], 3)} | "
        f"{_fmt(inf['model_mean_s'], 4)} |",
        "",
        f"- Ratio end to end / model only: **{_fmt(inf['ratio'], 3)}**, goal >= {INFER_GOAL}: "
        f"**{_verdict(inf['ratio'], INFER_GOAL, True)}**",
        f"- The data pipeline alone (a pass over the dataloader without the model) takes "
        f"{_fmt(1000 * inf['data_mean_s'], 1)} ms per volume",
    ]


def _memory_section(report: dict[str, Any]) -> list[str]:
    small, large = report["settings"]["slices"]
    rows = {(r["chunked"], r["slices"]): r for r in report["memory"]}
    mem = _memory_ratios(report)
    chunk_size = rows[True, small]["chunk_size"]
    lines = [
        "",
        "## 3. Memory does not grow with the number of slices",
        "",
        "How it was measured: each measurement runs in a FRESH Python process, started through a small launcher "
        "process because Linux carries the peak RSS of a process that calls exec() over into the new program's "
        "`ru_maxrss`. "
        + (
            "With --quick these processes ran all at once, which they can since they measure memory only. "
            if report["memory_concurrent"]
            else "These processes ran one after the other. "
        )
        + "Each imports the bundle, builds `network` and `inferer` from "
        "`configs/common.json` (random weights), makes a random bag `[1, N, C, H, W]` and its all-True mask and "
        "records its RSS (`VmRSS`): *RSS before*. It then resets the kernel's peak-RSS mark to the current RSS "
        "(`/proc/self/clear_refs`, so the peak of the imports does not count) and runs inference twice in "
        "`eval_mode` (no_grad), each followed by a softmax. *Peak RSS* is `resource.getrusage(RUSAGE_SELF).ru_maxrss` "
        "afterwards: the whole process, i.e. libraries, model, input and inference. *Increment* = peak RSS - RSS "
        "before: what the inference itself needed.",
    ]
    if not all(r["peak_reset"] for r in report["memory"]):
        lines += ["", "**The peak-RSS reset was not available here: the peaks include the peak of the imports.**"]
    lines += [
        "",
        "| Inference | N slices | RSS before (MiB) | Peak RSS (MiB) | Increment (MiB) |",
        "|---|---|---|---|---|",
    ]
    for chunked, label in ((True, f"`ChunkedBagInferer(chunk_size={chunk_size})`"), (False, "plain `network(x)`")):
        for n in (small, large):
            r = rows[chunked, n]
            note = " (same call as the chunked row, N <= chunk_size)" if r.get("same_call") else ""
            lines.append(
                f"| {label}{note} | {n} | {_fmt(r['rss_before_mib'], 1)} | {_fmt(r['peak_mib'], 1)} | "
                f"{_fmt(r['increment_mib'], 1)} |"
            )
    lines += [
        "",
        f"- Chunked, peak RSS {large} / {small}: **{_fmt(mem['chunked_peak'], 3)}**, goal <= {MEMORY_GOAL}: "
        f"**{_verdict(mem['chunked_peak'], MEMORY_GOAL, False)}**. This is the stated goal; it includes the fixed RSS "
        "of the libraries and the model, which dominates at these sizes.",
        f"- Chunked, increment {large} / {small}: **{_fmt(mem['chunked_increment'], 3)}**. No goal is stated for it; "
        f"against {MEMORY_GOAL} it would be {_verdict(mem['chunked_increment'], MEMORY_GOAL, False)}. It isolates what "
        "inference needs; increments of a few MiB are noisy.",
        f"- Plain `network(x)`, peak RSS {large} / {small}: {_fmt(mem['plain_peak'], 3)}; increment {large} / {small}: "
        f"{_fmt(mem['plain_increment'], 3)}. The difference to the chunked rows is what chunking buys.",
    ]
    return lines


def _backbone_section(report: dict[str, Any]) -> list[str]:
    s, bbs = report["settings"], report["backbones"]
    where = (
        "all in the benchmark's own process (`--backbones-in-process`), so their peak RSS includes that process's "
        "memory and the increments may be understated by memory freed earlier and reused"
        if report["backbones_in_process"]
        else "each in its own FRESH process, started like the memory workers"
    )
    lines = [
        "",
        "## 4. Backbones",
        "",
        f"How it was measured: the backbones ran {where}. `ResNetBackbone(depth, feature_stage={s['feature_stage']})` "
        f"with random weights processes batches of {s['backbone_batch']} random slices of {s['image_size'][0]} x "
        f"{s['image_size'][1]} ({s['in_channels']} channel(s)). Inference is a forward pass in `eval_mode` (no_grad); "
        "training is zero_grad + forward + `mean()` + backward (no optimizer step). Slices/s = batch x timed "
        "iterations / their total time, warm-up excluded. FLOPs per slice are counted by "
        "`torch.utils.flop_counter.FlopCounterMode` on one batch: convolution and matmul-type operations only, a "
        "multiply-add counted as 2 FLOPs (BatchNorm, ReLU and pooling are not counted); forward only for inference, "
        "forward + backward for training. Achieved GFLOP/s = FLOPs per slice x slices/s. The CPU's practical peak is "
        f"the best of {s['matmul_repeats']} float32 `torch.mm` of two {s['matmul_size']} x {s['matmul_size']} "
        "matrices (2 n^3 FLOPs each, after a warm-up one), measured in the same process right before and right after "
        "the backbone; the higher value is used. Peak RSS is `ru_maxrss` after each phase, the peak mark having been "
        "reset just before it (inference first, then training); the increment is over the RSS just before the phase.",
        "",
        "| Backbone | Params (M) | GFLOP / slice (fwd) | Inference slices/s | Inference GFLOP/s | % of peak | "
        "Training slices/s | Training GFLOP/s | % of peak | Peak RSS inference, MiB (increment) | "
        "Peak RSS training, MiB (increment) | Matmul peak GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in bbs:
        lines.append(
            f"| ResNet-{r['depth']} (stage {r['feature_stage']}, {r['out_channels']} channels) | "
            f"{_fmt(r['params_m'])} | {_fmt(r['forward_gflop'], 3)} | {_fmt(r['infer_slices_s'], 1)} | "
            f"{_fmt(r['infer_gflops'], 1)} | {_fmt(100 * r['infer_fraction'], 1)}% | {_fmt(r['train_slices_s'], 1)} | "
            f"{_fmt(r['train_gflops'], 1)} | {_fmt(100 * r['train_fraction'], 1)}% | "
            f"{_fmt(r['infer_peak_mib'], 0)} ({r['infer_increment_mib']:+.1f}) | "
            f"{_fmt(r['train_peak_mib'], 0)} ({r['train_increment_mib']:+.1f}) | {_fmt(r['cpu_peak_gflops'], 1)} |"
        )
    lines += [
        "",
        "Training GFLOP per slice (forward + backward): "
        + ", ".join(f"ResNet-{r['depth']} {_fmt(r['train_gflop'], 3)}" for r in bbs)
        + ".",
        "",
    ]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report that :func:`bundle.benchmark.run.run_benchmark` collects, as markdown.

    Args:
        report: ``date``, ``command``, ``machine``, ``load_start``/``load_end``, ``settings``, ``config_overrides``,
            the results ``training``, ``inference``, ``memory`` and ``backbones``, ``memory_concurrent``,
            ``backbones_in_process`` and ``elapsed_s``.
    """
    sections = (_header, _summary, _training_section, _inference_section, _memory_section, _backbone_section)
    return "\n".join(line for section in sections for line in section(report))
