# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The page of a method comparison: Table-1-style tables of the finished runs and a bar chart of the AUROC.

:func:`write_report` writes ``<results-dir>/<dataset-name>.md`` (:func:`render_report`) and ``.png``
(:func:`draw_auroc_chart`) from the finished ``result.json`` files of the settings' runs; a (spec, seed)
without one is shown as "not run". Costs are also given relative to :data:`REFERENCE_METHOD`.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.comparison.settings import Settings, collect_results
from bundle.methods import AGGREGATION_METHODS, TABLE1_METHODS, MethodSpec, value_text
from bundle.reports import atomic_path, atomic_write, display_path, machine_text, versions_text

__all__ = [
    "REFERENCE_METHOD",
    "Row",
    "assign_tables",
    "draw_auroc_chart",
    "format_mean",
    "format_mean_std",
    "format_ratio",
    "render_report",
    "write_report",
]

#: the method the relative cost columns divide by
REFERENCE_METHOD = "mi_pre_conv"
NOT_RUN = "not run"
DASH = "–"


def format_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± sample std``; ``mean ± –`` for one value; ``–`` for none."""
    if not values:
        return DASH
    mean = f"{statistics.fmean(values):.{digits}f}"
    return f"{mean} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean} ± {DASH}"


def format_mean(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    """Mean of ``values`` times ``scale``; ``–`` for none."""
    return f"{statistics.fmean(values) * scale:.{digits}f}" if values else DASH


def format_ratio(value: float | None, reference: float | None) -> str:
    """``value / reference`` as ``1.23×``; ``–`` when either is missing."""
    return f"{value / reference:.2f}×" if value is not None and reference else DASH


def _numbers(results: Sequence[Mapping[str, Any]], section: str, key: str) -> list[float]:
    values = [r.get(section, {}).get(key) for r in results]
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _parameters_text(results: Sequence[Mapping[str, Any]]) -> str:
    counts = sorted({int(v) for v in _numbers(results, "cost", "num_parameters")})
    if not counts:
        return DASH
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"


@dataclasses.dataclass
class Row:
    """One table row: a spec and its finished results."""

    spec: MethodSpec
    results: list[dict[str, Any]]

    def mean(self, section: str, key: str) -> float | None:
        """Mean of ``result[section][key]`` over the results; None when no result has it."""
        values = _numbers(self.results, section, key)
        return statistics.fmean(values) if values else None


def assign_tables(specs: Sequence[MethodSpec]) -> list[tuple[str, list[MethodSpec]]]:
    """The tables of the page: (title, specs in requested order).

    A spec belongs to the Table-1 table and/or the aggregation table by membership in
    :data:`bundle.methods.TABLE1_METHODS` / :data:`bundle.methods.AGGREGATION_METHODS`. When one of the two
    holds every member spec, that one table is written; otherwise both, a spec in both appearing in both.
    Specs in neither go to a third table.
    """
    groups = {
        "Methods (rows of the paper's Table 1)": set(TABLE1_METHODS),
        "MIL aggregation": set(AGGREGATION_METHODS),
    }
    members = [s for s in specs if any(s.canonical in g for g in groups.values())]
    whole = next((title for title, g in groups.items() if members and all(s.canonical in g for s in members)), None)
    tables = []
    for title, group in groups.items():
        if (whole is None or title == whole) and any(s.canonical in group for s in members):
            tables.append((title, [s for s in members if s.canonical in group]))
    others = [s for s in specs if s not in members]
    if others:
        tables.append(("Other method specs", others))
    return tables


def _reference_row(rows: Mapping[str, Row]) -> Row | None:
    row = rows.get(REFERENCE_METHOD)
    return row if row is not None and row.results else None


def _table_lines(rows: Sequence[Row], reference: Row | None, cuda: bool, n_seeds: int) -> list[str]:
    ref = reference.spec.label if reference else ""
    header = ["Method", "Test AUROC", "Test accuracy", "Test F1", "Seeds", "Parameters", "Train ms/iteration"]
    header += [f"ms/it × {ref}"] if reference else []
    header += ["Peak train memory increase (MiB)"] + ([f"memory × {ref}"] if reference else [])
    header += ["Peak CUDA memory (MiB)"] if cuda else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ref_ms = reference.mean("cost", "train_iteration_s_median") if reference else None
    ref_mem = reference.mean("cost", "peak_rss_increase_mib") if reference else None
    for row in rows:
        r = row.results
        if not r:
            cells = [row.spec.label, NOT_RUN, DASH, DASH, f"0/{n_seeds}"] + [DASH] * (len(header) - 5)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ms = row.mean("cost", "train_iteration_s_median")
        mem = row.mean("cost", "peak_rss_increase_mib")
        cells = [
            row.spec.label,
            format_mean_std(_numbers(r, "test", "auroc")),
            format_mean_std(_numbers(r, "test", "accuracy")),
            format_mean(_numbers(r, "test", "f1")),
            f"{len(r)}/{n_seeds}",
            _parameters_text(r),
            format_mean(_numbers(r, "cost", "train_iteration_s_median"), 1, 1000.0),
        ]
        cells += [format_ratio(ms, ref_ms)] if reference else []
        cells += [format_mean(_numbers(r, "cost", "peak_rss_increase_mib"), 1)]
        cells += [format_ratio(mem, ref_mem)] if reference else []
        cells += [format_mean(_numbers(r, "cost", "peak_cuda_allocated_mib"), 1)] if cuda else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _distinct(results: Sequence[Mapping[str, Any]], describe: Callable[[Mapping[str, Any]], str]) -> str:
    values = list(dict.fromkeys(describe(r) for r in results))
    return "; ".join(values) if values else DASH


def _header_lines(settings: Settings, all_results: Sequence[Mapping[str, Any]]) -> list[str]:
    if all_results:
        machine = _distinct(all_results, lambda r: machine_text(r.get("machine", {})))
        devices = _distinct(all_results, lambda r: str(r.get("device")))
        versions = _distinct(all_results, lambda r: ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items()))
        dates = sorted(str(r.get("date")) for r in all_results)
        evaluated = _distinct(all_results, lambda r: f"`{r.get('eval_split')}` split, checkpoint of the best "
                              f"validation {(r.get('validation') or {}).get('metric', 'metric')}")
        run_lines = [
            f"- Metrics of the runs: {evaluated}",
            f"- Machine of the runs: {machine}; training device: {devices}",
            f"- Versions of the runs: {versions}",
            f"- Runs finished between {dates[0]} and {dates[-1]}",
        ]
    else:
        run_lines = [
            f"- Machine: {machine_text()} (no finished run yet)",
            f"- Versions: {versions_text(('torch', 'monai'))}",
        ]
    overrides = ", ".join(f"`{k}={value_text(v)}`" for k, v in settings.overrides.items()) or "none"
    commands = [c for c in dict.fromkeys(str(r.get("command")) for r in all_results) if c != settings.command]
    if commands:
        run_lines.append("- Runs started by: " + "; ".join(f"`{c}`" for c in commands))
    overlays = "".join(f"`{display_path(c)}` + " for c in settings.configs)
    return [
        f"# Method comparison: {settings.dataset_name}",
        "",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        *run_lines,
        f"- Command: `{settings.command}`",
        f"- Datalist: `{display_path(settings.datalist)}`",
        f"- Configs: `configs/common.json` + `configs/train.json` (evaluation: `configs/evaluate.json`) + "
        f"{overlays}`configs/methods/<method>.json`",
        f"- Overrides for every method: {overrides}; seeds: {', '.join(map(str, settings.seeds))}",
        f"- Per-run results: `{display_path(settings.dataset_dir)}/<method>/seed<k>/result.json`; MLflow store "
        f"`{display_path(settings.tracking_db)}`, experiment `{settings.experiment}`",
        "",
    ]


def _definition_lines(reference: Row | None, specs: Sequence[MethodSpec], cuda: bool) -> list[str]:
    lines = [
        "Test AUROC and accuracy: mean ± sample standard deviation over the finished seeds (– for one seed); "
        "F1: mean over seeds. Train ms/iteration: median wall time of a training iteration from ignite's "
        "`ITERATION_STARTED` to `ITERATION_COMPLETED` (the trainer's step and its iteration handlers, data "
        "loading excluded), mean over seeds. Peak train memory increase: peak resident memory of the training "
        "process during training (`ru_maxrss`) minus its resident memory after the datasets were cached, mean "
        "over seeds."
        + (" Peak CUDA memory: `torch.cuda.max_memory_allocated` during training." if cuda else ""),
    ]
    reference_spec = next((s for s in specs if s.canonical == REFERENCE_METHOD), None)
    if reference is not None:
        label = reference.spec.label
        lines.append(f"Columns marked × {label} divide this row's mean by that of {label}.")
    elif reference_spec is None:
        lines.append(f"No columns relative to MI-Pre-Conv: `{REFERENCE_METHOD}` was not among the requested methods.")
    else:
        lines.append(f"No columns relative to MI-Pre-Conv: `{REFERENCE_METHOD}` has no finished run.")
    return [*lines, ""]


def render_report(
    settings: Settings, results: Mapping[str, list[dict[str, Any]]], image_name: str | None, notes: str | None = None
) -> str:
    """The markdown page of a comparison.

    Args:
        settings: the comparison's settings (specs, seeds, command, overlays, overrides).
        results: finished results per canonical spec (from :func:`bundle.comparison.settings.collect_results`).
        image_name: file name of the AUROC chart next to the page; None: no image link.
        notes: markdown put verbatim under ``## Discussion``; None: no such section.
    """
    rows = {s.canonical: Row(s, results.get(s.canonical, [])) for s in settings.specs}
    reference = _reference_row(rows)
    all_results = [r for row in rows.values() for r in row.results]
    cuda = any(_numbers(all_results, "cost", "peak_cuda_allocated_mib"))
    lines = _header_lines(settings, all_results)
    lines += ["## Results", "", *_definition_lines(reference, settings.specs, cuda)]
    for title, specs in assign_tables(settings.specs):
        lines += [f"### {title}", "", *_table_lines([rows[s.canonical] for s in specs], reference, cuda,
                                                   len(settings.seeds)), ""]
    if image_name:
        lines += [f"![Test AUROC per method, mean and standard deviation over seeds]({image_name})", ""]
    if notes is not None:
        lines += ["## Discussion", "", notes.rstrip("\n"), ""]
    return "\n".join(lines)


def draw_auroc_chart(
    tables: Sequence[tuple[str, Sequence[MethodSpec]]], results: Mapping[str, list[dict[str, Any]]], path: Path
) -> None:
    """Bar chart of the test AUROC mean (error bars: sample std) per spec, one panel per table, as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    widths = [max(len(specs), 1) for _, specs in tables] or [1]
    fig = Figure(figsize=(max(4.0, 0.75 * sum(widths) + 1.5 * len(widths)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(widths), sharey=True, squeeze=False, width_ratios=widths)[0]
    for ax, (title, specs) in zip(axes, tables or [("no methods", [])]):
        values = [_numbers(results.get(s.canonical, []), "test", "auroc") for s in specs]
        positions = range(len(specs))
        ax.bar(positions, [statistics.fmean(v) if v else 0.0 for v in values], color="#4C72B0")
        for x, v in zip(positions, values):
            if len(v) > 1:
                ax.errorbar(x, statistics.fmean(v), yerr=statistics.stdev(v), color="black", capsize=4)
            elif not v:
                ax.text(x, 0.02, NOT_RUN, rotation=90, ha="center", va="bottom", fontsize=8, color="0.4")
        ax.axhline(0.5, color="0.3", linestyle="--", linewidth=1, label="chance (0.5)")
        ax.set_xticks(list(positions), [s.label for s in specs], rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("test AUROC (mean ± SD over seeds)")
    axes[0].legend(loc="lower right", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png")


def write_report(settings: Settings) -> tuple[Path, Path]:
    """Write ``<results-dir>/<dataset-name>.md`` and ``.png`` from the finished results; their paths."""
    results, other = collect_results(settings)
    for path in other:
        print(f"warning: {path} was produced with other settings (datalist, configs or overrides): not reported",
              file=sys.stderr)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    page = settings.results_dir / f"{settings.dataset_name}.md"
    image = settings.results_dir / f"{settings.dataset_name}.png"
    notes = settings.notes.read_text(encoding="utf-8") if settings.notes else None
    draw_auroc_chart(assign_tables(settings.specs), results, image)
    atomic_write(page, render_report(settings, results, image.name, notes))
    finished = sum(len(v) for v in results.values())
    print(f"report of {finished} finished run(s): {page} and {image}", flush=True)
    return page, image
