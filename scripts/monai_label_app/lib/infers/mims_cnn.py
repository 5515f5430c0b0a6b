# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MONAI Label infer task serving the MIMS-CNN bundle: class, probabilities and key slices of a volume.

:class:`MIMSCNNInfer` is MONAI Label's own :class:`~monailabel.tasks.infer.bundle.BundleInferTask`
with what our bundle needs on top:

- the inference config is ``common.json`` + ``inference.json`` (+ an optional method overlay) merged in
  order, where the stock task reads ``inference.json`` alone (which has no ``preprocessing`` or
  ``network_def`` here);
- the task is a classification (``InferType.CLASSIFICATION``): no label file, no post-restore (MONAI
  Label's ``Restored`` would try to resample the class vector onto the image); weights load strictly;
- after the bundle's ``inferer`` (:class:`bundle.inferers.ChunkedBagInferer`) it computes the key slices
  of the decided class (:func:`bundle.localization.slice_scores`, :func:`bundle.localization.key_slices`)
  and reports them as the ORIGINAL volume's slice numbers along ``slice_axis``, through the
  ``slice_indices`` that ``transforms.CentralSlicesd`` records;
- the decided class follows the bundle's decision threshold (``threshold`` of the configs:
  ``models/model.decision.json`` next to ``models/model.pt`` with ``decision_threshold: "auto"``, see
  :mod:`bundle.decision`; argmax when there is none);
- a request's ``num_key_slices`` is checked before any work (an integer >= 1,
  :func:`bundle.serving.positive_int_param`); a bad value is answered with HTTP 422 and a message naming it;
- the result JSON keeps MONAI Label's classification ``prediction`` list and adds ``class_index``,
  ``class_name``, ``threshold`` (None: argmax), ``probabilities`` (per class name), ``key_slices``,
  ``slice_indices`` (the original slice numbers the network saw, in bag order, as the bundle's predictions
  file names them) and ``slice_axis``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from monai.bundle import ConfigParser
from fastapi import HTTPException
from monai.data import MetaTensor
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.utils.others.generic import name_to_device

__all__ = ["DEFAULT_CONFIGS", "MIMSCNNInfer", "bundle_on_path", "parse_config_files"]

logger = logging.getLogger(__name__)

#: the bundle's inference configs (under ``<bundle>/configs``), merged in this order
DEFAULT_CONFIGS = ("common.json", "inference.json")


def parse_config_files(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Config file names from a ``--conf configs`` value: comma-separated, relative to ``<bundle>/configs``.

    ``None`` or an empty string gives :data:`DEFAULT_CONFIGS`; e.g.
    ``"common.json,inference.json,methods/mims_max.json"`` serves a bundle trained with the ``mims_max`` overlay.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_CONFIGS
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError(f"configs must name at least one config file, got {value!r}")
    return tuple(names)


@contextlib.contextmanager
def bundle_on_path(path: str) -> Iterator[None]:
    """Put the bundle folder first on ``sys.path`` for the block, so that its own ``networks``,
    ``transforms`` and ``bundle`` packages are the ones imported (as the stock task does around each step)."""
    sys.path.insert(0, path)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(path)


def _plain(value: Any) -> torch.Tensor:
    return torch.as_tensor(value).as_subclass(torch.Tensor).detach().cpu()


class MIMSCNNInfer(BundleInferTask):
    """Classify one volume with the bundle and report its key slices.

    Args:
        path: the bundle folder: ``configs/`` (``metadata.json`` and ``config_files``), the bundle's code
            (``networks/``, ``transforms/``, ``bundle/``) and ``models/model.pt``.
        conf: the app's ``--conf`` settings (``preload`` is honoured, as by the stock task).
        config_files: inference configs under ``configs/``, merged in order.
        num_key_slices: key slices per volume; None: the config's ``num_key_slices``. A request may ask
            for another number with the parameter ``num_key_slices``.
        kwargs: further arguments of :class:`BundleInferTask`.

    Raises:
        FileNotFoundError: a config file or ``models/model.pt`` is missing (the stock task would only log
            a warning and serve nothing).
        RuntimeError: ``models/model.pt`` does not fit ``network_def`` (loaded strictly when the task is made:
            the stock task loads non-strictly, i.e. would serve a partly random network, and only on the
            first request).
        ValueError: ``class_names`` and ``num_classes`` of the config disagree, or ``num_key_slices`` < 1.
    """

    def __init__(
        self,
        path: str,
        conf: dict[str, str],
        config_files: Sequence[str] = DEFAULT_CONFIGS,
        num_key_slices: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.config_files = tuple(config_files)
        names = ("metadata.json", *self.config_files)
        missing = [c for c in names if not os.path.isfile(os.path.join(path, "configs", c))]
        if missing:
            raise FileNotFoundError(f"bundle {path}: config file(s) not found under configs/: {', '.join(missing)}")
        checkpoint = os.path.join(path, "models", "model.pt")
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(
                f"bundle {path}: no checkpoint {checkpoint} (train the bundle first, or point --conf bundle_path "
                "at a bundle that has one)"
            )
        super().__init__(
            path, conf, type=InferType.CLASSIFICATION, add_post_restore=False, load_strict=True, **kwargs
        )
        with bundle_on_path(self.bundle_path):
            class_names = [str(c) for c in self.bundle_config.get_parsed_content("class_names")]
            num_classes = int(self.bundle_config.get_parsed_content("num_classes"))
            self.slice_axis = int(self.bundle_config.get_parsed_content("slice_axis"))
            configured = int(self.bundle_config.get_parsed_content("num_key_slices"))
            self.threshold = self.bundle_config.get_parsed_content("threshold", default=None)
        if len(class_names) != num_classes:
            raise ValueError(f"class_names {class_names} has {len(class_names)} names for num_classes={num_classes}")
        self.class_names = class_names
        # MONAI Label's classification writer names the classes from {name: index}; keep the config's spelling
        self.labels = {name: index for index, name in enumerate(class_names)}
        self.num_key_slices = configured if num_key_slices is None else int(num_key_slices)
        if self.num_key_slices < 1:
            raise ValueError(f"num_key_slices must be >= 1, got {self.num_key_slices}")
        self.indices_key = "slice_indices"
        if not self._networks:  # not preloaded: load once now, so that a checkpoint that does not fit fails the start
            self._check_checkpoint()

    def _check_checkpoint(self) -> None:
        """Load ``models/model.pt`` strictly into ``network_def`` on the default device (cached for requests).

        Raises:
            RuntimeError: naming the bundle and the configs when the weights do not fit the network.
        """
        try:
            self._get_network(name_to_device(self._config.get("device")), None)
        except RuntimeError as e:
            raise RuntimeError(
                f"bundle {self.bundle_path}: models/model.pt does not fit network_def of "
                f"{', '.join(self.config_files)} (trained with another method overlay or an older network?): {e}"
            ) from e

    def _load_bundle_config(self, path: str, config: str) -> ConfigParser:
        """The merged ``config_files`` (``config``, the stock task's ``inference.json``, is one of them)."""
        parser = ConfigParser()
        parser.read_config([os.path.join(path, "configs", name) for name in self.config_files])
        parser.config.update({self.const.key_bundle_root(): path})
        return parser

    def __call__(self, request: dict[str, Any], callbacks: Any = None) -> Any:
        """MONAI Label's inference on ``request``, after checking the parameters this task reads.

        Raises:
            HTTPException: 422, with a message naming the parameter and the value, when ``num_key_slices`` is not
                an integer >= 1 (MONAI Label would answer 500 for the ``ValueError`` raised later).
        """
        with bundle_on_path(self.bundle_path):
            from bundle.serving import positive_int_param

        request = dict(request)
        try:
            request["num_key_slices"] = positive_int_param(request, "num_key_slices", self.num_key_slices)
        except ValueError as e:
            raise HTTPException(status_code=422, detail=str(e)) from e
        return super().__call__(request, callbacks)

    def info(self) -> dict[str, Any]:
        i = super().info()
        i.update({"class_names": self.class_names, "num_key_slices": self.num_key_slices, "bundle": self.bundle_path})
        return i

    def run_inferer(self, data: dict[str, Any], convert_to_batch: bool = True, device: str = "cuda") -> dict[str, Any]:
        """The bundle's inferer (logits in ``data["pred"]``), then the key slices of the predicted class."""
        data = super().run_inferer(data, convert_to_batch=convert_to_batch, device=device)
        network = self._get_network(device, data)
        data["key_slices"] = self._key_slices(network, data, device)
        return data

    def _key_slices(self, network: torch.nn.Module, data: dict[str, Any], device: str) -> list[dict[str, Any]]:
        """Best first: ``{"slice": original slice number, "score": float}``."""
        top = int(data.get("num_key_slices", self.num_key_slices))
        if top < 1:
            raise ValueError(f"num_key_slices must be >= 1, got {top}")
        with bundle_on_path(self.bundle_path):
            from bundle.localization import key_slices, slice_scores

        bag = _plain(data[self.input_key]).to(device=torch.device(device), dtype=torch.float32)[None]  # [1, N, C, H, W]
        target = self._decided_class(_plain(data[self.key_pred]))
        scores, _ = slice_scores(network, bag, class_index=target)
        indices = data.get(self.indices_key)
        indices = None if indices is None else _plain(indices).reshape(1, -1)
        ranked = key_slices(scores.cpu(), indices, top=top)[0]
        return [{"slice": int(k["slice"]), "score": float(k["score"])} for k in ranked]

    def _decided_class(self, probabilities: torch.Tensor) -> int:
        """The class decided for one volume's probabilities ``[C]`` (:func:`bundle.decision.decided_class`)."""
        with bundle_on_path(self.bundle_path):
            from bundle.decision import decided_class

        return decided_class(probabilities.float().reshape(-1).numpy(), self.threshold)

    def writer(self, data: dict[str, Any], extension: Any = None, dtype: Any = None) -> tuple[None, dict[str, Any]]:
        """MONAI Label's classification result (``prediction``: index, label, score per class) with our fields.

        No label file is written (the first element is None), so ``/infer`` answers with this JSON alone.
        """
        probabilities = _plain(data[self.key_pred]).float().reshape(-1)
        if probabilities.numel() != len(self.class_names):
            raise ValueError(f"{probabilities.numel()} probabilities for {len(self.class_names)} class names")
        if not isinstance(data[self.key_pred], MetaTensor):
            data[self.key_pred] = MetaTensor(probabilities)  # the stock ClassificationWriter logs ``pred.array``
        _, result = super().writer(data, extension, dtype)
        index = self._decided_class(probabilities)
        indices = data.get(self.indices_key)
        result.update(
            {
                "class_index": index,
                "class_name": self.class_names[index],
                "threshold": self.threshold,
                "probabilities": {name: float(p) for name, p in zip(self.class_names, probabilities.tolist())},
                "key_slices": data.get("key_slices", []),
                "slice_indices": [] if indices is None else [int(i) for i in _plain(indices).reshape(-1)],
                "slice_axis": self.slice_axis,
            }
        )
        return None, result
