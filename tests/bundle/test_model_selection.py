# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Promotion of a run's model to ``models/model.pt`` (``bundle.model_selection.promote_model`` and
``bundle.promote_checkpoint.PromoteCheckpoint``): the rules of ``promote``, the provenance, the lock, atomic
replacement."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from ignite.engine import Engine, Events
from ignite.handlers.checkpoint import CheckpointEvents

from bundle.decision import save_decision
from bundle.model_selection import (
    check_promote,
    model_lock,
    promote_model,
    provenance_path,
    read_provenance,
    validation_data_hash,
)
from bundle.promote_checkpoint import PromoteCheckpoint

LOGGER = "bundle.model_selection"


def _record(value, sha="v1", name="auroc", run="new", epoch=3):
    return {"run_name": run, "metric": {"name": name, "value": value}, "epoch": epoch,
            "validation": {"datalist": "d.json", "split": "validation", "sha256": sha}}


def _folders(tmp_path, current=None):
    """A run's model ``run/model.pt`` (b"new"); ``models/model.pt`` (b"old") promoted with ``current``."""
    run, models = tmp_path / "run", tmp_path / "models"
    run.mkdir()
    (run / "model.pt").write_bytes(b"new")
    if current is not None:
        (tmp_path / "old").mkdir()
        (tmp_path / "old" / "model.pt").write_bytes(b"old")
        promote_model(tmp_path / "old" / "model.pt", models / "model.pt", "always", current)
    return run / "model.pt", models / "model.pt"


CURRENT = _record(0.8, run="old", epoch=2)
BEATEN = "the current model's auroc 0.8000 (epoch 2) (run old)"


@pytest.mark.parametrize(
    "new, promote, promoted, level, reason",
    [
        (_record(0.9), "better", True, logging.INFO, f"validation auroc 0.9000 beats {BEATEN}: 0.9000 > 0.8000"),
        (_record(0.7), "better", False, logging.WARNING,
         f"this run's validation auroc 0.7000 does not beat {BEATEN}: 0.7000 <= 0.8000 (promote 'always' replaces "
         "it)"),
        (_record(0.8), "better", False, logging.WARNING,
         f"this run's validation auroc 0.8000 does not beat {BEATEN}: 0.8000 <= 0.8000 (promote 'always' replaces "
         "it)"),
        (_record(0.7, sha="v2"), "better", True, logging.WARNING,
         "the metrics are not comparable: the validation data differ (d.json split 'validation', hash v2 vs the "
         "current model's d.json split 'validation', hash v1)"),
        (_record(0.7, name="f1"), "better", True, logging.WARNING,
         "the metrics are not comparable: the metrics differ (f1 vs the current model's auroc)"),
        (_record(None, epoch=None), "better", False, logging.WARNING,
         f"this run's model has no validation metric to compare with {BEATEN} (promote 'always' replaces it)"),
        (_record(0.7), "always", True, logging.INFO,
         f"promote 'always' (this run's auroc 0.7000 (epoch 3), {BEATEN})"),
        (_record(0.9), "never", False, logging.INFO, "promote 'never': {target} left as it is; this run's model "
         "stays in {source}"),
    ],
)
def test_promotion_rules(new, promote, promoted, level, reason, tmp_path, caplog):
    source, target = _folders(tmp_path, CURRENT)
    reason = reason.format(target=target, source=source)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        outcome = promote_model(source, target, promote, new)
    assert outcome == {"promoted": promoted, "reason": reason}
    assert target.read_bytes() == (b"new" if promoted else b"old")
    if promoted:
        line = f"promoted {source} to {target}: {reason}"
    elif promote == "never":
        line = reason
    else:
        line = f"kept the current model {target}: {reason}; this run's model stays in {source}"
    assert (LOGGER, level, line) in caplog.record_tuples
    assert read_provenance(target)["run_name"] == ("new" if promoted else "old")


@pytest.mark.parametrize(
    "setup, promoted, reason",
    [
        ("none", True, "no current model at {target}"),
        ("no provenance", True, "the current model has no provenance (model.provenance.json missing or not about "
                                "this file): its metric is unknown, not comparable with this run's auroc 0.1000 "
                                "(epoch 3)"),
        ("replaced by hand", True, "the current model has no provenance (model.provenance.json missing or not about "
                                   "this file): its metric is unknown, not comparable with this run's auroc 0.1000 "
                                   "(epoch 3)"),
        ("no metric", True, "the current model has no recorded validation metric (run old): not comparable with "
                            "this run's auroc 0.1000 (epoch 3)"),
    ],
)
def test_promotion_without_a_recorded_metric_to_beat(setup, promoted, reason, tmp_path):
    current = {"none": None, "no provenance": None, "replaced by hand": CURRENT,
               "no metric": _record(None, run="old")}[setup]
    source, target = _folders(tmp_path, current)
    if setup == "no provenance":
        target.parent.mkdir()
        target.write_bytes(b"old")
    if setup == "replaced by hand":
        target.write_bytes(b"other")  # its provenance now describes another file
    outcome = promote_model(source, target, "better", _record(0.1))
    assert outcome == {"promoted": promoted, "reason": reason.format(target=target)}
    assert target.read_bytes() == b"new"


def test_provenance_records_the_run_the_data_the_code_and_the_replaced_model(tmp_path):
    source, target = _folders(tmp_path, CURRENT)
    record = {**_record(0.9), "run_dir": "runs/new", "mlflow_run_id": "abc123", "keep_model": "best"}
    promote_model(source, target, "better", record)
    provenance = json.loads(provenance_path(target).read_text())
    assert provenance_path(target) == target.with_name("model.provenance.json")
    code, promoted_at = provenance.pop("code"), provenance.pop("promoted_at")
    replaced = provenance.pop("replaced")
    assert provenance == {
        "model": "model.pt",
        "sha256": hashlib.sha256(b"new").hexdigest(),
        "source": str(source),
        **record,
        "promote": "better",
        "reason": f"validation auroc 0.9000 beats {BEATEN}: 0.9000 > 0.8000",
    }
    assert replaced["run_name"] == "old" and replaced["sha256"] == hashlib.sha256(b"old").hexdigest()
    assert replaced["metric"] == {"name": "auroc", "value": 0.8} and replaced["epoch"] == 2
    assert set(code) == {"commit", "uncommitted_changes"} and re.fullmatch(r"[0-9a-f]{40}", code["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", promoted_at)


@pytest.mark.parametrize("new_value, moves", [(0.9, True), (0.7, False)])
def test_the_decision_sidecar_moves_with_the_model(new_value, moves, tmp_path):
    source, target = _folders(tmp_path, CURRENT)
    save_decision({"positive_class": 1, "threshold": 0.25}, target)
    save_decision({"positive_class": 1, "threshold": 0.4}, source)
    promote_model(source, target, "better", _record(new_value))
    threshold = json.loads(target.with_name("model.decision.json").read_text())["threshold"]
    assert threshold == (0.4 if moves else 0.25)


def test_a_held_lock_stops_a_promotion_with_a_message(tmp_path):
    source, target = _folders(tmp_path)
    message = (f"{target} is locked by another process ({target.with_name('.model.pt.lock')}) for more than 0.2 s: "
               "another run is promoting a model there; wait for it to finish and promote again, or train with "
               "promote 'never'")
    with model_lock(target):  # another open file description: flock refuses it as it would another process
        with pytest.raises(TimeoutError, match=re.escape(message)):
            promote_model(source, target, "always", _record(0.9), lock_timeout=0.2)
    assert not target.exists()
    assert promote_model(source, target, "always", _record(0.9))["promoted"]  # released


def test_replacement_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    source, target = _folders(tmp_path, CURRENT)

    def failing_copy(src, dst):
        Path(dst).write_bytes(b"ne")  # half written, then the disk fills
        raise OSError("No space left on device")

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="No space left"):
        promote_model(source, target, "always", _record(0.9))
    assert target.read_bytes() == b"old" and read_provenance(target)["run_name"] == "old"
    monkeypatch.undo()
    promote_model(source, target, "always", _record(0.9))
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == [".model.pt.lock", "model.provenance.json", "model.pt"]


@pytest.mark.parametrize("value", ["sometimes", None, True])
def test_check_promote_names_the_allowed_values(value):
    message = f"promote must be one of 'better', 'always', 'never', got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        check_promote(value)


def _datalist(path, validation, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"training": [{"image": "t.nii.gz", "label": 0}], "validation": validation, **extra}))
    return path


VALIDATION = [{"image": "images/a.nii.gz", "label": 0}, {"image": "images/b.nii.gz", "label": 1}]


@pytest.mark.parametrize(
    "change, same",
    [
        ({"folder": "d"}, True),  # the same entries in the same folder
        ({"folder": "d", "extra": {"test": [{"image": "x.nii.gz", "label": 1}]}}, True),  # other splits do not count
        ({"folder": "e"}, False),  # the same names in another folder: other files
        ({"folder": "d", "validation": [VALIDATION[0], {**VALIDATION[1], "label": 0}]}, False),
        ({"folder": "d", "validation": VALIDATION[:1]}, False),
    ],
)
def test_validation_data_hash(change, same, tmp_path):
    reference = validation_data_hash(_datalist(tmp_path / "d" / "datalist.json", VALIDATION))
    other = _datalist(tmp_path / change["folder"] / "other.json", change.get("validation", VALIDATION),
                      **change.get("extra", {}))
    assert re.fullmatch(r"[0-9a-f]{64}", reference)
    assert (validation_data_hash(other) == reference) == same


def test_validation_data_hash_of_an_unreadable_datalist_is_none(tmp_path):
    assert validation_data_hash(tmp_path / "absent.json") is None
    assert validation_data_hash(_datalist(tmp_path / "d.json", VALIDATION), "test") is None  # no such split


def _train(tmp_path, scores, saved_epochs, keep_model="best", promote="better", weights=b"new"):
    """A trainer whose validator reports ``scores`` (one per epoch) and saves the model after ``saved_epochs``."""
    datalist = _datalist(tmp_path / "data" / "datalist.json", VALIDATION)
    source, target = tmp_path / "run" / "model.pt", tmp_path / "models" / "model.pt"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(weights)
    trainer, validator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    validator.register_events(*CheckpointEvents)

    @validator.on(Events.EPOCH_COMPLETED)
    def _metrics(engine):  # what MONAI's evaluator does: the trainer's epoch, the key metric
        engine.state.epoch = trainer.state.epoch
        engine.state.key_metric_name = "auroc"
        engine.state.metrics = {"auroc": scores[trainer.state.epoch - 1]}

    promotion = PromoteCheckpoint(source, target, promote, validator, keep_model, datalist, "validation", "train_x",
                                  tmp_path / "run")
    promotion.attach(trainer)

    @validator.on(Events.EPOCH_COMPLETED)
    def _saver(engine):
        if engine.state.epoch in saved_epochs:
            engine.fire_event(CheckpointEvents.SAVED_CHECKPOINT)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _validate(engine):
        if engine.state.epoch <= len(scores):
            validator.run([0])

    trainer.run([0], max_epochs=3)
    return promotion, target, datalist


@pytest.mark.parametrize(
    "scores, saved, keep_model, metric, epoch",
    [
        ([0.6, 0.9, 0.7], {1, 2}, "best", 0.9, 2),  # the last validation whose model was saved
        ([0.6, 0.9, 0.7], {1, 2}, "final", 0.7, 3),  # the validation of the last epoch
        ([0.6, 0.9], {1, 2}, "final", None, None),  # the last epoch was not validated
    ],
)
def test_promote_checkpoint_records_the_kept_models_validation(scores, saved, keep_model, metric, epoch, tmp_path):
    promotion, target, datalist = _train(tmp_path, scores, saved, keep_model)
    provenance = read_provenance(target)
    assert promotion.outcome == {"promoted": True, "reason": f"no current model at {target}"}
    assert provenance["metric"] == {"name": "auroc" if metric is not None else None, "value": metric}
    assert provenance["epoch"] == epoch and provenance["keep_model"] == keep_model
    assert provenance["run_name"] == "train_x" and provenance["run_dir"] == str(tmp_path / "run")
    assert provenance["mlflow_run_id"] is None  # not tracked
    assert provenance["validation"] == {"datalist": str(datalist), "split": "validation",
                                        "sha256": validation_data_hash(datalist)}


def test_a_second_run_that_is_not_better_keeps_the_model(tmp_path, caplog):
    _train(tmp_path, [0.6, 0.9, 0.7], {1, 2})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        promotion, target, _ = _train(tmp_path, [0.5, 0.8, 0.85], {1, 2, 3}, weights=b"second")
    assert not promotion.outcome["promoted"] and target.read_bytes() == b"new"
    assert "does not beat the current model's auroc 0.9000 (epoch 2) (run train_x): 0.8500 <= 0.9000" in caplog.text
    promotion, target, _ = _train(tmp_path, [0.5, 0.8, 0.85], {1, 2, 3}, promote="always", weights=b"second")
    assert promotion.outcome["promoted"] and target.read_bytes() == b"second"
    assert read_provenance(target)["metric"]["value"] == 0.85


def test_promote_checkpoint_only_on_success(tmp_path):
    source, target = tmp_path / "run" / "model.pt", tmp_path / "models" / "model.pt"
    source.parent.mkdir()
    source.write_bytes(b"new")
    target.parent.mkdir()
    target.write_bytes(b"old")

    def failing(engine, batch):
        raise RuntimeError("boom")

    engine = Engine(failing)
    PromoteCheckpoint(source, target).attach(engine)
    with pytest.raises(RuntimeError, match="boom"):
        engine.run([1], max_epochs=1)
    assert target.read_bytes() == b"old"
    engine = Engine(lambda e, b: b)
    PromoteCheckpoint(source, target).attach(engine)
    engine.run([1], max_epochs=1)
    assert target.read_bytes() == b"new"
