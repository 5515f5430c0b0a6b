# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.comparison.settings``: arguments checked before any work, run folders, what each worker is told."""

from __future__ import annotations

from pathlib import Path

import pytest
from comparison_testing import demo_settings, write_datalist, write_result

from bundle.comparison.settings import MANAGED_KEYS, build_run_spec, make_settings, run_folder, settings_key
from bundle.config import CONFIGS, REPO
from bundle.reports import display_path


@pytest.fixture
def datalist(tmp_path):
    return write_datalist(tmp_path)


def test_run_spec_orders_configs_and_overrides(tmp_path, datalist):
    overlay = tmp_path / "dataset.json"
    overlay.write_text("{}")
    settings = demo_settings(tmp_path, datalist, "mims_cnn:top_k=3", seeds=(4,), configs=[overlay],
                             overrides=["top_k=7", "epochs=2"])
    spec = settings.specs[0]
    run = build_run_spec(settings, spec, 4)
    assert run["train_configs"] == [str(CONFIGS / "common.json"), str(CONFIGS / "train.json"), str(overlay),
                                    str(CONFIGS / "methods" / "mims_cnn.json")]
    assert run["eval_configs"][1] == str(CONFIGS / "evaluate.json")
    assert run["eval_configs"][2:] == run["train_configs"][2:]
    folder = tmp_path / "runs" / "demo" / "mims_cnn__top_k-3" / "seed4"
    assert run_folder(settings, spec, 4) == folder
    assert run["overrides"] == {
        "top_k": 3, "epochs": 2, "seed": 4, "datalist": str(datalist), "run_dir": str(folder / "run"),
        "ckpt_path": str(folder / "model.pt"), "output_dir": str(folder), "bundle_root": str(REPO),
        "experiment_name": "compare_demo", "run_name": "mims_cnn__top_k-3_seed4", "num_overlay_cases": 0,
    }
    assert run["tracking_db"] == str(tmp_path / "runs" / "demo" / "mlruns.db")
    assert run["settings"] == settings_key(settings) == {
        "datalist": str(datalist), "configs": [str(overlay)], "overrides": {"top_k": 7, "epochs": 2}}
    assert (run["spec"], run["slug"]) == ("mims_cnn:top_k=3", "mims_cnn__top_k-3")
    assert run["display_name"] == "MIMS (top_k=3)"


# (--config overlay content or None, --override texts, FeatPyra's display name on the page and in run_spec.json)
FEATPYRA_CASES = [
    (None, [], "FeatPyra-2,3"),  # common.json: feature_stage 2 -> backbone stages 1, 2 = conv2_x, conv3_x
    (None, ["feature_stage=4"], "FeatPyra-4,5"),
    ('{"feature_stage": 3}', [], "FeatPyra-3,4"),
    ('{"feature_stage": 3}', ["feature_stage=4"], "FeatPyra-4,5"),  # --override wins over the overlay
]


@pytest.mark.parametrize("overlay, overrides, name", FEATPYRA_CASES)
def test_featpyra_display_name_follows_the_configured_stage(tmp_path, datalist, overlay, overrides, name):
    configs = []
    if overlay is not None:
        configs = [tmp_path / "dataset.json"]
        configs[0].write_text(overlay)
    settings = demo_settings(tmp_path, datalist, "featpyra_4_5", seeds=(0,), configs=configs, overrides=overrides)
    assert settings.specs[0].label == name
    assert build_run_spec(settings, settings.specs[0], 0)["display_name"] == name


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"datalist": "missing.json"}, "does not exist"),
        ({"configs": ["missing_overlay.json"]}, "does not exist"),
        ({"overrides": ["epochs"]}, "key=value"),
        ({"overrides": ["seed=3"]}, "set by this script"),
        ({"methods": ["mims_cnn", "nope"]}, "valid methods: mims_cnn"),
        ({"methods": ["mims_cnn:run_name=x"]}, "may not set 'run_name'"),
        ({"dataset_name": "a/b"}, "--dataset-name"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": [-1]}, "distinct non-negative"),
        ({"notes": "missing.md"}, "does not exist"),
    ],
)
def test_invalid_settings_fail_before_any_work(tmp_path, datalist, bad, fragment):
    arguments = {"dataset_name": "demo", "datalist": datalist, "methods": ["mims_cnn"],
                 "output_root": tmp_path / "runs", "results_dir": tmp_path / "results", **bad}
    with pytest.raises(ValueError) as e:
        make_settings(**arguments)
    assert fragment in str(e.value)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_managed_keys_cover_what_the_comparison_sets(tmp_path, datalist):
    settings = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,))
    set_by_comparison = set(build_run_spec(settings, settings.specs[0], 0)["overrides"]) | {"tracking_uri"}
    assert set_by_comparison == set(MANAGED_KEYS)


def test_finished_runs_of_other_settings_are_refused(tmp_path, datalist):
    settings = demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=3"])
    write_result(settings, settings.specs[0], 0, 0.9, 0.8, 0.7, iteration_s=0.2, memory_mib=10.0)
    with pytest.raises(ValueError, match="produced with other settings"):
        demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=4"])
    assert demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=4"], report_only=True)
    assert demo_settings(tmp_path, datalist, "mims_cnn", seeds=(0,), overrides=["epochs=3"])  # same settings: resumes


def test_duplicate_specs_are_dropped_in_requested_order(tmp_path, datalist):
    settings = demo_settings(tmp_path, datalist, "mims_mean", "aggregation", "mims_cnn:top_k=2", seeds=(0,))
    assert [s.canonical for s in settings.specs][:2] == ["mims_mean", "mims_max"]
    assert len({s.slug for s in settings.specs}) == len(settings.specs) == 7


def test_a_datalist_reached_through_a_symbolic_link_keeps_its_link(tmp_path, datalist):
    """The datalist is made absolute, not resolved, so a clone whose ``data`` links to another clone's data
    records ``data/...`` like that clone (``display_path`` keeps paths inside the root as written)."""
    linked = tmp_path / "linked_data"
    linked.symlink_to(datalist.parent, target_is_directory=True)
    settings = demo_settings(tmp_path, linked / datalist.name, "mims_cnn", seeds=(0,))
    assert settings.datalist == linked / datalist.name
    assert display_path(settings.datalist, tmp_path) == str(Path("linked_data") / datalist.name)
