# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""ICMIL: iteratively coupled training of the instance embedder and the bag classifier of attention MIL.

After Wang et al., "Iteratively Coupled Multiple Instance Learning from Instance to Bag Classifier for Whole
Slide Image Classification" (MICCAI 2023). MIL on large images is usually trained in two disconnected stages:
a fixed instance embedder, then a bag classifier on its embeddings. ICMIL couples them and iterates. For a
:class:`networks.nets.AttentionMIL` (embedder: backbone + embedding layer; bag classifier: attention pooling +
linear layer), :class:`ICMIL` runs the phases

- round 0: ``embed`` (every training and validation bag through the current embedder, cached) ->
  ``classifier`` (the bag classifier trained on the cached embeddings; the epoch with the best validation
  AUROC is kept);
- round r >= 1: ``embedder`` (the bag classifier is frozen and labels instances: a frozen copy of the network,
  the *teacher*, gives every instance of a training bag the class probabilities of the bag classifier applied
  to that instance alone, sharpened by ``temperature``; the embedder, the *student*, is fine-tuned so that the
  frozen bag classifier applied to its embeddings matches them: KL divergence per instance, optionally weighted
  by the teacher's attention weight relative to the bag's largest, "confidence") -> ``embed`` -> ``classifier``.

So ``rounds = 1`` gives the validation AUROC before (round 0) and after one coupling round. Each phase is one
MLflow run nested under the ICMIL run (with ``tracking_uri``); after each phase the network, the cached
embeddings and ``icmil_state.json`` are saved in ``output_dir``, so that a run started again with the same
``output_dir`` resumes after the last finished phase; the network at the end of each round is also kept as
``model_r<round>.pt`` (``model_r0.pt``: before any coupling), to evaluate before and after on the test split.

Choices where the description is silent (documented so): the teacher's targets are computed on the same
(augmented) training bags as the student's inputs, and sharpened (``temperature`` < 1), so that the loss is
not zero at the start of a phase; the bag classifier continues from the previous round (warm start).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bundle import stats
from bundle.command_line import check_command_line

__all__ = ["ICMIL", "ICMIL_PHASES", "cached_bags", "load_initial_weights", "pad_embeddings"]

logger = logging.getLogger(__name__)

#: the phases of a round, in order (round 0 has no ``embedder`` phase)
ICMIL_PHASES = ("embedder", "embed", "classifier")
STATE_FILE = "icmil_state.json"


def pad_embeddings(bags: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bags of instance embeddings ``[N_i, D]`` as ``(h [B, N_max, D], mask [B, N_max])`` (padding 0/False)."""
    n_max = max(int(b.shape[0]) for b in bags)
    h = torch.zeros(len(bags), n_max, int(bags[0].shape[1]), dtype=bags[0].dtype)
    mask = torch.zeros(len(bags), n_max, dtype=torch.bool)
    for i, bag in enumerate(bags):
        h[i, : bag.shape[0]] = bag
        mask[i, : bag.shape[0]] = True
    return h, mask


def load_initial_weights(
    network: torch.nn.Module, path: str | os.PathLike | None, device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """``network`` with the weights of checkpoint ``path`` loaded strictly (e.g. a trained attention MIL model);
    ``None`` leaves it as configured (``pretrained_weights`` or random).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the checkpoint does not fit the network (the message names the file).
    """
    if path is None:
        return network
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"icmil_init_ckpt: no checkpoint at {path}")
    state = torch.load(path, map_location=device, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: not a checkpoint of this network ({type(network).__name__}): {e}") from None
    logger.info(f"ICMIL: starting from the weights of {path}")
    return network


@torch.no_grad()
def cached_bags(network: torch.nn.Module, loader: Iterable, prepare_batch: Callable, device: torch.device) -> dict:
    """Every bag of ``loader`` through ``network.instance_embeddings`` (eval mode).

    Returns:
        ``{"embeddings": [N_i, D] float32 per bag (real instances only, on the CPU), "labels": int64 [B_total]}``.
    """
    was_training = network.training
    network.eval()
    embeddings: list[torch.Tensor] = []
    labels: list[int] = []
    try:
        for batch in loader:
            x, label, _, extra = prepare_batch(batch, device)
            mask = extra.get("mask")
            h = network.instance_embeddings(x, mask).float().cpu()
            real = torch.ones(h.shape[:2], dtype=torch.bool) if mask is None else mask.cpu()
            embeddings.extend(h[i][real[i]] for i in range(h.shape[0]))
            labels.extend(int(v) for v in torch.as_tensor(label).reshape(-1).tolist())
    finally:
        network.train(was_training)
    return {"embeddings": embeddings, "labels": torch.tensor(labels, dtype=torch.int64)}


class ICMIL:
    """The ICMIL phases over a bundle's attention MIL network (see the module docstring).

    Args:
        network: a :class:`networks.nets.AttentionMIL` (``instance_embeddings``, ``attention``, ``forward_head``).
        train_loader: the training bags as training sees them (random instances, augmentation), for the
            ``embedder`` phase.
        embed_train_loader: the training bags with the evaluation preprocessing (all instances), for ``embed``.
        val_loader: the validation bags with the evaluation preprocessing.
        prepare_batch: ``(batch, device) -> (x, label, args, {"mask": mask})``
            (:class:`bundle.prepare_batch.PrepareBagBatch`).
        device: the training device.
        output_dir: folder of the checkpoints, cached embeddings and state (resumes from it).
        rounds: coupling rounds after round 0, ``>= 0``. Defaults to 1.
        classifier_epochs: epochs of each ``classifier`` phase. Defaults to 20.
        classifier_lr: its AdamW learning rate. Defaults to 1e-3.
        classifier_batch_size: bags per step of the ``classifier`` phase. Defaults to 8.
        embedder_epochs: epochs of each ``embedder`` phase. Defaults to 2.
        embedder_lr: its AdamW learning rate. Defaults to 2e-4.
        temperature: sharpening of the teacher's instance probabilities (``softmax(logits / temperature)``),
            in ``(0, 1]``. Defaults to 0.5.
        confidence_weighted: weight each instance's KL term by the teacher's attention weight divided by the
            bag's largest. Defaults to True.
        class_weights: optional class weights of the ``classifier`` phase's cross-entropy (``[num_classes]``).
        seed: seed of the classifier phase's bag order. Defaults to 0.
        tracking_uri: MLflow tracking URI (one run, a nested run per phase); None: no tracking.
        experiment_name: the MLflow experiment. Defaults to ``"icmil"``.
        run_name: name of the MLflow run. Defaults to the output folder's name.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        train_loader: Iterable,
        embed_train_loader: Iterable,
        val_loader: Iterable,
        prepare_batch: Callable,
        device: torch.device | str,
        output_dir: str | os.PathLike,
        rounds: int = 1,
        classifier_epochs: int = 20,
        classifier_lr: float = 1e-3,
        classifier_batch_size: int = 8,
        embedder_epochs: int = 2,
        embedder_lr: float = 2e-4,
        temperature: float = 0.5,
        confidence_weighted: bool = True,
        class_weights: torch.Tensor | None = None,
        seed: int = 0,
        tracking_uri: str | None = None,
        experiment_name: str = "icmil",
        run_name: str | None = None,
    ) -> None:
        missing = [m for m in ("instance_embeddings", "attention", "forward_head") if not hasattr(network, m)]
        if missing:
            raise ValueError(
                f"ICMIL needs an attention MIL network (networks.AttentionMIL: configs/methods/abmil*.json), "
                f"got {type(network).__name__} without {missing}"
            )
        for name, value, minimum in (
            ("rounds", rounds, 0),
            ("classifier_epochs", classifier_epochs, 1),
            ("classifier_batch_size", classifier_batch_size, 1),
            ("embedder_epochs", embedder_epochs, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not 0.0 < float(temperature) <= 1.0:
            raise ValueError(f"temperature must be in (0, 1], got {temperature!r}")
        self.network = network
        self.train_loader = train_loader
        self.embed_train_loader = embed_train_loader
        self.val_loader = val_loader
        self.prepare_batch = prepare_batch
        self.device = torch.device(device)
        self.output_dir = Path(output_dir)
        self.rounds = rounds
        self.classifier_epochs = classifier_epochs
        self.classifier_lr = float(classifier_lr)
        self.classifier_batch_size = classifier_batch_size
        self.embedder_epochs = embedder_epochs
        self.embedder_lr = float(embedder_lr)
        self.temperature = float(temperature)
        self.confidence_weighted = bool(confidence_weighted)
        self.class_weights = class_weights
        self.seed = int(seed)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name or self.output_dir.name
        self.state: dict[str, Any] = {"completed": [], "metrics": {}}
        self._client: Any = None
        self._experiment_id: str | None = None
        self._run_id: str | None = None
        self._phase_run_id: str | None = None

    # ------------------------------------------------------------------------------------------- bookkeeping

    def phases(self) -> list[str]:
        """Every phase of the run in order, as ``"r<round>_<phase>"``."""
        names = ["r0_embed", "r0_classifier"]
        for r in range(1, self.rounds + 1):
            names += [f"r{r}_{phase}" for phase in ICMIL_PHASES]
        return names

    def _head_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.network.attention.parameters()) + list(self.network.classifier.parameters())

    def _embedder_parameters(self) -> list[torch.nn.Parameter]:
        head = {id(p) for p in self._head_parameters()}
        return [p for p in self.network.parameters() if id(p) not in head]

    def _save(self, phase: str, metrics: dict[str, float]) -> None:
        self.state["completed"].append(phase)
        self.state["metrics"][phase] = metrics
        torch.save(self.network.state_dict(), self.output_dir / "model.pt")
        if phase.endswith("_classifier"):  # a round's model, kept when later rounds change model.pt
            torch.save(self.network.state_dict(), self.output_dir / f"model_{phase.split('_')[0]}.pt")
        tmp = self.output_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.output_dir / STATE_FILE)

    def _resume(self) -> None:
        path = self.output_dir / STATE_FILE
        if not path.is_file():
            return
        self.state = json.loads(path.read_text(encoding="utf-8"))
        done = self.state.get("completed", [])
        unknown = [p for p in done if p not in self.phases()]
        if unknown or done != self.phases()[: len(done)]:
            raise ValueError(f"{path}: its finished phases {done} are not a start of this run's {self.phases()}")
        self.network.load_state_dict(torch.load(self.output_dir / "model.pt", map_location=self.device))
        logger.info(f"ICMIL: resuming {self.output_dir} after {done[-1] if done else 'nothing'}")

    # ------------------------------------------------------------------------------------------------ phases

    def embed(self, round_index: int) -> dict[str, float]:
        """Phase ``embed``: cache the embeddings of the training and validation bags."""
        cache = {
            "train": cached_bags(self.network, self.embed_train_loader, self.prepare_batch, self.device),
            "val": cached_bags(self.network, self.val_loader, self.prepare_batch, self.device),
        }
        torch.save(cache, self.output_dir / f"embeddings_r{round_index}.pt")
        return {"train_bags": float(len(cache["train"]["labels"])), "val_bags": float(len(cache["val"]["labels"]))}

    def _bag_probabilities(self, bags: Sequence[torch.Tensor]) -> torch.Tensor:
        head_device = next(self.network.classifier.parameters()).device
        probs = []
        with torch.no_grad():
            for start in range(0, len(bags), self.classifier_batch_size):
                h, mask = pad_embeddings(bags[start : start + self.classifier_batch_size])
                z = self.network.attention(h.to(head_device), mask.to(head_device))
                probs.append(torch.softmax(self.network.forward_head(z), dim=1).cpu())
        return torch.cat(probs)

    def _auroc(self, bags: Sequence[torch.Tensor], labels: torch.Tensor) -> float:
        probs = self._bag_probabilities(bags)
        scores = probs[:, 1] if probs.shape[1] == 2 else probs
        return stats.auroc(labels.tolist(), scores.numpy())

    def classifier(self, round_index: int) -> dict[str, float]:
        """Phase ``classifier``: the bag classifier trained on the cached embeddings; the best validation epoch kept."""
        cache = torch.load(self.output_dir / f"embeddings_r{round_index}.pt")
        train, val = cache["train"], cache["val"]
        self.network.eval()  # the embedder is not used; the head has no batch norm or dropout
        parameters = self._head_parameters()
        optimizer = torch.optim.AdamW(parameters, lr=self.classifier_lr)
        weight = None if self.class_weights is None else torch.as_tensor(self.class_weights).float()
        device = next(self.network.classifier.parameters()).device
        rng = np.random.default_rng(self.seed + round_index)
        best, best_state, losses = -1.0, None, []
        for epoch in range(self.classifier_epochs):
            order = rng.permutation(len(train["labels"]))
            total = 0.0
            for start in range(0, len(order), self.classifier_batch_size):
                chosen = order[start : start + self.classifier_batch_size]
                h, mask = pad_embeddings([train["embeddings"][i] for i in chosen])
                z = self.network.attention(h.to(device), mask.to(device))
                logits = self.network.forward_head(z)
                target = train["labels"][chosen].to(device)
                loss = F.cross_entropy(logits, target, weight=None if weight is None else weight.to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(chosen)
            losses.append(total / len(order))
            val_auroc = self._auroc(val["embeddings"], val["labels"])
            self._log({"classifier_loss": losses[-1], "val_auroc": val_auroc}, step=epoch + 1)
            if val_auroc > best:
                best, best_state = val_auroc, copy.deepcopy([p.detach().clone() for p in parameters])
        with torch.no_grad():
            for p, kept in zip(parameters, best_state or []):
                p.copy_(kept)
        logger.info(f"ICMIL round {round_index} classifier: best validation AUROC {best:.3f}")
        return {"val_auroc": best, "final_loss": losses[-1]}

    def embedder(self, round_index: int) -> dict[str, float]:
        """Phase ``embedder``: the embedder fine-tuned towards the frozen bag classifier's instance labels."""
        teacher = copy.deepcopy(self.network).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        head = self._head_parameters()
        for p in head:
            p.requires_grad_(False)
        optimizer = torch.optim.AdamW(self._embedder_parameters(), lr=self.embedder_lr)
        self.network.train()
        self.network.attention.eval()
        step, mean_loss = 0, 0.0
        try:
            for epoch in range(self.embedder_epochs):
                total, count = 0.0, 0
                for batch in self.train_loader:
                    x, _, _, extra = self.prepare_batch(batch, self.device)
                    mask = extra.get("mask")
                    real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
                    with torch.no_grad():
                        h_t = teacher.instance_embeddings(x, mask)
                        target = torch.softmax(teacher.forward_head(h_t) / self.temperature, dim=-1)
                        if self.confidence_weighted:
                            attention = teacher.attention.forward_with_weights(h_t, mask)[1]
                            top = attention.max(dim=1, keepdim=True).values.clamp(min=1e-12)
                            weights = attention / top
                        else:
                            weights = real.to(target.dtype)
                        weights = torch.where(real, weights, torch.zeros_like(weights))
                    log_q = F.log_softmax(self.network.forward_head(self.network.instance_embeddings(x, mask)), dim=-1)
                    kl = (target * (torch.log(target.clamp(min=1e-12)) - log_q)).sum(dim=-1)  # [B, N]
                    loss = (kl * weights).sum() / weights.sum().clamp(min=1e-12)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    step += 1
                    total += float(loss.detach())
                    count += 1
                mean_loss = total / max(count, 1)
                self._log({"embedder_kl": mean_loss}, step=epoch + 1)
        finally:
            for p in head:
                p.requires_grad_(True)
            self.network.eval()
        return {"embedder_kl": mean_loss, "steps": float(step)}

    # --------------------------------------------------------------------------------------------- tracking
    # An explicit MlflowClient, not mlflow's module-level functions: those would change the process-wide tracking
    # URI and active run, which the bundle's own MLflow handlers (and anything else in the process) rely on.

    def _log(self, metrics: dict[str, float], step: int | None = None) -> None:
        run_id = self._phase_run_id or self._run_id
        if self._client is None or run_id is None:
            return
        for key, value in metrics.items():
            self._client.log_metric(run_id, key, float(value), step=step or 0)

    def _start_tracking(self) -> None:
        if self.tracking_uri is None:
            return
        from mlflow import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment = self._client.get_experiment_by_name(self.experiment_name)
        self._experiment_id = (
            experiment.experiment_id if experiment else self._client.create_experiment(self.experiment_name)
        )
        self._run_id = self._client.create_run(self._experiment_id, run_name=self.run_name).info.run_id

    def _start_phase(self, name: str) -> None:
        if self._client is not None:
            tags = {"mlflow.parentRunId": self._run_id}
            self._phase_run_id = self._client.create_run(self._experiment_id, run_name=name, tags=tags).info.run_id

    def _end_phase(self, status: str) -> None:
        if self._client is not None and self._phase_run_id is not None:
            self._client.set_terminated(self._phase_run_id, status=status)
        self._phase_run_id = None

    def run(self) -> dict[str, Any]:
        """Run (or resume) every phase; returns the state: finished phases and their metrics.

        The summary ``val_auroc_before`` (round 0) and ``val_auroc_after`` (the last round) is logged and kept
        in the state.
        """
        check_command_line()  # ICMIL has no pre-flight: a --key null is reported here, before any work
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.network.to(self.device)
        self._resume()
        self._start_tracking()
        status = "FAILED"
        try:
            for name in self.phases():
                if name in self.state["completed"]:
                    continue
                round_index, phase = int(name[1 : name.index("_")]), name[name.index("_") + 1 :]
                logger.info(f"ICMIL: phase {name} ...")
                self._start_phase(name)
                try:
                    metrics = getattr(self, phase)(round_index)
                except BaseException:
                    self._end_phase("FAILED")
                    raise
                self._end_phase("FINISHED")
                self._save(name, metrics)
            metrics = self.state["metrics"]
            self.state["val_auroc_before"] = metrics["r0_classifier"]["val_auroc"]
            self.state["val_auroc_after"] = metrics[f"r{self.rounds}_classifier"]["val_auroc"]
            self._save_summary()
            self._log({k: self.state[k] for k in ("val_auroc_before", "val_auroc_after")})
            status = "FINISHED"
        finally:
            if self._client is not None and self._run_id is not None:
                self._client.set_terminated(self._run_id, status=status)
        logger.info(
            f"ICMIL: validation AUROC {self.state['val_auroc_before']:.3f} after round 0, "
            f"{self.state['val_auroc_after']:.3f} after round {self.rounds}; model: {self.output_dir / 'model.pt'}"
        )
        return self.state

    def _save_summary(self) -> None:
        path = self.output_dir / STATE_FILE
        path.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")
