# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The results pages of the method comparisons, generated from the committed run records only.

Which pages exist and which rows they show is declared in ``docs/results/pages.json``
(:func:`load_page_specs`); ``scripts/compare_methods.py`` writes the page of its own settings
(:func:`page_spec_for`) unless that file declares one for its dataset. :func:`render_page` turns a
:class:`PageSpec` and the records of :mod:`bundle.comparison.records` into markdown; nothing else enters
it (no clock, no machine), so a page can be checked against its records (:func:`make_pages`).

Each table row shows the test AUROC, mean over seeds, with its 95 % percentile-bootstrap interval over test
cases (:mod:`bundle.stats`: one set of resamples per page, shared by every seed and row, so the
differences to the table's reference row are paired), the AUROC of each seed, accuracy and F1 at each
run's stored decision threshold, the seeds found (rows with fewer than declared are marked), the best
validation epoch of each seed, the parameters and the training time per iteration where the machine was
not overloaded. Importing this module loads neither torch, MONAI nor matplotlib.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle import stats
from bundle.comparison.records import DEFAULT_RECORDS_DIR, load_records
from bundle.comparison.settings import DEFAULT_RESULTS_DIR, Settings, settings_key
from bundle.methods import (
    AGGREGATION_METHODS,
    ATTENTION_METHODS,
    TABLE1_METHODS,
    MethodSpec,
    expand_method_specs,
    value_text,
)
from bundle.reports import LOAD_TOLERANCE, atomic_path, atomic_write, display_path, machine_text, shared_machine

__all__ = [
    "DEFAULT_PAGES_FILE",
    "PageSpec",
    "REFERENCE_METHOD",
    "Row",
    "TableSpec",
    "assign_tables",
    "build_rows",
    "draw_auroc_chart",
    "format_ratio",
    "kept_epoch",
    "load_page_specs",
    "make_pages",
    "page_spec_for",
    "render_page",
    "write_page",
]

#: the committed declaration of the results pages
DEFAULT_PAGES_FILE = DEFAULT_RESULTS_DIR / "pages.json"
#: the reference row of the Table-1 table (also the reference of ``scripts/method_cost.py``'s ratios)
REFERENCE_METHOD = "mi_pre_conv"
#: the reference row of the aggregation table
AGGREGATION_REFERENCE = "mims_cnn"
TABLE1_TITLE = "Methods (the paper's Table 1)"
AGGREGATION_TITLE = "MIL aggregation"
ATTENTION_TITLE = "Related methods: attention MIL"
#: the reference row of the attention table
ATTENTION_REFERENCE = "abmil"
NOT_RUN = "not run"
DASH = "–"
REGENERATE = "python scripts/make_results_pages.py"


def format_ratio(value: float | None, reference: float | None) -> str:
    """``value / reference`` as ``1.23×``; ``–`` when either is missing."""
    return f"{value / reference:.2f}×" if value is not None and reference else DASH


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One table of a page: its title, its rows (method specs, in order) and the reference row's canonical spec."""

    title: str
    specs: tuple[MethodSpec, ...]
    reference: str | None = None


@dataclasses.dataclass(frozen=True)
class PageSpec:
    """One results page.

    Args:
        page: file name of the page in the results folder (``synthetic_oct_hard.md``).
        title: the page's ``#`` title.
        records: the dataset name of its records (``<records-dir>/<records>/<slug>/seed<k>.json``).
        seeds: the seeds every row should have.
        tables: the tables, in order.
        notes: markdown file (relative to the results folder, or absolute) put under ``## Discussion``; None: none.
        chart: file name of the AUROC chart in the results folder; None: no chart.
        settings: when given, only records with these settings (:func:`bundle.comparison.settings.settings_key`)
            count; None: every record counts and the page warns when they disagree.
    """

    page: str
    title: str
    records: str
    seeds: tuple[int, ...]
    tables: tuple[TableSpec, ...]
    notes: str | None = None
    chart: str | None = None
    settings: Mapping[str, Any] | None = None


def assign_tables(specs: Sequence[MethodSpec]) -> list[TableSpec]:
    """The tables of an ad-hoc page of ``specs``, in requested order.

    A spec belongs to the Table-1, the aggregation and/or the attention table by membership in
    :data:`bundle.methods.TABLE1_METHODS` / :data:`bundle.methods.AGGREGATION_METHODS` /
    :data:`bundle.methods.ATTENTION_METHODS`. When one of them holds every member spec, that one table is
    written; otherwise each that holds one, a spec in two appearing in both. Specs in none go to a last table.
    The reference rows (MI-Pre-Conv, MIMS, attention MIL) only where the table has them.
    """
    groups = [(TABLE1_TITLE, set(TABLE1_METHODS), REFERENCE_METHOD),
              (AGGREGATION_TITLE, set(AGGREGATION_METHODS), AGGREGATION_REFERENCE),
              (ATTENTION_TITLE, set(ATTENTION_METHODS), ATTENTION_REFERENCE)]
    members = [s for s in specs if any(s.canonical in g for _, g, _ in groups)]
    whole = next((title for title, g, _ in groups if members and all(s.canonical in g for s in members)), None)
    tables = []
    for title, group, reference in groups:
        if (whole is None or title == whole) and any(s.canonical in group for s in members):
            rows = tuple(s for s in members if s.canonical in group)
            tables.append(TableSpec(title, rows, reference if any(s.canonical == reference for s in rows) else None))
    others = tuple(s for s in specs if s not in members)
    if others:
        tables.append(TableSpec("Other method specs", others, None))
    return tables


def page_spec_for(settings: Settings) -> PageSpec:
    """The page of a comparison's own settings: its specs and seeds, counting only records of its settings."""
    return PageSpec(
        page=f"{settings.dataset_name}.md", title=f"Method comparison: {settings.dataset_name}",
        records=settings.dataset_name, seeds=tuple(settings.seeds), tables=tuple(assign_tables(settings.specs)),
        notes=str(settings.notes) if settings.notes else None, chart=f"{settings.dataset_name}.png",
        settings=settings_key(settings),
    )


def _field(entry: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def load_page_specs(path: str | os.PathLike = DEFAULT_PAGES_FILE) -> list[PageSpec]:
    """The pages declared in ``path`` (``{"pages": [...]}``, see ``docs/results/pages.json``).

    Raises:
        ValueError: naming the file, the page and the problem (a malformed entry, an unknown method).
    """
    path = Path(path)
    try:
        declared = json.loads(path.read_text(encoding="utf-8"))["pages"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: a JSON object with a list 'pages' expected ({e!r})") from e
    pages = []
    for i, entry in enumerate(declared):
        where = f"{path} page {i}"
        tables = []
        for table in _field(entry, "tables", list, where):
            methods = _field(table, "methods", list, where)
            try:
                specs = tuple(expand_method_specs(methods))
            except (ValueError, FileNotFoundError) as e:
                raise ValueError(f"{where}: {e}") from e
            reference = table.get("reference")
            if reference is not None and reference not in {s.canonical for s in specs}:
                raise ValueError(f"{where}: reference {reference!r} is not a row of table {table.get('title')!r}")
            tables.append(TableSpec(_field(table, "title", str, where), specs, reference))
        seeds = _field(entry, "seeds", list, where)
        pages.append(PageSpec(
            page=_field(entry, "page", str, where), title=_field(entry, "title", str, where),
            records=_field(entry, "records", str, where), seeds=tuple(int(s) for s in seeds), tables=tuple(tables),
            notes=entry.get("notes"), chart=entry.get("chart"), settings=entry.get("settings"),
        ))
    return pages


# ----------------------------------------------------------------------------------------------- rows


def _record_name(record: Mapping[str, Any]) -> str:
    return f"{record.get('dataset')}/{record.get('slug')}/seed{record.get('seed')}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclasses.dataclass
class Row:
    """One table row: a spec, its records by seed and the AUROC statistics computed from them.

    ``aurocs`` are per seed (recomputed from the test cases when every record has them, else the evaluation's);
    ``boot`` is the row's mean AUROC on each bootstrap resample (``[B]``) or None.
    """

    spec: MethodSpec
    records: dict[int, dict[str, Any]]
    aurocs: dict[int, float] = dataclasses.field(default_factory=dict)
    boot: Any = None

    @property
    def label(self) -> str:
        """The records' display name (the name the method had in the runs) when they agree, else the spec's."""
        names = {r.get("display_name") for r in self.records.values()} - {None, ""}
        return names.pop() if len(names) == 1 else self.spec.label

    def values(self, section: str, key: str) -> list[float]:
        found = [_number((r.get(section) or {}).get(key)) for _, r in sorted(self.records.items())]
        return [v for v in found if v is not None]

    @property
    def mean_auroc(self) -> float | None:
        return statistics.fmean(self.aurocs.values()) if self.aurocs else None


def _cases(record: Mapping[str, Any]) -> dict[str, tuple[Any, Any]] | None:
    cases = record.get("test_cases")
    if not cases:
        return None
    by_id = {str(c[0]): (c[1], c[2]) for c in cases}
    if len(by_id) != len(cases):
        raise ValueError(f"record {_record_name(record)}: test case ids repeat; cases cannot be paired")
    return by_id


def build_rows(spec: PageSpec, records: Sequence[Mapping[str, Any]],
               n_boot: int = stats.DEFAULT_BOOTSTRAP) -> tuple[dict[str, Row], list[Mapping[str, Any]]]:
    """Rows of every spec on the page with their records and AUROC statistics, and the records not counted.

    Records count when their spec is on the page, their seed is declared and (if the page declares settings)
    their settings match. Test cases are paired by case id: every counted record with test cases must have
    the same cases and labels.

    Raises:
        ValueError: naming the records whose test cases differ.
    """
    specs = {s.canonical: s for table in spec.tables for s in table.specs}
    rows = {c: Row(s, {}) for c, s in specs.items()}
    ignored = []
    for record in records:
        row = rows.get(str(record.get("spec")))
        if row is None or int(record["seed"]) not in spec.seeds:
            continue
        if spec.settings is not None and record.get("settings") != dict(spec.settings):
            ignored.append(record)
            continue
        row.records[int(record["seed"])] = dict(record)
    counted = [r for row in rows.values() for _, r in sorted(row.records.items())]
    with_cases = [(r, _cases(r)) for r in counted]
    with_cases = [(r, c) for r, c in with_cases if c is not None]
    ids: list[str] = sorted(with_cases[0][1]) if with_cases else []
    labels = [with_cases[0][1][i][0] for i in ids] if with_cases else []
    for record, cases in with_cases[1:]:
        if sorted(cases) != ids or [cases[i][0] for i in ids] != labels:
            raise ValueError(f"records {_record_name(with_cases[0][0])} and {_record_name(record)} have different "
                             "test cases or labels: they cannot be compared on one page")
    counts = None
    for row in rows.values():
        complete = bool(row.records) and all(_cases(r) is not None for r in row.records.values())
        if complete:
            scores = {seed: [_cases(r)[i][1] for i in ids] for seed, r in row.records.items()}
            row.aurocs = {seed: stats.auroc(labels, s) for seed, s in sorted(scores.items())}
            if counts is None:
                classes = len(scores[next(iter(scores))][0]) if isinstance(scores[next(iter(scores))][0], list) else 2
                counts = stats.bootstrap_counts(labels, n_boot, classes=classes)
            row.boot = stats.mean_auroc(labels, [scores[s] for s in sorted(scores)], counts)
        else:
            row.aurocs = {seed: v for seed, r in sorted(row.records.items())
                          if (v := _number((r.get("test") or {}).get("auroc"))) is not None}
    return rows, ignored


# ------------------------------------------------------------------------------------------- markdown


def _mean_text(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    return f"{statistics.fmean(values) * scale:.{digits}f}" if values else DASH


def _interval_text(values: Any, signed: bool = False) -> str:
    low, high = stats.percentile_interval(values)
    sign = "+" if signed else ""
    return f"[{low:{sign}.3f}, {high:{sign}.3f}]"


def kept_epoch(record: Mapping[str, Any]) -> int | None:
    """The epoch of the checkpoint a run evaluated, from its record.

    ``keep_model: final`` keeps the last epoch. Otherwise the best model is the first epoch with the highest
    in-training validation value of the key metric among the epochs from ``best_model_min_epoch`` on (ignite's
    checkpoint replaces its best only on a strictly higher score), read from the record's per-epoch curves;
    without curves, the record's best validation epoch (which ignores ``best_model_min_epoch``).

    Args:
        record: a run record (``bundle.comparison.records``): ``overrides``, ``curves``, ``validation``,
            ``epochs_completed``.
    """
    overrides = record.get("overrides") or {}
    validation = record.get("validation") or {}
    if overrides.get("keep_model") == "final":
        return record.get("epochs_completed")
    curves = record.get("curves") or {}
    epochs, values = curves.get("epoch"), curves.get(f"val_{validation.get('metric', 'auroc')}")
    if epochs and values:
        min_epoch = int(overrides.get("best_model_min_epoch", 1))
        best: tuple[float, int] | None = None
        for epoch, value in zip(epochs, values):
            if value is not None and epoch >= min_epoch and (best is None or value > best[0]):
                best = (value, int(epoch))
        if best is not None:
            return best[1]
    return validation.get("best_epoch")


def _per_seed(row: Row, seeds: Sequence[int], value: Any) -> str:
    return " / ".join(value(row.records[s], s) if s in row.records else DASH for s in seeds)


def _threshold_text(row: Row) -> str:
    found = [_number(r.get("decision_threshold")) for r in row.records.values()]
    numbers = [v for v in found if v is not None]
    if not numbers:
        return "argmax"
    text = f"{statistics.fmean(numbers):.3f}"
    return text if len(numbers) == len(found) else f"{text} ({len(found) - len(numbers)} argmax)"


def _time_text(row: Row) -> str:
    loads = [r.get("load") or {} for r in row.records.values()]
    means = [_number(load.get("one_minute_mean")) for load in loads]
    if any(m is None for m in means):
        return "— (load unknown)"
    busy = [m for m, load in zip(means, loads) if shared_machine(load)]
    if busy:
        return f"— (load {max(busy):.1f})"
    return _mean_text(row.values("cost", "train_iteration_s_median"), 1, 1000.0)


def _parameters_text(row: Row) -> str:
    counts = sorted({int(v) for v in row.values("cost", "num_parameters")})
    if not counts:
        return DASH
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"


def _table_lines(table: TableSpec, rows: Mapping[str, Row], seeds: Sequence[int]) -> tuple[list[str], list[str]]:
    """The table's lines and the sentence about which rows the intervals separate from the reference."""
    reference = rows[table.reference] if table.reference and rows[table.reference].aurocs else None
    header = ["Method", "Test AUROC [95 % CI]", "AUROC per seed"]
    header += [f"Δ AUROC vs {reference.label} [95 % CI]"] if reference else []
    header += ["Accuracy", "F1", "Threshold", "Seeds", "Best val. epoch", "Parameters", "Train ms/iteration"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    higher, lower = [], []
    for spec in table.specs:
        row = rows[spec.canonical]
        if not row.records:
            cells = [row.label, NOT_RUN] + [DASH] * (len(header) - 2)
            cells[header.index("Seeds")] = f"0/{len(seeds)} †"
            lines.append("| " + " | ".join(cells) + " |")
            continue
        auroc = _mean_text(list(row.aurocs.values()))
        if row.boot is not None:
            auroc += " " + _interval_text(row.boot)
        cells = [row.label, auroc, _per_seed(row, seeds, lambda r, s: f"{row.aurocs[s]:.3f}" if s in row.aurocs
                                             else DASH)]
        if reference is not None:
            if row is reference:
                cells.append("reference")
            elif row.boot is not None and reference.boot is not None:
                diff = row.boot - reference.boot
                low, high = stats.percentile_interval(diff)
                separated = low > 0 or high < 0
                (higher if low > 0 else lower if high < 0 else []).append(row.label)
                cells.append(f"{row.mean_auroc - reference.mean_auroc:+.3f} {_interval_text(diff, True)}"
                             + (" *" if separated else ""))
            else:
                cells.append(f"{row.mean_auroc - reference.mean_auroc:+.3f} [no cases]")
        n = len(row.records)
        cells += [
            _mean_text(row.values("test", "accuracy")), _mean_text(row.values("test", "f1")), _threshold_text(row),
            f"{n}/{len(seeds)}" + (" †" if n < len(seeds) else ""),
            _per_seed(row, seeds, lambda r, s: str(kept_epoch(r) or DASH)),
            _parameters_text(row), _time_text(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if reference is None:
        return lines, []
    ref = reference.label
    if higher or lower:
        parts = [f"higher than {ref}: {', '.join(higher)}" if higher else "",
                 f"lower than {ref}: {', '.join(lower)}" if lower else ""]
        sentence = (f"Rows whose interval of the AUROC difference to {ref} excludes 0 (*): "
                    f"{'; '.join(p for p in parts if p)}. No other row is ranked against {ref}.")
    else:
        sentence = (f"No row's interval of the AUROC difference to {ref} excludes 0: this table ranks no method "
                    f"against {ref}.")
    return lines, [sentence]


def _distinct(records: Sequence[Mapping[str, Any]], describe: Any) -> list[str]:
    return list(dict.fromkeys(describe(r) for r in records))


def _settings_text(key: Mapping[str, Any] | None) -> str:
    key = key or {}
    overlays = "".join(f"`{c}` + " for c in key.get("configs", []))
    overrides = ", ".join(f"`{k}={value_text(v)}`" for k, v in (key.get("overrides") or {}).items()) or "none"
    return (f"datalist `{key.get('datalist')}`; configs `configs/common.json` + `configs/train.json` (evaluation: "
            f"`configs/evaluate.json`) + {overlays}`configs/methods/<method>.json`; overrides for every method: "
            f"{overrides}")


def _code_text(record: Mapping[str, Any]) -> str:
    code = record.get("code")
    if not code:
        return "unknown commit"
    return f"`{code.get('commit', '')[:12]}`" + (" with uncommitted changes" if code.get("uncommitted_changes") else "")


def _header_lines(spec: PageSpec, counted: Sequence[Mapping[str, Any]],
                  ignored: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [f"# {spec.title}", ""]
    settings = _distinct(counted, lambda r: json.dumps(r.get("settings"), sort_keys=True))
    if len(settings) > 1:
        lines += ["> **Warning: the records on this page ran with different settings; their rows may not be "
                  "comparable.**"]
        for text in settings:
            names = [_record_name(r) for r in counted if json.dumps(r.get("settings"), sort_keys=True) == text]
            lines += [f"> - {_settings_text(json.loads(text))}: {', '.join(names)}"]
        lines += [""]
    # a method in several tables (MIMS-CNN as a reference) is one method with one set of runs
    expected = len({s.canonical for t in spec.tables for s in t.specs}) * len(spec.seeds)
    lines += [f"Generated from the run records `docs/results/records/{spec.records}/<method>/seed<k>.json` "
              f"({len(counted)} record(s)) by `{REGENERATE}`; do not edit by hand.", ""]
    if not counted:
        lines += ["- No finished run yet."]
    else:
        commits = _distinct(counted, _code_text)
        dates = sorted(str(r.get("date")) for r in counted)
        started = sorted(str(r.get("started") or r.get("date")) for r in counted)
        lines += [
            f"- Code: {'; '.join(f'{c} ({sum(_code_text(r) == c for r in counted)} run(s))' for c in commits)}",
            f"- Runs: started from {started[0]}, finished by {dates[-1]}",
            "- Machines: " + "; ".join(_distinct(counted, lambda r: f"{machine_text(r.get('machine') or {})}, "
                                                  f"training device {r.get('device')}")),
            "- Versions: " + "; ".join(_distinct(counted, lambda r: ", ".join(
                f"{k} {v}" for k, v in (r.get("versions") or {}).items()))),
            "- Commands: " + "; ".join(f"`{c}`" for c in _distinct(counted, lambda r: str(r.get("command")))),
            "- Settings: " + " / ".join(_settings_text(json.loads(s)) for s in settings),
            "- Evaluated: " + "; ".join(_distinct(counted, lambda r: f"`{r.get('eval_split')}` split, checkpoint of "
                                                  f"the best validation {(r.get('validation') or {}).get('metric')}")),
            f"- Seeds per row: {', '.join(map(str, spec.seeds))} ({len(counted)} of {expected} runs found)",
        ]
    if ignored:
        lines.append(f"- Not counted: {len(ignored)} record(s) of other settings than this page's")
    return [*lines, ""]


_DEFINITIONS = (
    "Test AUROC: mean over the seeds found of each seed's AUROC on the test cases (Mann-Whitney, ties count one "
    "half), with its 95 % percentile-bootstrap interval: the test cases are resampled with replacement "
    f"({stats.DEFAULT_BOOTSTRAP} resamples, `numpy.random.default_rng({stats.DEFAULT_RNG_SEED})`, resamples with "
    "one class drawn again), the same resamples for every seed and every row, so the interval of the difference "
    "to the reference row (Δ) is paired; * marks a Δ whose interval excludes 0, and only such rows are ranked "
    "against the reference. The intervals reflect the finite test set and the seeds found, not other training "
    "data. Accuracy and F1: mean over seeds, each at its run's decision threshold on the probability of class 1 "
    "(Threshold: their mean; argmax: none stored). Seeds: runs found of those declared; † marks a row with fewer "
    "seeds. Best val. epoch: the epoch of the checkpoint evaluated, per seed (the best validation from "
    "best_model_min_epoch on). Train ms/iteration: median wall "
    "time of a training iteration, mean over seeds, shown only when every run's mean 1-minute load during "
    f"training and evaluation stayed within its usable cores plus {LOAD_TOLERANCE} (the training itself keeps every "
    "core busy; "
    "else — with the highest mean load); clean cost "
    "figures on identical bags are in [method_cost.md](method_cost.md)."
)


def render_page(spec: PageSpec, records: Sequence[Mapping[str, Any]], notes: str | None = None,
                n_boot: int = stats.DEFAULT_BOOTSTRAP) -> str:
    """The markdown of ``spec``'s page from ``records`` (of its dataset name) alone.

    Args:
        spec: the page.
        records: its records (:func:`bundle.comparison.records.load_records`); others are ignored.
        notes: markdown put verbatim under ``## Discussion``; None: no such section.
        n_boot: bootstrap resamples.
    """
    rows, ignored = build_rows(spec, records, n_boot)
    counted = [r for row in rows.values() for _, r in sorted(row.records.items())]
    counted = list({_record_name(r): r for r in counted}.values())  # a spec in two tables counts once
    lines = _header_lines(spec, counted, ignored)
    lines += ["## Results", "", _DEFINITIONS, ""]
    for table in spec.tables:
        table_lines, sentences = _table_lines(table, rows, spec.seeds)
        lines += [f"### {table.title}", "", *table_lines, ""]
        if any(len(rows[s.canonical].records) < len(spec.seeds) for s in table.specs):
            lines += [f"† fewer than the {len(spec.seeds)} declared seeds.", ""]
        lines += [*sentences, ""] if sentences else []
    if spec.chart:
        lines += [f"![Test AUROC per method, mean over seeds with its 95 % interval]({spec.chart})", ""]
    if notes is not None:
        lines += ["## Discussion", "", notes.rstrip("\n"), ""]
    return "\n".join(lines)


def draw_auroc_chart(spec: PageSpec, rows: Mapping[str, Row], path: Path) -> None:
    """Bar chart of the test AUROC (mean over seeds, error bar: its 95 % interval), one panel per table (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tables = list(spec.tables) or [TableSpec("no methods", ())]
    widths = [max(len(t.specs), 1) for t in tables]
    fig = Figure(figsize=(max(4.0, 0.75 * sum(widths) + 1.5 * len(widths)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(widths), sharey=True, squeeze=False, width_ratios=widths)[0]
    for ax, table in zip(axes, tables):
        positions = range(len(table.specs))
        for x, s in zip(positions, table.specs):
            row = rows[s.canonical]
            if row.mean_auroc is None:
                ax.text(x, 0.02, NOT_RUN, rotation=90, ha="center", va="bottom", fontsize=8, color="0.4")
                continue
            ax.bar(x, row.mean_auroc, color="#4C72B0")
            if row.boot is not None:
                low, high = stats.percentile_interval(row.boot)
                ax.errorbar(x, row.mean_auroc, yerr=[[row.mean_auroc - low], [high - row.mean_auroc]], color="black",
                            capsize=4)
        ax.axhline(0.5, color="0.3", linestyle="--", linewidth=1, label="chance (0.5)")
        ax.set_xticks(list(positions), [rows[s.canonical].label for s in table.specs], rotation=35, ha="right",
                      fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(table.title, fontsize=9)
    axes[0].set_ylabel("test AUROC (mean over seeds, 95 % interval)")
    axes[0].legend(loc="lower right", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png", metadata={"Software": None})


def _notes(spec: PageSpec, results_dir: Path) -> str | None:
    if not spec.notes:
        return None
    path = Path(spec.notes) if os.path.isabs(spec.notes) else results_dir / spec.notes
    return path.read_text(encoding="utf-8")


def write_page(spec: PageSpec, records_dir: str | os.PathLike = DEFAULT_RECORDS_DIR,
               results_dir: str | os.PathLike = DEFAULT_RESULTS_DIR, chart: bool = True) -> Path:
    """Write ``spec``'s page (and its chart) into ``results_dir`` from the records under ``records_dir``; its path."""
    results_dir = Path(results_dir)
    records = load_records(Path(records_dir) / spec.records)
    results_dir.mkdir(parents=True, exist_ok=True)
    page = atomic_write(results_dir / spec.page, render_page(spec, records, _notes(spec, results_dir)))
    if chart and spec.chart:
        draw_auroc_chart(spec, build_rows(spec, records)[0], results_dir / spec.chart)
    print(f"page of {len(records)} record(s) under {display_path(Path(records_dir) / spec.records)}: {page}",
          flush=True)
    return page


def make_pages(pages_file: str | os.PathLike = DEFAULT_PAGES_FILE, records_dir: str | os.PathLike | None = None,
               results_dir: str | os.PathLike | None = None, check: bool = False) -> list[str]:
    """Regenerate every page of ``pages_file`` that has records (the others are left alone).

    Args:
        pages_file: the declaration of the pages.
        records_dir: the records; default ``<folder of pages_file>/records``.
        results_dir: where the pages go; default the folder of ``pages_file``.
        check: write nothing; report the pages whose file differs from what the records give.

    Returns:
        the page file names written (or, with ``check``, those that differ).
    """
    folder = Path(pages_file).parent
    records_dir = Path(records_dir) if records_dir is not None else folder / "records"
    results_dir = Path(results_dir) if results_dir is not None else folder
    done = []
    for spec in load_page_specs(pages_file):
        records = load_records(records_dir / spec.records)
        if not records:
            print(f"{spec.page}: no records under {display_path(records_dir / spec.records)}; left as it is")
            continue
        if check:
            current = results_dir / spec.page
            text = render_page(spec, records, _notes(spec, results_dir))
            if not current.is_file() or current.read_text(encoding="utf-8") != text:
                print(f"{spec.page}: differs from what its {len(records)} record(s) give")
                done.append(spec.page)
            continue
        write_page(spec, records_dir, results_dir)
        done.append(spec.page)
    return done
