# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The results pages: every committed page equals what its records give; ``docs/results/pages.json``
declares both comparison pages; pages and records from hand-made records (rows, intervals, marks, warnings)."""

from __future__ import annotations

import json

import pytest
from comparison_testing import fake_record, table

from bundle import stats
from bundle.comparison import pages, records
from bundle.config import REPO
from bundle.methods import AGGREGATION_METHODS, ATTENTION_METHODS, TABLE1_METHODS, expand_method_specs

RESULTS = REPO / "docs" / "results"
LABELS = [0, 0, 0, 1, 1, 1]
GOOD = [0.1, 0.2, 0.6, 0.4, 0.8, 0.9]  # AUROC 8/9
PERFECT = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]


def _declared():
    return pages.load_page_specs(RESULTS / "pages.json")


def test_pages_json_declares_both_comparison_pages_and_the_attention_pages():
    declared = {p.records: p for p in _declared()}
    assert set(declared) == {"synthetic_oct_hard", "adrenalmnist3d_64", "synthetic_large2d_lesion6-9_patches"}
    attention = declared.pop("synthetic_large2d_lesion6-9_patches")
    assert attention.seeds == (0, 1, 2) and attention.page == f"{attention.records}.md"
    assert (RESULTS / attention.notes).is_file()
    (table,) = attention.tables
    assert table.reference == "abmil" and {s.name for s in table.specs} <= set(ATTENTION_METHODS)
    for spec in declared.values():
        assert spec.seeds == (0, 1, 2) and spec.page == f"{spec.records}.md"
        assert (RESULTS / spec.notes).is_file()
        methods, aggregation, attention = spec.tables
        assert [s.canonical for s in methods.specs] == list(TABLE1_METHODS) and methods.reference == "mi_pre_conv"
        assert {s.canonical for s in aggregation.specs} == set(AGGREGATION_METHODS)
        assert aggregation.reference == "mims_cnn"
        # the related methods against MIMS-CNN: every attention method, with the default settings at least
        assert {s.canonical for s in attention.specs} >= {*ATTENTION_METHODS, "mims_cnn"}
        assert {s.name for s in attention.specs} <= {*ATTENTION_METHODS, "mims_cnn"}
        assert attention.reference == "mims_cnn"


@pytest.mark.parametrize("spec", _declared(), ids=lambda s: s.page)
def test_committed_pages_equal_what_their_records_give(spec):
    found = records.load_records(RESULTS / "records" / spec.records)
    if not found:
        pytest.skip(f"no records of {spec.records} yet: {spec.page} is not generated")
    expected = pages.render_page(spec, found, pages._notes(spec, RESULTS))
    assert (RESULTS / spec.page).read_text(encoding="utf-8") == expected, (
        f"{spec.page} differs from its records: run python scripts/make_results_pages.py")


def _page_spec(*methods, reference="mi_pre_conv", seeds=(0, 1, 2), **extra):
    specs = tuple(expand_method_specs(methods))
    return pages.PageSpec("demo.md", "Demo", "demo", seeds, (pages.TableSpec("T", specs, reference),), **extra)


def test_page_rows_from_hand_made_records():
    spec = _page_spec("mi_pre_conv", "mims_cnn", "mi_pre")
    conv, mims, _ = spec.tables[0].specs
    found = [fake_record("demo", conv, seed, GOOD) for seed in (0, 1, 2)]
    found.append(fake_record("demo", mims, 0, PERFECT, load_mean=3.0, threshold=None, accuracy=1.0, f1=1.0))
    page = pages.render_page(spec, found, notes="Notes *here*.\n")
    rows = table(page, "T")
    counts = stats.bootstrap_counts(LABELS)
    low, high = stats.percentile_interval(stats.mean_auroc(LABELS, [GOOD] * 3, counts))
    d_low, d_high = stats.percentile_interval(stats.mean_auroc(LABELS, [PERFECT], counts)
                                              - stats.mean_auroc(LABELS, [GOOD] * 3, counts))
    assert 0.0 <= low < 8 / 9 < high <= 1.0 and d_low <= 0.0 < d_high
    assert rows == [
        ["Method", "Test AUROC [95 % CI]", "AUROC per seed", "Δ AUROC vs MI-Pre-Conv [95 % CI]", "Accuracy", "F1",
         "Threshold", "Seeds", "Best val. epoch", "Parameters", "Train ms/iteration"],
        ["MI-Pre-Conv", f"0.889 [{low:.3f}, {high:.3f}]", "0.889 / 0.889 / 0.889", "reference", "0.800", "0.700",
         "0.500", "3/3", "3 / 3 / 3", "1,000", "100.0"],
        ["MIMS", "1.000 [1.000, 1.000]", "1.000 / – / –", f"+0.111 [{d_low:+.3f}, {d_high:+.3f}]", "1.000", "1.000",
         "argmax", "1/3 †", "3 / – / –", "1,000", "— (load 3.0)"],
        ["MI-Pre", "not run", "–", "–", "–", "–", "–", "0/3 †", "–", "–", "–"],
    ]
    assert "† fewer than the 3 declared seeds." in page
    assert "No row's interval of the AUROC difference to MI-Pre-Conv excludes 0" in page
    assert "- Code: `0123456789ab` (4 run(s))\n" in page
    assert "- Seeds per row: 0, 1, 2 (4 of 9 runs found)\n" in page
    assert "Warning" not in page and page.endswith("## Discussion\n\nNotes *here*.\n")
    assert page == pages.render_page(spec, list(reversed(found)), notes="Notes *here*.\n")  # deterministic


def test_a_method_in_two_tables_counts_its_runs_once():
    conv, mims = expand_method_specs(["mi_pre_conv", "mims_cnn"])
    tables = (pages.TableSpec("A", (conv, mims), "mi_pre_conv"), pages.TableSpec("B", (mims,), "mims_cnn"))
    spec = pages.PageSpec("demo.md", "Demo", "demo", (0, 1, 2), tables)
    found = [fake_record("demo", s, seed, GOOD) for s in (conv, mims) for seed in (0, 1, 2)]
    assert "- Seeds per row: 0, 1, 2 (6 of 6 runs found)\n" in pages.render_page(spec, found)


def test_a_separated_row_is_flagged_and_ranked():
    labels = [0] * 10 + [1] * 10
    spec = _page_spec("mi_pre_conv", "mims_cnn", seeds=(0,))
    conv, mims = spec.tables[0].specs
    ranked = [i / 20 for i in range(20)]
    found = [fake_record("demo", conv, 0, list(reversed(ranked)), labels, dirty=True),
             fake_record("demo", mims, 0, ranked, labels)]
    page = pages.render_page(spec, found)
    assert table(page, "T")[2][3] == "+1.000 [+1.000, +1.000] *"
    assert ("Rows whose interval of the AUROC difference to MI-Pre-Conv excludes 0 (*): higher than MI-Pre-Conv: "
            "MIMS. No other row is ranked against MI-Pre-Conv.") in page
    assert "`0123456789ab` with uncommitted changes (1 run(s)); `0123456789ab` (1 run(s))" in page


def test_records_of_different_settings_are_flagged_loudly():
    spec = _page_spec("mi_pre_conv", "mims_cnn", seeds=(0,))
    conv, mims = spec.tables[0].specs
    other = {"datalist": "data/demo/datalist.json", "configs": ["configs/datasets/x.json"], "overrides": {}}
    page = pages.render_page(spec, [fake_record("demo", conv, 0, GOOD), fake_record("demo", mims, 0, GOOD,
                                                                                     settings=other)])
    head = page.split("## Results")[0]
    assert "> **Warning: the records on this page ran with different settings" in head
    assert "`configs/datasets/x.json` + `configs/methods/<method>.json`; overrides for every method: none: demo/" \
           "mims_cnn/seed0" in head and "`epochs=5`: demo/mi_pre_conv/seed0" in head
    only = pages.render_page(dataclass_replace(spec, settings=other), [fake_record("demo", conv, 0, GOOD),
                                                                        fake_record("demo", mims, 0, GOOD,
                                                                                    settings=other)])
    assert "Warning" not in only and "- Not counted: 1 record(s) of other settings than this page's" in only
    assert table(only, "T")[1][1] == "not run"


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_records_with_other_test_cases_cannot_share_a_page():
    spec = _page_spec("mi_pre_conv", "mims_cnn", seeds=(0,))
    conv, mims = spec.tables[0].specs
    odd = fake_record("demo", mims, 0, GOOD)
    odd["test_cases"][0][0] = "other.nii.gz"
    with pytest.raises(ValueError, match="demo/mi_pre_conv/seed0 and demo/mims_cnn/seed0 have different test cases"):
        pages.render_page(spec, [fake_record("demo", conv, 0, GOOD), odd])


def test_rows_without_test_cases_show_the_evaluation_auroc_without_interval():
    spec = _page_spec("mi_pre_conv", seeds=(0, 1))
    conv = spec.tables[0].specs[0]
    old = [fake_record("demo", conv, s, GOOD) for s in (0, 1)]
    for record, auroc in zip(old, (0.7, 0.8)):
        record["test_cases"], record["test"]["auroc"], record["load"] = None, auroc, None
    row = table(pages.render_page(spec, old), "T")[1]
    assert row[:3] == ["MI-Pre-Conv", "0.750", "0.700 / 0.800"] and row[-1] == "— (load unknown)"


@pytest.mark.parametrize(
    "methods, titles",
    [
        (["mi_pre", "mims_cnn"], ["Methods (the paper's Table 1)"]),
        (["mims_cnn", "mims_mean"], ["MIL aggregation"]),
        (["mims_cnn:top_k=9"], ["Other method specs"]),
        (["mi_pre", "mims_mean"], ["Methods (the paper's Table 1)", "MIL aggregation"]),
        (["abmil", "patch_scoring_attention"], ["Related methods: attention MIL"]),
        (["mi_pre", "abmil_gated"], ["Methods (the paper's Table 1)", "Related methods: attention MIL"]),
    ],
)
def test_tables_of_an_ad_hoc_page(methods, titles):
    tables = pages.assign_tables(expand_method_specs(methods))
    assert [t.title for t in tables] == titles
    assert {s.canonical for t in tables for s in t.specs} == set(methods)
    assert set(AGGREGATION_METHODS) & set(TABLE1_METHODS) == {"mims_cnn"}
    references = {"Methods (the paper's Table 1)": "mi_pre_conv", "MIL aggregation": "mims_cnn",
                  "Related methods: attention MIL": "abmil"}
    assert [t.reference for t in tables] == [references.get(t) if references.get(t) in methods else None
                                             for t in titles]


def test_make_pages_writes_and_checks_pages_with_records(tmp_path, capsys):
    spec = _page_spec("mi_pre_conv", seeds=(0,))
    conv = spec.tables[0].specs[0]
    declared = {"pages": [
        {"page": "demo.md", "title": "Demo", "records": "demo", "seeds": [0], "chart": "demo.png", "notes": "n.md",
         "tables": [{"title": "T", "methods": ["mi_pre_conv"], "reference": "mi_pre_conv"}]},
        {"page": "empty.md", "title": "Empty", "records": "empty", "seeds": [0], "tables": []},
    ]}
    (tmp_path / "pages.json").write_text(json.dumps(declared))
    (tmp_path / "n.md").write_text("notes\n")
    records.write_record(tmp_path / "records", fake_record("demo", conv, 0, GOOD))
    assert pages.make_pages(tmp_path / "pages.json", check=True) == ["demo.md"]
    assert pages.make_pages(tmp_path / "pages.json") == ["demo.md"]
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "empty.md").exists()
    assert pages.make_pages(tmp_path / "pages.json", check=True) == []
    assert "empty.md: no records" in capsys.readouterr().out
    page = (tmp_path / "demo.md").read_text()
    assert page.startswith("# Demo\n") and table(page, "T")[1][1].startswith("0.889 [")
    declared["pages"][0]["tables"][0]["reference"] = "mims_cnn"
    (tmp_path / "pages.json").write_text(json.dumps(declared))
    with pytest.raises(ValueError, match=r"pages.json page 0: reference 'mims_cnn' is not a row"):
        pages.load_page_specs(tmp_path / "pages.json")


# ------------------------------------------------------------------------------------------- records


def test_a_record_has_no_machine_paths(tmp_path):
    spec = expand_method_specs(["mims_cnn:top_k=2"])[0]
    result = fake_record("demo", spec, 1, GOOD)
    result["overrides"] = {"ckpt_path": str(REPO / "runs" / "x" / "model.pt"), "tracking_uri": "sqlite:////x/y.db",
                           "bundle_root": str(REPO), "epochs": 5}
    result["mlflow"] = {"tracking_uri": f"sqlite:///{REPO}/runs/compare/demo/mlruns.db", "run_id": "abc"}
    record = records.make_record(result)
    assert record["overrides"] == {"ckpt_path": "runs/x/model.pt", "bundle_root": ".", "epochs": 5}
    assert record["mlflow"] == {"store": "runs/compare/demo/mlruns.db", "run_id": "abc"}
    assert str(REPO) not in json.dumps(record) and record["record_format"] == records.RECORD_FORMAT
    path = records.write_record(tmp_path, result)
    assert path == tmp_path / "demo" / "mims_cnn__top_k-2" / "seed1.json"
    assert records.load_records(tmp_path / "demo") == [record] and records.load_records(tmp_path / "none") == []
    assert len(path.read_bytes()) < 20_000


@pytest.mark.parametrize(
    "name, text, fragment",
    [("seed0.json", "{not json", "cannot be read as JSON"), ("seed0.json", "[1]", "a JSON object expected"),
     ("seed0.json", '{"dataset": "demo"}', "lacks spec, slug, seed, test"),
     ("seed3.json", '{"dataset": "demo", "spec": "mims_cnn", "slug": "mims_cnn", "seed": 0, "test": {}}',
      "belongs at <records-dir>/demo/mims_cnn/seed0.json")],
)
def test_bad_records_are_named(tmp_path, name, text, fragment):
    path = tmp_path / "demo" / "mims_cnn" / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValueError, match=f"record {path}") as e:
        records.load_records(tmp_path / "demo")
    assert fragment in str(e.value)


_CURVES = {"epoch": [1, 2, 3, 4], "val_auroc": [0.70, 0.90, 0.80, 0.80]}


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"curves": _CURVES, "overrides": {}, "validation": {"metric": "auroc", "best_epoch": 2}}, 2),
        # best_model_min_epoch: epoch 2 cannot be kept; of the tied epochs 3 and 4 the first is kept
        ({"curves": _CURVES, "overrides": {"best_model_min_epoch": 3}, "validation": {"best_epoch": 2}}, 3),
        ({"curves": _CURVES, "overrides": {"keep_model": "final"}, "epochs_completed": 4}, 4),
        # no curves: the recorded best validation epoch
        ({"overrides": {"best_model_min_epoch": 3}, "validation": {"best_epoch": 2}}, 2),
        ({"overrides": {}}, None),
    ],
)
def test_kept_epoch_follows_the_checkpoint_rules(record, expected):
    assert pages.kept_epoch(record) == expected
