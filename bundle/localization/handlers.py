# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Ignite handlers that write the localization outputs of the cases an engine sees.

- :class:`LocalizationWriter`: inference handler writing the files of every case and adding the key
  slices to the engine's outputs, so that :class:`bundle.result_writers.PredictionsWriter` writes them.
- :class:`ValidationOverlayLogger`: training-time handler writing the montages of a few fixed
  validation cases every validation epoch and logging them into the MLflow run when one is tracked.

What they write is computed by :mod:`bundle.localization.case_outputs`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from bundle.config import as_bool
from bundle.data.nifti_io import save_nifti
from bundle.mlflow_handlers import MLflowRunUser
from bundle.result_writers import case_name

from .case_outputs import (
    CaseLocalization,
    case_file_stem,
    case_montage,
    case_overlays,
    heatmap_volume,
    instance_score_volume,
    localize_case,
    paint_patches,
    plain_tensor,
    unique_stem,
)
from .grad_input import GradientTimesInput
from .overlay import DEFAULT_COLORMAP, heatmap_to_uint8, overlay_heatmap, save_png

__all__ = ["LocalizationWriter", "ValidationOverlayLogger", "check_class_index", "check_num_key_slices"]

logger = logging.getLogger(__name__)


def _first(value: Any) -> Any:
    """The first element of a tensor or array (None when empty); other values as they are."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.reshape(-1)[0].item() if value.numel() else None
    if isinstance(value, np.ndarray):
        return value.reshape(-1)[0].item() if value.size else None
    return value


def check_num_key_slices(num_key_slices: Any) -> int:
    """``num_key_slices`` when it is an integer >= 1 (the handlers' and the pre-flight's check).

    Raises:
        ValueError: naming ``num_key_slices``, for any other value.
    """
    if isinstance(num_key_slices, bool) or not isinstance(num_key_slices, int) or num_key_slices < 1:
        raise ValueError(f"num_key_slices must be an integer >= 1, got {num_key_slices!r}")
    return num_key_slices


def check_class_index(class_index: Any, name: str = "class_index") -> int | None:
    """``class_index`` when it is None (the predicted class) or a class index >= 0 (the handlers' and the
    pre-flight's check).

    Args:
        class_index: the value.
        name: the setting, for the message (``localization_class_index`` in the configs).

    Raises:
        ValueError: naming ``name``, for any other value.
    """
    bad_class = isinstance(class_index, bool) or not isinstance(class_index, int) or class_index < 0
    if class_index is not None and bad_class:
        raise ValueError(f"{name} must be None (the predicted class) or a class index >= 0, got {class_index!r}")
    return class_index


class LocalizationWriter:
    """Write heatmaps, key-slice overlays and a montage of every case an inference engine sees.

    Attach to the inference evaluator before :class:`bundle.result_writers.PredictionsWriter`: at every
    ``ITERATION_COMPLETED`` (decollated outputs), for each case it computes gradient x input heatmaps
    (:class:`GradientTimesInput`) and slice scores (:func:`slice_scores`) for the predicted class (argmax
    of ``pred``) or ``class_index``, and writes into ``output_dir``:

    - ``<case>_heatmap.nii.gz`` (3-D inputs): float32 ``P*`` in ``[0, 255]`` with the input's spatial shape
      and affine, so it opens as an overlay on the input in 3D Slicer or ITK-SNAP. The bag's heatmaps are
      resized back to the original slice size and put at their original slice indices along the
      original slice axis; slices that were not evaluated are 0. For multi-channel inputs there is one
      heatmap for all channels (gradient x input sums over channels).
    - ``<case>_heatmap.png`` (2-D image inputs such as PNG/JPEG, which have no world coordinates): the
      heatmap as a grey 8-bit image of the input's size.
    - ``<case>_instance_scores.nii.gz`` (3-D inputs): float32, same shape and affine, every voxel of an
      evaluated slice holding that slice's instance score (:func:`instance_score_volume`): the attention
      weight for attention MIL (summing to 1 over the evaluated slices), the score the key slices are
      ranked by for the other networks.
    - bags of patches of a 2-D image (:class:`transforms.GridPatchBagd`): ``<case>_heatmap.png`` with the
      patches' heatmaps painted back onto the full image (:func:`paint_patches`), ``<case>_instance_scores.png``
      (every patch filled with its instance score, e.g. its attention weight, scaled so that the largest is
      255; negative scores 0) and ``<case>_overlay.png`` (the heatmap on the patches as the network saw them,
      background patches black); key patches are ``<case>_patch<idx>.png``, ``idx`` the grid index.
    - ``<case>_slice<idx>.png``: the overlay ``0.6 R + 0.3 P*`` (:func:`overlay_heatmap`) of every key
      slice, ``idx`` its original index, at the network's input size (what the network saw).
    - ``<case>_montage.png``: the overlays of all evaluated slices (:func:`case_montage`).

    ``<case>`` is the file name without suffix (:func:`case_file_stem`); a name seen before in the run gets
    ``_2``, ``_3``, ... appended. It adds ``key_slices`` (original indices, best first),
    ``key_slice_scores`` and ``heatmap_class`` to each output item; list them in PredictionsWriter's
    ``extra_keys`` to have them in the predictions file.

    Args:
        output_dir: folder of the files (created).
        layer: the layer of the heatmaps (a submodule name or ``"input"``); None: :func:`default_layer`.
        num_key_slices: key slices per case, >= 1.
        per_slice: scale each slice's heatmap to ``[0, 255]`` on its own (default: per volume).
        class_index: class to explain; None: each case's predicted class.
        colormap: colour map of the overlays (see :mod:`bundle.localization.overlay`).
        image_key: key of the bags in the batch.
        mask_key: key of the bag masks in the batch.
        indices_key: key of the original slice indices in the batch.
        pred_key: key of the class probabilities in the outputs.

    Raises:
        ValueError: invalid settings; at the start of the run, a layer the network does not have.
        RuntimeError: a case that cannot be localized (the message starts with its file name).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        layer: str | None = None,
        num_key_slices: int = 3,
        per_slice: bool = False,
        class_index: int | None = None,
        colormap: Any = DEFAULT_COLORMAP,
        image_key: str = "image",
        mask_key: str = "mask",
        indices_key: str = "slice_indices",
        pred_key: str = "pred",
    ) -> None:
        check_num_key_slices(num_key_slices)
        check_class_index(class_index)
        self.output_dir = Path(output_dir)
        self.layer = layer
        self.num_key_slices = num_key_slices
        self.per_slice = as_bool(per_slice, "per_slice")
        self.class_index = class_index
        self.colormap = colormap
        self.image_key = image_key
        self.mask_key = mask_key
        self.indices_key = indices_key
        self.pred_key = pred_key
        self.explainer: GradientTimesInput | None = None
        self._stems: set[str] = set()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _start(self, engine: Engine) -> None:
        self.explainer = GradientTimesInput(engine.network, self.layer, self.per_slice)
        self._stems = set()
        logger.info(f"localization: {self.explainer.layer} heatmaps and key slices into {self.output_dir}")

    def __call__(self, engine: Engine) -> None:
        outputs, batches = engine.state.output, engine.state.batch
        if isinstance(outputs, Mapping) or not isinstance(batches, list):
            raise TypeError("LocalizationWriter needs decollated outputs and batches (decollate=True on the engine)")
        if self.explainer is None:
            self._start(engine)
        for item, batch_item in zip(outputs, batches):
            case = case_name(item, batch_item, self.image_key) or f"case {len(self._stems) + 1}"
            try:
                self._write_case(item, batch_item, case)
            except Exception as e:
                raise RuntimeError(f"{case}: localization failed: {e}") from e

    def _unique_stem(self, case: str) -> str:
        base = case_file_stem(case)
        stem = unique_stem(base, self._stems)
        if stem != base:
            logger.warning(f"localization: {case} has the same name as an earlier case, its files are {stem}_*")
        return stem

    def _write_case(self, item: dict, batch_item: Mapping, case: str) -> None:
        image = batch_item[self.image_key]
        class_index = self.class_index
        if class_index is None and item.get(self.pred_key) is not None:
            class_index = int(torch.as_tensor(item[self.pred_key]).reshape(-1).argmax())
        result = localize_case(
            self.explainer,
            plain_tensor(image),
            plain_tensor(batch_item.get(self.mask_key)),
            plain_tensor(batch_item.get(self.indices_key)),
            class_index,
            self.num_key_slices,
        )
        stem = self._unique_stem(case)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        meta = getattr(image, "meta", None) or {}
        patches = meta.get("patch_grid") is not None
        if patches:
            self._write_patch_images(meta, result, stem, case)
        else:
            self._write_heatmap(image, result, stem, case)
        overlays = case_overlays(result, self.colormap)
        instance = "patch" if patches else "slice"
        for key in result.key_slices:
            overlay = overlays[result.overlay_index(key["position"])]
            save_png(self.output_dir / f"{stem}_{instance}{key['slice']}.png", overlay)
        save_png(self.output_dir / f"{stem}_montage.png", case_montage(result, colormap=self.colormap))
        item["key_slices"] = [k["slice"] for k in result.key_slices]
        item["key_slice_scores"] = [k["score"] for k in result.key_slices]
        item["heatmap_class"] = result.target

    def _write_patch_images(self, meta: Mapping, result: CaseLocalization, stem: str, case: str) -> None:
        """A bag of patches of a 2-D image: heatmap, instance scores and overlay painted onto the full image."""
        shape = meta.get("spatial_shape")
        if shape is None:
            logger.warning(f"{case}: no spatial_shape in the image's meta data, full-image heatmaps not written")
            return
        shape = [int(s) for s in np.asarray(plain_tensor(shape)).reshape(-1)]
        heat = paint_patches(result.heatmaps, result.slice_indices, meta, shape)
        save_png(self.output_dir / f"{stem}_heatmap.png", heatmap_to_uint8(heat))
        scores = np.asarray(result.scores, dtype=np.float32)
        top = float(scores.max(initial=0.0))
        scaled = np.clip(scores, 0.0, None) * (255.0 / top) if top > 0 else np.zeros_like(scores)
        save_png(
            self.output_dir / f"{stem}_instance_scores.png",
            heatmap_to_uint8(paint_patches(scaled, result.slice_indices, meta, shape)),
        )
        background = paint_patches(result.slices, result.slice_indices, meta, shape)
        save_png(self.output_dir / f"{stem}_overlay.png", overlay_heatmap(background, heat, self.colormap))

    def _write_heatmap(self, image: Any, result: CaseLocalization, stem: str, case: str) -> None:
        meta = getattr(image, "meta", None) or {}
        shape = meta.get("spatial_shape")
        if shape is None:
            logger.warning(f"{case}: no spatial_shape in the image's meta data, heatmap volume not written")
            return
        shape = [int(s) for s in np.asarray(plain_tensor(shape)).reshape(-1)]
        axis = int(_first(meta.get("slice_axis", 2)))
        volume = heatmap_volume(result.heatmaps, result.slice_indices, shape, axis)
        if len(shape) == 2:
            save_png(self.output_dir / f"{stem}_heatmap.png", heatmap_to_uint8(volume))
            return
        affine = np.asarray(plain_tensor(image.affine), dtype=np.float64)
        original = meta.get("original_affine")
        if original is not None and not np.allclose(np.asarray(plain_tensor(original), dtype=np.float64), affine):
            logger.warning(
                f"{case}: the affine changed during preprocessing (resampled or reoriented before ToBagd?); "
                "the heatmap volume uses the preprocessed affine and the original spatial shape"
            )
        save_nifti(volume, self.output_dir / f"{stem}_heatmap.nii.gz", affine=affine)
        scores = instance_score_volume(result.scores, result.slice_indices, shape, axis)
        save_nifti(scores, self.output_dir / f"{stem}_instance_scores.nii.gz", affine=affine)


class ValidationOverlayLogger(MLflowRunUser):
    """Every validation epoch, montages of a few fixed validation cases, logged into MLflow when tracked.

    Attach to the validation evaluator (``validate#handlers``). During the epoch it keeps the first
    ``num_cases`` cases with a non-zero label in loader order (the validation loader does not shuffle,
    so they are the same cases every epoch); label-0 cases fill up when there are fewer positives. At
    ``EPOCH_COMPLETED`` it computes their heatmaps and key slices (:func:`localize_case`; by default for
    each case's true label, so a positive case shows where the network finds the lesion class) and
    writes ``<output_dir>/epoch_<nnn>/<case>_montage.png`` (``nnn``: the trainer's epoch, zero-padded to
    3 digits). With ``--tracking mlflow`` the files are logged into the run of the evaluator's
    ``MLFlowHandler`` (the trainer's run, which it shares) under ``overlays/epoch_<nnn>/``; the configs hand
    that handler over with :func:`bundle.mlflow_handlers.share_mlflow_run` (see
    :class:`~bundle.mlflow_handlers.MLflowRunUser`). Without tracking the files are only written.

    Training is not changed: no random number is drawn, the network's mode is restored, parameter
    gradients are untouched, and BatchNorm statistics are not updated (eval mode). It costs one forward
    and backward pass of ``num_cases`` bags per validation epoch. Only rank 0 writes in distributed runs.

    Args:
        output_dir: folder of the ``epoch_<nnn>`` folders (e.g. ``<run_dir>/overlays``).
        num_cases: how many validation cases, >= 1.
        layer: the layer of the heatmaps; None: :func:`default_layer`.
        num_key_slices: key slices framed in each montage, >= 1.
        per_slice: scale each slice's heatmap to ``[0, 255]`` on its own.
        class_index: class to explain for every case; None: the case's label.
        colormap: colour map of the overlays.
        artifact_dir: MLflow artifact folder of the epoch folders.
        image_key, mask_key, indices_key, label_key: keys in the batch.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        num_cases: int = 2,
        layer: str | None = None,
        num_key_slices: int = 3,
        per_slice: bool = False,
        class_index: int | None = None,
        colormap: Any = DEFAULT_COLORMAP,
        artifact_dir: str = "overlays",
        image_key: str = "image",
        mask_key: str = "mask",
        indices_key: str = "slice_indices",
        label_key: str = "label",
    ) -> None:
        if isinstance(num_cases, bool) or not isinstance(num_cases, int) or num_cases < 1:
            raise ValueError(f"num_cases must be an integer >= 1, got {num_cases!r}")
        check_num_key_slices(num_key_slices)
        check_class_index(class_index)
        self.output_dir = Path(output_dir)
        self.num_cases = num_cases
        self.layer = layer
        self.num_key_slices = num_key_slices
        self.per_slice = as_bool(per_slice, "per_slice")
        self.class_index = class_index
        self.colormap = colormap
        self.artifact_dir = artifact_dir
        self.image_key = image_key
        self.mask_key = mask_key
        self.indices_key = indices_key
        self.label_key = label_key
        self._positives: list[dict] = []
        self._others: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _reset(self, engine: Engine | None = None) -> None:
        self._positives, self._others = [], []

    def _collect(self, engine: Engine) -> None:
        if len(self._positives) >= self.num_cases:
            return
        batches = engine.state.batch
        if not isinstance(batches, list):
            raise TypeError("ValidationOverlayLogger needs decollated batches (decollate=True on the engine)")
        for batch_item in batches:
            label = _first(batch_item.get(self.label_key))
            chosen = self._positives if label is not None and int(label) != 0 else self._others
            if len(chosen) >= self.num_cases:
                continue
            chosen.append(
                {
                    "case": case_name({}, batch_item, self.image_key),
                    "image": plain_tensor(batch_item[self.image_key]),
                    "mask": plain_tensor(batch_item.get(self.mask_key)),
                    "slice_indices": plain_tensor(batch_item.get(self.indices_key)),
                    "label": None if label is None else int(label),
                }
            )

    def selected_cases(self) -> list[dict]:
        """The cases of this epoch: positives first, then label-0 cases to fill up to ``num_cases``."""
        return (self._positives + self._others)[: self.num_cases]

    def __call__(self, engine: Engine) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() > 0:
            return
        cases = self.selected_cases()
        if not cases:
            return
        explainer = GradientTimesInput(engine.network, self.layer, self.per_slice)
        epoch_dir = self.output_dir / f"epoch_{int(engine.state.epoch):03d}"
        written, stems = [], set()
        for number, case in enumerate(cases, start=1):
            name = case["case"] or f"case {number}"
            class_index = self.class_index if self.class_index is not None else case["label"]
            try:
                result = localize_case(
                    explainer, case["image"], case["mask"], case["slice_indices"], class_index, self.num_key_slices
                )
                stem = unique_stem(case_file_stem(case["case"]) if case["case"] else f"case{number}", stems)
                picture = case_montage(result, colormap=self.colormap)
                written.append(save_png(epoch_dir / f"{stem}_montage.png", picture))
            except Exception as e:
                raise RuntimeError(f"{name}: validation overlay failed: {e}") from e
        self._log_to_mlflow(written, f"{self.artifact_dir}/{epoch_dir.name}")

    def _log_to_mlflow(self, paths: list[Path], artifact_path: str) -> None:
        for handler in self.open_mlflow_handlers()[:1]:  # one run: the trainer's, which the validator's shares
            for path in paths:
                handler.client.log_artifact(handler.cur_run.info.run_id, str(path), artifact_path)
