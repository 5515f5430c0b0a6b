# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The training options of ``configs/train.json``: ``warmup_epochs``, ``early_stopping_patience``,
``best_model_min_epoch`` and ``keep_model`` (``bundle.schedules``, ``bundle.model_selection``): schedules
against their formula, validation of the values, and end-to-end runs on tiny data."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from bundle.config import config_parser
from bundle.model_selection import check_best_model_min_epoch, check_early_stopping_patience, check_keep_model
from bundle.schedules import warmup_cosine_schedule
from bundle_testing import CONFIGS, TINY, TINY_TRAIN, run_workflow

TRAIN = ["common.json", "train.json"]


def _optimizer(lrs=(0.002, 0.001)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.AdamW(groups, lr=lrs[0])


def _rates(scheduler, optimizer, epochs):
    """The rate of each parameter group in each epoch 1 .. epochs (the scheduler steps after each epoch)."""
    rates = []
    for _ in range(epochs):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return rates


def _expected(lr, epoch, epochs, warmup):
    if epoch <= warmup:
        return lr * epoch / (warmup + 1)
    return lr * (1 + math.cos(math.pi * (epoch - warmup - 1) / (epochs - warmup))) / 2


def test_no_warmup_is_the_cosine_schedule():
    optimizer, reference_optimizer = _optimizer(), _optimizer()
    scheduler = warmup_cosine_schedule(optimizer, epochs=7, warmup_epochs=0)
    assert type(scheduler) is torch.optim.lr_scheduler.CosineAnnealingLR and scheduler.T_max == 7
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(reference_optimizer, T_max=7)
    assert _rates(scheduler, optimizer, 7) == _rates(reference, reference_optimizer, 7)  # exactly


@pytest.mark.parametrize("epochs, warmup", [(6, 2), (5, 1), (4, 3)])
def test_warmup_rates_follow_the_formula(epochs, warmup):
    optimizer = _optimizer()
    rates = _rates(warmup_cosine_schedule(optimizer, epochs, warmup), optimizer, epochs)
    for epoch, epoch_rates in enumerate(rates, start=1):
        for lr, rate in zip((0.002, 0.001), epoch_rates):
            assert rate == pytest.approx(_expected(lr, epoch, epochs, warmup), rel=1e-12, abs=1e-15)
    assert rates[warmup][0] == pytest.approx(0.002)  # full rate at epoch warmup + 1


def test_warmup_schedule_resumes_from_its_state():
    """The resumable checkpoint saves ``lr_scheduler.state_dict()``; a new schedule loading it continues."""
    optimizer = _optimizer()
    scheduler = warmup_cosine_schedule(optimizer, 6, 2)
    full = _rates(scheduler, optimizer, 6)
    optimizer = _optimizer()
    scheduler = warmup_cosine_schedule(optimizer, 6, 2)
    _rates(scheduler, optimizer, 3)
    state, optimizer_state = scheduler.state_dict(), optimizer.state_dict()
    resumed_optimizer = _optimizer()
    resumed = warmup_cosine_schedule(resumed_optimizer, 6, 2)
    resumed_optimizer.load_state_dict(optimizer_state)
    resumed.load_state_dict(state)
    assert _rates(resumed, resumed_optimizer, 3) == full[3:]


def test_config_builds_the_schedule_from_warmup_epochs():
    parser = config_parser([CONFIGS / c for c in TRAIN], {**TINY, "epochs": 5, "warmup_epochs": 2})
    scheduler = parser.get_parsed_content("lr_scheduler")
    assert isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR)
    default = config_parser([CONFIGS / c for c in TRAIN], TINY).get_parsed_content("lr_scheduler")
    assert type(default) is torch.optim.lr_scheduler.CosineAnnealingLR and default.T_max == 20


@pytest.mark.parametrize(
    "check, value, message",
    [
        (lambda v: warmup_cosine_schedule(_optimizer(), 3, v), 3, "warmup_epochs must be an integer from 0 to "
                                                                  "epochs - 1 = 2, got 3"),
        (lambda v: warmup_cosine_schedule(_optimizer(), 3, v), -1, "warmup_epochs must be"),
        (lambda v: warmup_cosine_schedule(_optimizer(), 3, v), 1.5, "warmup_epochs must be"),
        (check_early_stopping_patience, 0, "early_stopping_patience must be null (off) or an integer >= 1, got 0"),
        (check_early_stopping_patience, "3", "early_stopping_patience must be"),
        (check_best_model_min_epoch, 0, "best_model_min_epoch must be an integer >= 1, got 0"),
        (check_best_model_min_epoch, True, "best_model_min_epoch must be"),
        (check_keep_model, "last", "keep_model must be one of 'best', 'final', got 'last'"),
    ],
)
def test_invalid_values_name_the_key_and_the_allowed_values(check, value, message):
    with pytest.raises(ValueError) as error:
        check(value)
    assert message in str(error.value)


def test_invalid_keep_model_fails_the_config():
    parser = config_parser([CONFIGS / c for c in TRAIN], {**TINY, "keep_model": "last"})
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("train#handlers#0")
    assert "keep_model must be one of 'best', 'final', got 'last'" in str(error.value.__cause__ or error.value)


# end to end on tiny data


def _overrides(root, dataset, **extra):
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **TINY_TRAIN, "num_overlay_cases": 0,
            **extra}


def _constant_model(overrides):
    """Every validation gives the same AUROC: head weights 0, bias [8, -8], learning rate 0."""
    overrides.update(
        learning_rate=0.0,
        head="$[m for m in @network.modules() if isinstance(m, torch.nn.Linear)][-1]",
        initialize=[
            "$monai.utils.set_determinism(seed=@seed)",
            "$torch.nn.init.zeros_(@head.weight)",
            "$@head.bias.data.copy_(torch.tensor([8.0, -8.0]))",
        ],
    )
    return overrides


def _run_logged(overrides, tracking=None, logger_names=("bundle",)):
    """Run a training and return it with its log records of the ``logger_names`` loggers."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    loggers = [logging.getLogger(name) for name in logger_names]  # the logging file resets the root handlers
    for logger in loggers:
        logger.addHandler(handler)
    try:
        workflow = run_workflow(TRAIN, "train", overrides, tracking)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    return workflow, [r.getMessage() for r in records]


def _model_of_final_checkpoint(run_dir):
    return torch.load(run_dir / "checkpoint_final.pt", weights_only=False)["model"]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_early_stopping_stops_and_still_promotes(tiny_dataset, bundle_root):
    from test_workflows import _mlflow_runs

    overrides = _constant_model(_overrides(bundle_root, tiny_dataset, epochs=5, early_stopping_patience=1,
                                           run_stamp="stop"))
    workflow, messages = _run_logged(overrides, "mlflow")
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2  # validation 1 sets the best, validation 2 does not improve on it
    assert ("early stopping at epoch 2: validation auroc has not improved for 1 validations (patience 1); best "
            "auroc 0.5000 at epoch 1") in messages
    run_dir = bundle_root / "runs" / "train_synthetic_oct_stop"
    assert (run_dir / "checkpoint_final.pt").is_file()  # COMPLETED fired after the stop
    assert (bundle_root / "models" / "model.pt").read_bytes() == (run_dir / "model.pt").read_bytes()
    trainer_state = torch.load(run_dir / "checkpoint_final.pt", weights_only=False)["trainer"]
    assert trainer_state["iteration"] == 2 * trainer_state["epoch_length"]  # saved at the end of epoch 2
    _, runs = _mlflow_runs(bundle_root)
    run = next(r for r in runs if r.info.run_name == "train_synthetic_oct_stop")
    assert run.info.status == "FINISHED"
    assert {k: run.data.params[k] for k in ("warmup_epochs", "early_stopping_patience", "best_model_min_epoch",
                                            "keep_model")} == {"warmup_epochs": "0", "early_stopping_patience": "1",
                                                               "best_model_min_epoch": "1", "keep_model": "best"}


def test_early_stopping_counts_from_the_min_epoch(tiny_dataset, bundle_root):
    overrides = _constant_model(_overrides(bundle_root, tiny_dataset, epochs=5, early_stopping_patience=1,
                                           best_model_min_epoch=2, run_stamp="stop2"))
    workflow, messages = _run_logged(overrides)
    assert workflow.parser.get_parsed_content("train#trainer").state.epoch == 3
    assert any(m.startswith("early stopping at epoch 3:") and m.endswith("at epoch 2") for m in messages)


def test_best_model_min_epoch_keeps_a_later_model(tiny_dataset, bundle_root):
    """Only the validation of epoch 3, the last, is a candidate: the kept model is the final one."""
    overrides = _overrides(bundle_root, tiny_dataset, epochs=3, best_model_min_epoch=3, run_stamp="min3")
    _, messages = _run_logged(overrides)
    run_dir = bundle_root / "runs" / "train_synthetic_oct_min3"
    for epoch in (1, 2):
        assert (f"validation epoch {epoch} is before best_model_min_epoch 3: not a candidate for the best model"
                in messages)
    _assert_same_weights(torch.load(run_dir / "model.pt", weights_only=True), _model_of_final_checkpoint(run_dir))
    assert (bundle_root / "models" / "model.pt").read_bytes() == (run_dir / "model.pt").read_bytes()


def test_keep_model_final_promotes_the_final_model(tiny_dataset, bundle_root):
    overrides = _overrides(bundle_root, tiny_dataset, epochs=2, keep_model="final", run_stamp="final")
    _, messages = _run_logged(overrides)
    run_dir = bundle_root / "runs" / "train_synthetic_oct_final"
    assert f"final model of epoch 2 saved to {run_dir / 'model.pt'} (keep_model 'final')" in messages
    _assert_same_weights(torch.load(run_dir / "model.pt", weights_only=True), _model_of_final_checkpoint(run_dir))
    assert (bundle_root / "models" / "model.pt").read_bytes() == (run_dir / "model.pt").read_bytes()


def test_warmup_rates_in_a_training_run(tiny_dataset, bundle_root):
    overrides = _overrides(bundle_root, tiny_dataset, epochs=3, warmup_epochs=2, run_stamp="warm")
    workflow, messages = _run_logged(overrides, logger_names=("ignite.engine.engine.SupervisedTrainer",))
    optimizer = workflow.parser.get_parsed_content("optimizer")
    lr = optimizer.param_groups[0]["initial_lr"]
    logged = [float(m.split(": ")[1]) for m in messages if m.startswith("Current learning rate: ")]
    # LrScheduleHandler logs the rate of the next epoch after each epoch: epochs 2, 3 (and 4, past the end)
    assert logged[:2] == pytest.approx([_expected(lr, 2, 3, 2), _expected(lr, 3, 3, 2)])
    assert logged[0] == pytest.approx(lr * 2 / 3) and logged[1] == pytest.approx(lr)
