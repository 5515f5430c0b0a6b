# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.decision`` (threshold choice, sidecar, resolution), ``ThresholdSelector`` against the real best-model
saver, and the sidecar in ``PromoteCheckpoint`` and ``PredictionsWriter``."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from ignite.engine import Engine, Events

from bundle.decision import (
    archive_decision,
    choose_threshold,
    decided_class,
    decision_path,
    load_decision,
    resolve_threshold,
    save_decision,
)
from bundle.promote_checkpoint import PromoteCheckpoint
from bundle.result_writers import PredictionsWriter
from bundle.model_selection import BestModelSaver
from bundle.threshold_selection import ThresholdSelector

# probabilities, labels, expected threshold, sensitivity, specificity (worked by hand)
CHOICES = [
    # separable: candidates 0, .15, .25, .35, 1; J = 1 only at 0.25
    ([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 0.25, 1.0, 1.0),
    # J = 0.5 at 0.225 (tp 2, tn 1) and at 0.6 (tp 1, tn 2): 0.6 is closer to 0.5
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.6, 0.5, 1.0),
    # imbalanced, argmax would call all negative: the cut at 0.25 separates
    ([0.05, 0.1, 0.15, 0.2, 0.3, 0.35], [0, 0, 0, 0, 1, 1], 0.25, 1.0, 1.0),
    # J = 0 everywhere (one distinct value): 0.0 and 1.0 are equally close to 0.5, the lower wins
    ([0.3, 0.3], [0, 1], 0.0, 1.0, 0.0),
    # J at 0.225, 0.275, 0.35, 0.45, 0.55: 1/3, 0, 1/3, 2/3 (tp 2 of 3, tn 3 of 3), 1/3
    ([0.2, 0.3, 0.4, 0.25, 0.5, 0.6], [0, 0, 0, 1, 1, 1], 0.45, 2 / 3, 1.0),
]


@pytest.mark.parametrize("probs, labels, threshold, sensitivity, specificity", CHOICES)
def test_choose_threshold_exact(probs, labels, threshold, sensitivity, specificity):
    d = choose_threshold(probs, labels)
    assert d["threshold"] == pytest.approx(threshold, abs=1e-12)
    assert d["sensitivity"] == pytest.approx(sensitivity) and d["specificity"] == pytest.approx(specificity)
    assert {k: d[k] for k in ("positive_class", "criterion", "split", "num_cases")} == {
        "positive_class": 1, "criterion": "youden", "split": "validation", "num_cases": len(probs)}


def test_one_class_gives_the_default_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="bundle.decision"):
        d = choose_threshold([0.2, 0.7, 0.4], [0, 0, 0])
    assert d == {"positive_class": 1, "split": "validation", "num_cases": 3, "threshold": 0.5,
                 "criterion": "default (validation had one class)", "sensitivity": None, "specificity": 2 / 3}
    assert "all of class 0" in caplog.text


@pytest.mark.parametrize(
    "probs, labels, message",
    [([], [], "at least one case"), ([0.1], [0, 1], "1 probabilities for 2 labels"),
     ([0.1, 0.2], [0, 2], "labels must be 0 or 1"), ([0.1, 1.2], [0, 1], r"probabilities must lie in \[0, 1\]")],
)
def test_choose_threshold_refuses_bad_input(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        choose_threshold(probs, labels)


def test_sidecar_path_save_and_load(tmp_path):
    assert decision_path(tmp_path / "model.pt") == tmp_path / "model.decision.json"
    assert decision_path("runs/x/checkpoint_final.pt").name == "checkpoint_final.decision.json"
    decision = choose_threshold([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
    path = save_decision(decision, tmp_path / "model.pt")
    assert path == tmp_path / "model.decision.json" and not list(tmp_path.glob(".tmp_*"))
    assert load_decision(tmp_path / "model.pt") == decision == load_decision(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"model\.decision\.json: not a valid decision file"):
        load_decision(tmp_path / "model.pt")
    path.write_text(json.dumps({"threshold": 2}))
    with pytest.raises(ValueError, match=r"model\.decision\.json: 'threshold' must be a number in \[0, 1\]"):
        load_decision(path)
    with pytest.raises(FileNotFoundError, match=r"no decision file .*other\.decision\.json"):
        load_decision(tmp_path / "other.pt")


def test_resolve_threshold(tmp_path, caplog):
    ckpt = tmp_path / "model.pt"
    with caplog.at_level(logging.INFO, logger="bundle.decision"):
        assert resolve_threshold("auto", ckpt, 2) is None  # no sidecar: argmax
        save_decision({"positive_class": 1, "threshold": 0.3, "criterion": "youden", "epoch": 4}, ckpt)
        assert resolve_threshold("auto", ckpt, 2) == 0.3
    assert f"threshold 0.3 on class 1 (youden on ?, epoch 4) from {tmp_path / 'model.decision.json'}" in caplog.text
    assert resolve_threshold(0.7, ckpt, 2) == 0.7 and resolve_threshold(None, ckpt, 2) is None
    assert resolve_threshold("auto", ckpt, 3) is None  # multi-class: argmax even with a sidecar
    with pytest.raises(ValueError, match="decision_threshold 0.7 applies to binary tasks only; num_classes is 3"):
        resolve_threshold(0.7, ckpt, 3)
    for bad in (0.0, 1.0, "yes", True):
        with pytest.raises(ValueError, match="decision_threshold must be 'auto', null .argmax. or a number in .0, 1."):
            resolve_threshold(bad, ckpt, 2)
    for text in ("null", "None"):  # text, not null (bundle.command_line reports a command line's --key null)
        with pytest.raises(ValueError, match=f"or a number in .0, 1., got '{text}'$"):
            resolve_threshold(text, ckpt, 2)


def test_archive_decision_and_decided_class():
    assert archive_decision({"version": "1"}) is None and archive_decision({"decision": None}) is None
    assert archive_decision({"decision": {"threshold": 0.2}}) == {"threshold": 0.2}
    with pytest.raises(ValueError, match="archive metadata 'decision'"):
        archive_decision({"decision": {"threshold": None}})
    assert decided_class([0.8, 0.2], None) == 0 and decided_class([0.8, 0.2], 0.2) == 1
    assert decided_class(torch.tensor([0.1, 0.3, 0.6]), None) == 2


def _validations(selector, saver, epochs, tmp_path):
    """Run a fake validation evaluator once per epoch: ``epochs`` is a list of (auroc, cases [(p1, label)])."""

    def step(engine, batch):
        return [{"pred": torch.tensor([1 - p, p]), "label": torch.tensor(y)} for p, y in batch]

    engine = Engine(step)
    scores = {}
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(auroc=scores[e.state.epoch]))
    selector.attach(engine)
    if saver is not None:
        saver.attach(engine)
    written = []
    for epoch, (score, cases) in enumerate(epochs, start=1):
        scores[epoch] = score
        engine.state.max_epochs, engine.state.epoch, engine.state.iteration = epoch, epoch - 1, 0  # as MONAI does
        engine.run([cases[:2], cases[2:]])
        sidecar = decision_path(tmp_path / "model.pt")
        written.append(load_decision(sidecar)["epoch"] if sidecar.is_file() else None)
    return written


CASES_A = [(0.2, 0), (0.6, 1), (0.4, 0), (0.7, 1)]
CASES_B = [(0.1, 0), (0.3, 1), (0.2, 0), (0.35, 1)]


@pytest.mark.parametrize(
    "min_epoch, scores, expected",
    [
        (1, [0.6, 0.8, 0.7, 0.8, 0.5], [1, 2, 2, 4, 4]),  # ties: the latest equal score is kept
        (2, [0.9, 0.6, 0.7, 0.7, 0.5], [None, 2, 3, 4, 4]),  # epoch 1 is before best_model_min_epoch
    ],
)
def test_selector_writes_the_kept_model_s_decision(min_epoch, scores, expected, tmp_path):
    model = torch.nn.Linear(1, 1)
    saver = BestModelSaver(save_dir=str(tmp_path), save_dict={"model": model}, save_key_metric=True,
                           key_metric_name="auroc", key_metric_filename="model.pt", key_metric_greater_or_equal=True,
                           min_epoch=min_epoch)
    selector = ThresholdSelector(tmp_path / "model.pt", keep_model="best")
    epochs = [(s, CASES_A if i % 2 else CASES_B) for i, s in enumerate(scores)]
    assert _validations(selector, saver, epochs, tmp_path) == expected
    kept = expected[-1]
    cases = epochs[kept - 1][1]
    chosen = choose_threshold([float(torch.tensor(p)) for p, _ in cases], [y for _, y in cases])  # float32 probs
    assert load_decision(tmp_path / "model.pt") == {**chosen, "epoch": kept}


def test_selector_final_keeps_the_last_validation(tmp_path):
    selector = ThresholdSelector(tmp_path / "model.pt", keep_model="final")
    assert _validations(selector, None, [(0.9, CASES_A), (0.1, CASES_B)], tmp_path) == [1, 2]
    assert load_decision(tmp_path / "model.pt")["threshold"] == pytest.approx(0.25)


def test_promote_checkpoint_copies_or_removes_the_sidecar(tmp_path):
    run, models = tmp_path / "run", tmp_path / "models"
    run.mkdir()
    (run / "model.pt").write_bytes(b"weights")
    save_decision({"positive_class": 1, "threshold": 0.4}, run / "model.pt")
    PromoteCheckpoint(run / "model.pt", models / "model.pt")(None)
    assert (models / "model.decision.json").read_bytes() == (run / "model.decision.json").read_bytes()
    (run / "model.decision.json").unlink()  # a model without a decision: the earlier one's must not stay
    PromoteCheckpoint(run / "model.pt", models / "model.pt")(None)
    assert (models / "model.pt").is_file() and not (models / "model.decision.json").exists()


@pytest.mark.parametrize("threshold, predictions, column", [(None, [0, 1], ""), (0.25, [1, 1], "0.25")])
def test_predictions_follow_and_name_the_threshold(threshold, predictions, column, tmp_path):
    writer = PredictionsWriter(tmp_path, class_names=["normal", "cyst"], threshold=threshold)
    engine = Engine(lambda e, b: [{"pred": torch.tensor([0.7, 0.3]), "label": torch.tensor(0)},
                                  {"pred": torch.tensor([0.2, 0.8]), "label": torch.tensor(1)}])
    writer.attach(engine)
    engine.run([0])
    rows = json.loads((tmp_path / "predictions.json").read_text())
    assert [r["prediction"] for r in rows] == predictions and all(r["threshold"] == threshold for r in rows)
    csv_lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert csv_lines[0] == "case,label,prob_normal,prob_cyst,threshold,prediction,predicted_class,status,reason"
    assert csv_lines[1].split(",")[4] == column
