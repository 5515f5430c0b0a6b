# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Parts 1 and 2 of the benchmark: training and inference throughput, end to end versus model only.

Both sides of each ratio run in this process, interleaved round by round (which side goes first
alternates), warm-up rounds excluded, on the pipelines the bundle configs build.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

from bundle.benchmark.timing import log, rate, ratio, seconds, timed_loop
from bundle.config import CONFIGS, config_parser

__all__ = ["bench_inference", "bench_training"]


def _held(batch: tuple) -> tuple:
    """A prepared batch ``(inputs, targets, args, kwargs)`` with every ``MetaTensor`` as a plain tensor."""
    from bundle.prepare_batch import plain_tensor

    inputs, targets, args, kwargs = batch
    return (
        plain_tensor(inputs),
        plain_tensor(targets),
        tuple(map(plain_tensor, args)),
        {k: plain_tensor(v) for k, v in kwargs.items()},
    )


def _cycle(loader: Any) -> Iterator[Any]:
    """Batches of ``loader`` without end: a new epoch (a new iterator, reshuffled) after each one."""
    while True:
        yield from loader


def bench_training(overrides: dict[str, Any], iterations: int, warmup: int, seed: int) -> dict[str, Any]:
    """Training iterations/s end to end versus the model step alone on the same batches.

    ``configs/common.json`` + ``configs/train.json`` with ``overrides`` give ``train#dataloader`` (cache,
    slice sampling, flip, collate). Every round takes the next batch of it and applies ``prepare_batch``
    (timed), then runs the trainer's step (``train#inferer``, ``loss``, backward, ``optimizer``) on that batch
    as it is, completing one end-to-end iteration, and on the same batch held as plain tensors, one
    model-only iteration; which of the two steps goes first alternates. The first ``warmup`` rounds are not
    counted.

    Returns:
        Rates (``e2e_it_s``, ``model_it_s``, their ``ratio``), medians and means in seconds, the batch size,
        the number of cached volumes, the cache fill time and the mean real slices per batch.
    """
    import torch
    from monai.utils import set_determinism

    parser = config_parser([CONFIGS / "common.json", CONFIGS / "train.json"], overrides)
    set_determinism(seed=seed)
    try:
        start = time.perf_counter()
        loader = parser.get_parsed_content("train#dataloader")  # builds the CacheDataset, i.e. fills the cache
        cache_s = time.perf_counter() - start
        log(f"training: cache of {len(loader.dataset)} volumes filled in {cache_s:.1f} s")
        device = parser.get_parsed_content("device")
        network = parser.get_parsed_content("network")
        loss_function = parser.get_parsed_content("loss")
        optimizer = parser.get_parsed_content("optimizer")
        prepare_batch = parser.get_parsed_content("prepare_batch")
        inferer = parser.get_parsed_content("train#inferer")

        def step(inputs: Any, targets: Any, args: tuple, kwargs: dict) -> None:
            # SupervisedTrainer._iteration without AMP, gradient accumulation and events
            network.train()
            optimizer.zero_grad(set_to_none=False)
            loss = loss_function(inferer(inputs, network, *args, **kwargs), targets).mean()
            loss.backward()
            optimizer.step()

        batches = _cycle(loader)
        slices: list[float] = []

        def one_round(i: int) -> dict[str, float]:
            start = time.perf_counter()
            batch = prepare_batch(next(batches), device, False)
            data = time.perf_counter() - start
            held = _held(batch)
            if i % 2 == 0:  # alternate which step runs first
                e2e_step, model = seconds(step, *batch), seconds(step, *held)
            else:
                model, e2e_step = seconds(step, *held), seconds(step, *batch)
            if i >= warmup:
                mask = batch[3].get("mask")
                slices.append(float(mask.sum()) if isinstance(mask, torch.Tensor) else float(batch[0].shape[1]))
            return {"end-to-end": data + e2e_step, "data": data, "step": e2e_step, "model-only": model}

        rounds = timed_loop(iterations, warmup, one_round, "training: iteration")
    finally:
        set_determinism(seed=None)
    e2e = [r["end-to-end"] for r in rounds]
    model = [r["model-only"] for r in rounds]
    return {
        "batch_size": parser.get_parsed_content("train_batch_size"),
        "num_volumes": len(loader.dataset),
        "cache_fill_s": cache_s,
        "mean_slices": statistics.fmean(slices),
        "e2e_it_s": rate(e2e),
        "model_it_s": rate(model),
        "ratio": ratio(rate(e2e), rate(model)),
        "e2e_median_s": statistics.median(e2e),
        "model_median_s": statistics.median(model),
        "data_mean_s": statistics.fmean(r["data"] for r in rounds),
        "step_mean_s": statistics.fmean(r["step"] for r in rounds),
        "model_mean_s": statistics.fmean(model),
    }


def bench_inference(overrides: dict[str, Any], iterations: int, warmup: int) -> dict[str, Any]:
    """Inference volumes/s end to end (from disk) versus the same bags in memory through the same inferer.

    The ``dataloader`` of ``configs/inference.json`` may prefetch in a background thread, so volumes are
    not timed one by one: a round is one whole pass over the test volumes. In alternating order, an
    end-to-end pass iterates the ``dataloader`` (file read, ``preprocessing``, ``collate_fn``), applies
    ``prepare_batch`` and runs ``inferer`` plus ``postprocessing`` (softmax) on every volume; a model-only
    pass runs the same inferer plus a softmax on the same bags held in memory as plain tensors. A third
    pass iterates the dataloader alone (no model) to show the cost of the data pipeline by itself.
    Everything runs in ``eval_mode``. The first ``warmup`` rounds are not counted.

    Returns:
        Rates (``e2e_vol_s``, ``model_vol_s``, their ``ratio``), mean seconds per volume of each pass, and the
        loader's type, workers and batch size, the volumes, passes, slices per volume and chunk size.
    """
    import torch
    from monai.data import decollate_batch
    from monai.networks import eval_mode

    parser = config_parser([CONFIGS / "common.json", CONFIGS / "inference.json"], overrides)
    loader = parser.get_parsed_content("dataloader")
    device = parser.get_parsed_content("device")
    network = parser.get_parsed_content("network")
    inferer = parser.get_parsed_content("inferer")
    prepare_batch = parser.get_parsed_content("prepare_batch")
    postprocessing = parser.get_parsed_content("postprocessing")
    held = [_held(prepare_batch(batch, device, False)) for batch in loader]
    num_volumes = sum(int(x.shape[0]) for x, *_ in held)
    slices = statistics.fmean(float(x.shape[1]) for x, *_ in held)

    def end_to_end_pass() -> None:
        for batch in loader:
            inputs, _, args, kwargs = prepare_batch(batch, device, False)
            for item in decollate_batch({"pred": inferer(inputs, network, *args, **kwargs)}):
                postprocessing(item)

    def model_only_pass() -> None:
        for x, _, args, kwargs in held:
            torch.softmax(inferer(x, network, *args, **kwargs), dim=1)

    def data_only_pass() -> None:
        for batch in loader:
            prepare_batch(batch, device, False)

    def one_round(i: int) -> dict[str, float]:
        if i % 2 == 0:  # alternate which side runs first
            e2e = seconds(end_to_end_pass)
            model = seconds(model_only_pass)
        else:
            model = seconds(model_only_pass)
            e2e = seconds(end_to_end_pass)
        return {"end-to-end pass": e2e, "model-only pass": model, "data-only pass": seconds(data_only_pass)}

    with eval_mode(network):
        rounds = timed_loop(iterations, warmup, one_round, f"inference: pass over {num_volumes} volumes")
    e2e_s = sum(r["end-to-end pass"] for r in rounds)
    model_s = sum(r["model-only pass"] for r in rounds)
    data_s = sum(r["data-only pass"] for r in rounds)
    volumes = num_volumes * len(rounds)
    return {
        "num_volumes": num_volumes,
        "passes": len(rounds),
        "batch_size": loader.batch_size,
        "loader": type(loader).__name__,
        "num_workers": loader.num_workers,
        "slices_per_volume": slices,
        "chunk_size": parser.get_parsed_content("chunk_size"),
        "e2e_vol_s": volumes / e2e_s,
        "model_vol_s": volumes / model_s,
        "ratio": ratio(volumes / e2e_s, volumes / model_s),
        "data_mean_s": data_s / volumes,
        "e2e_mean_s": e2e_s / volumes,
        "model_mean_s": model_s / volumes,
    }
