# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The demo's result holds across training seeds (slow: about 16 minutes on 2 CPU cores).

The default demo data are generated once (``scripts/run_demo.py``'s data: generator seed 0, its default sizes);
then the demo's training and evaluation (:func:`bundle.demo.train_and_evaluate`: the same configs and overrides as
``scripts/run_demo.py``, without MLflow tracking, which changes no result) run once per training seed (config
``seed``), each in its own bundle root. Every seed of :data:`SEEDS` must reach a test AUROC of at least 0.95. Run
it with::

    .venv/bin/python -m pytest -m slow -s tests/test_demo_seeds.py
"""

from __future__ import annotations

import pytest

from bundle.demo import DEMO_DATA_DIR, prepare_demo_data, train_and_evaluate

#: training seeds (config ``seed``) that must reach the test AUROC; seed 4 stayed at chance level with the paper's
#: decaying initial top-k weights (``topk_init_decay`` 0.5; docs/README.md, Performance)
SEEDS = (0, 1, 2, 4)
MIN_AUROC = 0.95


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """The demo's data (generator seed 0, default sizes), generated once for every training seed."""
    data_dir = tmp_path_factory.mktemp("demo") / DEMO_DATA_DIR
    prepare_demo_data(data_dir, seed=0)
    return data_dir


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_demo_reaches_the_auroc_with_the_training_seed(demo_data, tmp_path, seed):
    metrics = train_and_evaluate(tmp_path / f"seed_{seed}", demo_data, tracking=False,
                                 train_overrides={"seed": str(seed)})
    assert metrics["num_cases"] == 60
    print(f"training seed {seed}: test AUROC {metrics['auroc']:.4f}", flush=True)
    assert metrics["auroc"] >= MIN_AUROC, f"training seed {seed}: test AUROC {metrics['auroc']:.4f} < {MIN_AUROC}"


def test_seed_runs_use_the_demo_commands(tmp_path, monkeypatch):
    """Fast: the commands a seed run issues are the demo's, plus ``--seed`` for the training only."""
    import json

    import bundle.demo as demo

    commands = []
    monkeypatch.setattr(demo, "run_command", lambda cmd, cwd=demo.REPO: commands.append(list(cmd)))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"auroc": 1.0, "num_cases": 60}))
    assert train_and_evaluate(tmp_path, "data", tracking=False, train_overrides={"seed": "2"})["auroc"] == 1.0
    train, evaluate = commands
    assert train[2:6] == evaluate[2:4] + ["--config_file", "['configs/common.json','configs/train.json']"]
    assert evaluate[4:6] == ["--config_file", "['configs/common.json','configs/evaluate.json']"]
    shared = ["--bundle_root", str(tmp_path), "--dataset_dir", "data"]
    assert train[6:] == shared + ["--seed", "2"] and evaluate[6:] == shared
    assert demo.display_command(train).endswith("\"['configs/common.json','configs/train.json']\" " + " ".join(
        shared + ["--seed", "2"]))
