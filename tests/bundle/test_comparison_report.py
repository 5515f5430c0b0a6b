# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.comparison.report``: table cells, "not run" rows, columns relative to MI-Pre-Conv, tables per
group, the chart, notes, and results of other settings, from hand-written ``result.json`` files."""

from __future__ import annotations

import dataclasses

import pytest
from comparison_testing import COMMAND, PNG_MAGIC, demo_settings, table, write_datalist, write_result

from bundle.comparison.report import assign_tables, format_mean, format_mean_std, format_ratio, write_report
from bundle.comparison.settings import collect_results
from bundle.methods import AGGREGATION_METHODS, METHODS, TABLE1_METHODS, expand_method_specs


@pytest.fixture
def datalist(tmp_path):
    return write_datalist(tmp_path)


def _report_only(settings):
    return dataclasses.replace(settings, report_only=True)


@pytest.mark.parametrize("values, expected", [([], "–"), ([0.8], "0.800 ± –"), ([0.7, 0.8, 0.9], "0.800 ± 0.100"),
                                              ([1.0, 1.0], "1.000 ± 0.000")])
def test_mean_std_format(values, expected):
    assert format_mean_std(values) == expected


@pytest.mark.parametrize(
    "call, expected",
    [(lambda: format_mean([0.1, 0.2], 1, 1000.0), "150.0"), (lambda: format_mean([]), "–"),
     (lambda: format_ratio(2.5, 1.0), "2.50×"), (lambda: format_ratio(None, 1.0), "–"),
     (lambda: format_ratio(1.0, None), "–")],
)
def test_mean_and_ratio_format(call, expected):
    assert call() == expected


def test_report_cells_not_run_rows_and_relative_columns(tmp_path, datalist):
    settings = demo_settings(tmp_path, datalist, "mi_pre", "mi_pre_conv", "mims_cnn", report_only=True)
    _, conv, mims = settings.specs
    for seed, (auroc, accuracy, f1) in enumerate([(0.7, 0.6, 0.5), (0.8, 0.7, 0.6), (0.9, 0.8, 0.7)]):
        write_result(settings, conv, seed, auroc, accuracy, f1, iteration_s=0.1, memory_mib=100.0)
    write_result(settings, mims, 1, 0.95, 0.9, 0.85, iteration_s=0.25, memory_mib=150.0, parameters=1234567)
    page_path, image = write_report(settings)
    page = page_path.read_text()
    assert page_path == tmp_path / "results" / "demo.md"
    assert page.count("\n### ") == 1  # all three are Table-1 rows: one table
    rows = table(page, "Methods (rows of the paper's Table 1)")
    assert rows == [
        ["Method", "Test AUROC", "Test accuracy", "Test F1", "Seeds", "Parameters", "Train ms/iteration",
         "ms/it × MI-Pre-Conv", "Peak train memory increase (MiB)", "memory × MI-Pre-Conv"],
        ["MI-Pre", "not run", "–", "–", "0/3", "–", "–", "–", "–", "–"],
        ["MI-Pre-Conv", "0.800 ± 0.100", "0.700 ± 0.100", "0.600", "3/3", "1,000", "100.0", "1.00×", "100.0",
         "1.00×"],
        ["MIMS", "0.950 ± –", "0.900 ± –", "0.850", "1/3", "1,234,567", "250.0", "2.50×", "150.0", "1.50×"],
    ]
    assert "Columns marked × MI-Pre-Conv divide this row's mean by that of MI-Pre-Conv." in page
    assert f"- Command: `{COMMAND}`\n" in page
    assert "- Machine of the runs: Test CPU, 2 usable of 2 logical cores; training device: cpu" in page
    assert "- Runs finished between 2026-01-01T10:00:00+00:00 and 2026-01-03T10:00:00+00:00" in page
    assert "## Discussion" not in page
    assert image.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("request_reference", [False, True])
def test_relative_columns_omitted_without_mi_pre_conv(tmp_path, datalist, request_reference):
    methods = ["mims_cnn", "mi_pre_conv"] if request_reference else ["mims_cnn"]
    settings = demo_settings(tmp_path, datalist, *methods, seeds=(0,), report_only=True)
    write_result(settings, settings.specs[0], 0, 0.6, 0.5, 0.4, iteration_s=0.2, memory_mib=10.0)
    page = write_report(settings)[0].read_text()
    header = table(page, "Methods (rows of the paper's Table 1)")[0]
    assert not any("×" in cell for cell in header)
    reason = "has no finished run" if request_reference else "was not among the requested methods"
    assert f"No columns relative to MI-Pre-Conv: `mi_pre_conv` {reason}." in page


def test_table1_and_aggregation_give_two_tables_and_others_a_third(tmp_path, datalist):
    settings = demo_settings(tmp_path, datalist, "table1", "aggregation", "mims_cnn:top_k=9", seeds=(0,),
                             report_only=True)
    mims = next(s for s in settings.specs if s.canonical == "mims_cnn")
    write_result(settings, mims, 0, 0.9, 0.8, 0.7, iteration_s=0.2, memory_mib=10.0)
    page = write_report(settings)[0].read_text()
    table1 = table(page, "Methods (rows of the paper's Table 1)")[1:]
    aggregation = table(page, "MIL aggregation")[1:]
    other = table(page, "Other method specs")[1:]
    # FeatPyra's name says the stages it uses: feature_stage 2 of common.json -> stages 1, 2 = "FeatPyra-2,3"
    assert [r[0] for r in table1] == [METHODS[m] if m != "featpyra_4_5" else "FeatPyra-2,3" for m in TABLE1_METHODS]
    # requested order: mims_cnn came with table1, before the rest of the aggregation group
    assert [r[0] for r in aggregation] == ["MIMS", "MIMS, mean pooling", "MIMS, max pooling (top-1)", "MIMS, max-inst",
                                           "MIMS (top_k=2)", "MIMS (top_k=3)", "MIMS (top_k=4)"]
    assert [r[0] for r in other] == ["MIMS (top_k=9)"]
    finished = ["MIMS", "0.900 ± –", "0.800 ± –", "0.700", "1/1", "1,000", "200.0", "10.0"]
    assert table1[TABLE1_METHODS.index("mims_cnn")] == finished and aggregation[0] == finished
    assert sum(r[1] == "not run" for r in table1 + aggregation + other) == len(table1) + len(aggregation) + 1 - 2


@pytest.mark.parametrize(
    "methods, titles",
    [
        (["mi_pre", "mims_cnn"], ["Methods (rows of the paper's Table 1)"]),
        (["mims_cnn", "mims_mean"], ["MIL aggregation"]),
        (["mims_cnn:top_k=9"], ["Other method specs"]),
        (["mi_pre", "mims_mean"], ["Methods (rows of the paper's Table 1)", "MIL aggregation"]),
    ],
)
def test_tables_of_the_page(methods, titles):
    tables = assign_tables(expand_method_specs(methods))
    assert [title for title, _ in tables] == titles
    assert {s.canonical for _, specs in tables for s in specs} == set(methods)
    assert set(AGGREGATION_METHODS) & set(TABLE1_METHODS) == {"mims_cnn"}


def test_report_without_results(tmp_path, datalist, capsys):
    settings = demo_settings(tmp_path, datalist, "mims_cnn", "mims_cnn:top_k=2", report_only=True)
    page_path, image = write_report(settings)
    rows = table(page_path.read_text(), "MIL aggregation")[1:]
    assert [r[:2] for r in rows] == [["MIMS", "not run"], ["MIMS (top_k=2)", "not run"]]
    assert "(no finished run yet)" in page_path.read_text()
    assert image.read_bytes()[:8] == PNG_MAGIC
    assert "report of 0 finished run(s)" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()  # nothing was run


def test_notes_go_verbatim_under_discussion(tmp_path, datalist):
    notes = tmp_path / "notes.md"
    notes.write_text("MIMS beats *everything* here.\n\n| a | b |\n")
    settings = demo_settings(tmp_path, datalist, "mims_cnn", report_only=True, notes=notes)
    page = write_report(settings)[0].read_text()
    assert page.endswith("## Discussion\n\nMIMS beats *everything* here.\n\n| a | b |\n")


def test_results_of_other_settings_are_not_reported(tmp_path, datalist, capsys):
    settings = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=3"])
    folder = write_result(settings, settings.specs[0], 0, 0.9, 0.8, 0.7, iteration_s=0.2, memory_mib=10.0)
    other = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=4"], report_only=True)
    assert collect_results(other) == ({"mims_cnn": []}, [folder / "result.json"])
    page = write_report(other)[0].read_text()
    assert "other settings" in capsys.readouterr().err
    assert table(page, "Methods (rows of the paper's Table 1)")[1][:2] == ["MIMS", "not run"]
    assert collect_results(_report_only(settings))[0]["mims_cnn"][0]["test"]["auroc"] == 0.9
