# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Multi-process training and evaluation with ``torchrun``: what ``configs/multi_gpu_train.json`` and
``configs/multi_gpu_evaluate.json`` call.

``torchrun --nproc_per_node=<n> -m monai.bundle run ...`` starts one process per device and sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. With CUDA, each process
uses the GPU ``cuda:<LOCAL_RANK>`` and the processes talk through NCCL; without CUDA they run on the
CPU and talk through Gloo. The same configs serve both.

What runs where:

- every rank: data loading (its share of the cases, through ``monai.data.DistributedSampler``), the
  forward and backward passes of the network wrapped in ``DistributedDataParallel`` (gradients are
  averaged), validation of its share of the cases with rank 0's BatchNorm statistics
  (:class:`BroadcastBuffers`; MONAI's and ignite's metrics gather or reduce their values over all
  ranks, so every rank computes the metrics of the whole split), the learning-rate schedule;
- rank 0 only: the handlers whose types are listed in the configs' ``rank0_only_handlers`` (log lines,
  checkpoints, promotion of the best model, MLflow, overlays, metrics file; see
  :func:`handlers_for_rank`), and the predictions file (``bundle.result_writers.PredictionsWriter``, attached
  on every rank, writes every rank's rows on rank 0 through :func:`gather_in_order`).

Functions that need the process group raise ``RuntimeError`` when it is not initialised, so a
multi-process config started without ``torchrun`` fails with a message that says so.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.utils import look_up_option
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "BACKENDS",
    "TORCHRUN_VARIABLES",
    "BroadcastBuffers",
    "broadcast_object",
    "default_backend",
    "destroy_process_group",
    "device",
    "gather_in_order",
    "handlers_for_rank",
    "init_process_group",
    "is_rank0",
    "local_rank",
    "quiet_other_ranks",
    "rank",
    "world_size",
    "wrap_ddp",
]

logger = logging.getLogger(__name__)

#: backends this bundle supports: NCCL for CUDA devices, Gloo for the CPU
BACKENDS = ("nccl", "gloo")
#: environment variables ``torchrun`` sets for every process
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

T = TypeVar("T")


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def _require_initialized(what: str) -> None:
    if not _initialized():
        raise RuntimeError(f"{what} needs the process group: call bundle.distributed.init_process_group() first")


def default_backend() -> str:
    """``"nccl"`` when CUDA is available, else ``"gloo"``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK`` set by ``torchrun``; 0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank() -> int:
    """This process's global rank (0 when no process group is initialised)."""
    return dist.get_rank() if _initialized() else 0


def world_size() -> int:
    """The number of processes (1 when no process group is initialised)."""
    return dist.get_world_size() if _initialized() else 1


def is_rank0() -> bool:
    """True on rank 0 and in a single process."""
    return rank() == 0


def device() -> torch.device:
    """This process's device: ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def init_process_group(backend: str | None = None, timeout_minutes: float = 30.0) -> None:
    """Join the process group of the processes ``torchrun`` started (``env://``); does nothing if joined.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; None: :func:`default_backend` (NCCL with CUDA, Gloo without).
        timeout_minutes: how long a collective operation waits for the other ranks before failing.

    Raises:
        RuntimeError: not started by ``torchrun`` (its environment variables are missing), or NCCL asked
            for with fewer CUDA devices than ``LOCAL_RANK`` needs.
        ValueError: an unknown backend.
    """
    if _initialized():
        return
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed support")
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"multi-process configs must be started with torchrun (environment variables {', '.join(missing)} "
            "are not set), e.g. torchrun --nproc_per_node=2 -m monai.bundle run --config_file ..."
        )
    backend = look_up_option(backend or default_backend(), BACKENDS)
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        count = torch.cuda.device_count()
        if local_rank() >= count:
            raise RuntimeError(
                f"LOCAL_RANK {local_rank()} needs cuda:{local_rank()}, but {count} CUDA device(s) are visible: "
                "start at most one process per GPU (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank())
        kwargs["device_id"] = torch.device("cuda", local_rank())
    dist.init_process_group(
        backend=backend, init_method="env://", timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs
    )
    logger.info(f"process group joined: rank {rank()} of {world_size()}, backend {backend}, device {device()}")


def destroy_process_group() -> None:
    """Leave the process group (after a barrier, so no rank leaves while another still works); safe to repeat."""
    if _initialized():
        dist.barrier()
        dist.destroy_process_group()


def quiet_other_ranks(level: int = logging.WARNING) -> None:
    """On ranks other than 0, raise the root logger's level to ``level``: their info lines would repeat rank 0's."""
    if not is_rank0():
        logging.getLogger().setLevel(level)


def broadcast_object(value: T, src: int = 0) -> T:
    """Rank ``src``'s ``value`` on every rank (e.g. the run's time stamp); ``value`` itself in a single process.

    Every rank must call it at the same point (it is a collective operation).
    """
    if not _initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def wrap_ddp(
    network: torch.nn.Module, device: torch.device | str, find_unused_parameters: bool = False
) -> DistributedDataParallel:
    """``network`` (on ``device``) in ``DistributedDataParallel``: one device per process on CUDA, none on the CPU.

    The wrapper shares the network's parameters: optimizers, checkpoints and evaluators keep using the
    plain network (checkpoints then hold its state dict without the ``module.`` prefix).

    Args:
        network: the model, on ``device``.
        device: this process's device (:func:`device`).
        find_unused_parameters: let DDP tolerate parameters that get no gradient in an iteration
            (slower; every network of this bundle uses all its parameters).
    """
    _require_initialized("wrap_ddp")
    device = torch.device(device)
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(network, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def handlers_for_rank(handlers: Iterable[Any] | None, rank0_only: Sequence[type] = ()) -> list[Any]:
    """The handlers this process attaches: all of them on rank 0; elsewhere, those not of a ``rank0_only`` type.

    Disabled handlers (``None`` in a list the config parser built) are left out everywhere. A handler
    that takes part in collective operations (metrics, ``ValidationHandler``, the learning-rate
    schedule, checkpoint loading) must not be listed in ``rank0_only``.

    Args:
        handlers: instantiated handlers (e.g. ``@train#handlers``).
        rank0_only: handler classes that only rank 0 attaches (their subclasses too).
    """
    present = [h for h in (handlers or []) if h is not None]
    if is_rank0():
        return present
    rank0_types = tuple(rank0_only)
    return [h for h in present if not isinstance(h, rank0_types)]


class BroadcastBuffers:
    """When the engine starts, copy rank 0's buffers of ``network`` (BatchNorm running statistics) to every rank.

    ``DistributedDataParallel`` keeps the parameters equal on all ranks, but each rank updates its
    running statistics with its own last training batch. Attached to the validation evaluator, this
    makes every rank validate with rank 0's network, the one its checkpoints save. Attach it on every
    rank (collective operation); in a single process it does nothing.

    Args:
        network: the plain network (not the ``DistributedDataParallel`` wrapper).
        src: the rank whose buffers are copied.
    """

    def __init__(self, network: torch.nn.Module, src: int = 0) -> None:
        self.network = network
        self.src = src

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        if world_size() > 1:
            for buffer in self.network.buffers():
                dist.broadcast(buffer, src=self.src)


def gather_in_order(items: Sequence[T], expected: int | None = None) -> list[T] | None:
    """Every rank's per-case ``items`` on rank 0, in the order of the dataset; None on the other ranks.

    With ``monai.data.DistributedSampler(shuffle=False)`` rank ``r`` of ``W`` processes holds cases
    ``r, r + W, r + 2W, ...``, so the gathered lists are interleaved back. Use ``even_divisible=False`` for
    the sampler, or cases padded onto the last ranks would come twice. Every rank must call it at the same
    point (collective operation). In a single process: ``items`` as a list.

    Args:
        items: this rank's items, in the order it processed its cases.
        expected: the number of cases of the whole dataset; a warning names the mismatch when the gathered
            count differs. None: not checked.
    """
    if world_size() == 1:
        return list(items)
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, list(items))
    if not is_rank0():
        return None
    longest = max(len(part) for part in gathered)
    ordered = [part[i] for i in range(longest) for part in gathered if i < len(part)]
    if expected is not None and expected != len(ordered):
        logger.warning(
            f"{len(ordered)} items gathered for {expected} cases: "
            "use DistributedSampler(even_divisible=False, shuffle=False) for evaluation"
        )
    return ordered
