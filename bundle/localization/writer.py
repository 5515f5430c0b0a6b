# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Localization outputs of the bundle's engines: heatmap volumes, key-slice overlays, montages.

- :func:`localize_case`: gradient x input heatmaps (:class:`GradientTimesInput`) and key slices
  (:func:`slice_scores`, :func:`key_slices`) of one case of a decollated batch.
- :func:`heatmap_volume`: the bag's heatmaps put back into a volume of the original image's shape.
- :class:`LocalizationWriter`: inference handler writing the files of every case and adding the key
  slices to the engine's outputs, so that :class:`bundle.handlers.PredictionsWriter` writes them.
- :class:`ValidationOverlayLogger`: training-time handler writing the montages of a few fixed
  validation cases every validation epoch and logging them into the MLflow run when one is tracked.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events

from bundle.config import as_bool
from bundle.handlers import case_name, mlflow_handlers

from .grad_input import GradientTimesInput
from .overlay import DEFAULT_COLORMAP, heatmap_to_uint8, montage, overlay_heatmap, save_png
from .provenance import key_slices, slice_scores

__all__ = [
    "CaseLocalization",
    "localize_case",
    "heatmap_volume",
    "case_overlays",
    "case_montage",
    "case_file_stem",
    "LocalizationWriter",
    "ValidationOverlayLogger",
]

logger = logging.getLogger(__name__)

#: suffixes stripped from a case's file name to name its outputs
_STRIP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class CaseLocalization:
    """Heatmaps and key slices of one case (real slices only, in bag order).

    Attributes:
        heatmaps: ``[n, H, W]`` float32 ``P*`` in ``[0, 255]`` at the network's input size.
        slices: ``[n, H, W]`` (grey) or ``[n, H, W, 3]`` (RGB) network input slices in ``[0, 1]``.
        positions: bag position of every slice (padding skipped).
        slice_indices: original slice index of every slice (the bag positions when unknown).
        key_slices: best first, ``{"slice", "position", "score"}`` as :func:`key_slices` gives.
        target: the class the heatmaps explain.
    """

    heatmaps: np.ndarray
    slices: np.ndarray
    positions: list[int]
    slice_indices: list[int]
    key_slices: list[dict]
    target: int

    def overlay_index(self, position: int) -> int:
        """Index in :attr:`heatmaps` (and in :func:`case_overlays`) of the slice at bag ``position``."""
        return self.positions.index(position)


def _background(slices: torch.Tensor) -> np.ndarray:
    """Network input slices ``[n, C, H, W]`` as overlay backgrounds: grey ``[n, H, W]`` or RGB ``[n, H, W, 3]``."""
    if slices.shape[1] == 3:
        return slices.permute(0, 2, 3, 1).numpy()
    return slices.mean(dim=1).numpy()  # grey; other channel counts: their mean


def localize_case(
    explainer: GradientTimesInput,
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    slice_indices: torch.Tensor | None = None,
    class_index: int | None = None,
    num_key_slices: int = 3,
) -> CaseLocalization:
    """Heatmaps and key slices of one bag.

    The whole bag goes through the network at once, with gradients (no chunking): memory grows with the
    number of slices. The network is used in eval mode and put back in its mode; no parameter's
    ``.grad`` changes and no random number is drawn.

    Args:
        explainer: the heatmap method, bound to the network.
        image: bag ``[N, C, H, W]`` (may be padded).
        mask: ``[N]`` bool, True = real slice; None: all real.
        slice_indices: ``[N]`` original index of every slice (``-1``: padding); None: bag positions.
        class_index: the class to explain; None: the network's predicted class.
        num_key_slices: how many key slices to report.

    Returns:
        the case's :class:`CaseLocalization`.
    """
    network = explainer.network
    device = next(network.parameters()).device
    x = _plain(image).to(device=device, dtype=torch.float32)[None]
    n = int(x.shape[1])
    m = torch.ones(1, n, dtype=torch.bool) if mask is None else _plain(mask).bool()[None]
    m = m.to(device)
    heat, logits = explainer(x, m, class_index)
    target = int(logits[0].argmax()) if class_index is None else int(class_index)
    scores, _ = slice_scores(network, x, m, class_index=target)
    idx = None if slice_indices is None else _plain(slice_indices).reshape(1, -1)
    keys = key_slices(scores.cpu(), idx, top=num_key_slices)[0]
    real = m[0].cpu()
    positions = torch.arange(n)[real]
    originals = positions if idx is None else idx[0][real]
    return CaseLocalization(
        heatmaps=heat[0].detach().cpu()[real].float().numpy(),
        slices=_background(x[0].detach().cpu()[real]),
        positions=[int(p) for p in positions],
        slice_indices=[int(i) for i in originals],
        key_slices=keys,
        target=target,
    )


def heatmap_volume(
    heatmaps: np.ndarray | torch.Tensor, slice_indices: Sequence[int], spatial_shape: Sequence[int], slice_axis: int = 2
) -> np.ndarray:
    """Put a bag's heatmaps back into a volume of the original image's shape.

    Every heatmap ``[h, w]`` is resized (bilinear) to the original slice size, the two spatial axes
    other than ``slice_axis`` in their order (as :class:`transforms.ToBag` cut them), and written at
    its original index along ``slice_axis``; slices that were not evaluated stay 0.

    Args:
        heatmaps: ``[n, h, w]`` in ``[0, 255]``.
        slice_indices: the ``n`` original indices.
        spatial_shape: the volume's spatial shape (3 values), or an image's (2 values; then the single
            heatmap is only resized and ``slice_indices`` must be ``[0]``).
        slice_axis: the spatial axis the bag was cut along.

    Returns:
        float32 array of ``spatial_shape`` in ``[0, 255]``.
    """
    heat = torch.as_tensor(np.asarray(heatmaps, dtype=np.float32))
    shape = [int(s) for s in spatial_shape]
    if heat.dim() != 3 or heat.shape[0] != len(slice_indices):
        raise ValueError(f"expected {len(slice_indices)} heatmaps [n, h, w], got shape {list(heat.shape)}")
    if len(shape) == 2:
        if list(slice_indices) != [0]:
            raise ValueError(f"a 2-D image has one slice (index 0), got slice indices {list(slice_indices)}")
        plane, axis = shape, None
    elif len(shape) == 3:
        axis = int(slice_axis) % 3
        plane = [s for i, s in enumerate(shape) if i != axis]
        bad = [int(i) for i in slice_indices if not 0 <= int(i) < shape[axis]]
        if bad:
            raise ValueError(f"slice indices {bad} out of range for {shape[axis]} slices along axis {axis}")
    else:
        raise ValueError(f"spatial_shape must have 2 or 3 values, got {shape}")
    if list(heat.shape[1:]) != plane:
        heat = F.interpolate(heat[:, None], size=plane, mode="bilinear", align_corners=False)[:, 0]
    heat = heat.clamp(0.0, 255.0).numpy()
    if axis is None:
        return heat[0]
    volume = np.zeros(shape, dtype=np.float32)
    np.moveaxis(volume, axis, 0)[list(int(i) for i in slice_indices)] = heat  # a view: writes into volume
    return volume


def case_overlays(case: CaseLocalization, colormap: Any = DEFAULT_COLORMAP) -> list[np.ndarray]:
    """One ``uint8`` RGB overlay (:func:`overlay_heatmap`) per bag slice, at the network's input size."""
    return [overlay_heatmap(s, h, colormap) for s, h in zip(case.slices, case.heatmaps)]


def case_montage(case: CaseLocalization, columns: int | None = None, colormap: Any = DEFAULT_COLORMAP) -> np.ndarray:
    """All bag slices' overlays in a grid (bag order), captioned with their original index; key slices
    are framed and captioned with their rank (``"12 #1"``). ``columns`` defaults to ``ceil(sqrt(n))``."""
    rank = {k["position"]: r for r, k in enumerate(case.key_slices, start=1)}
    captions, frame = [], []
    for pos, original in zip(case.positions, case.slice_indices):
        captions.append(f"{original} #{rank[pos]}" if pos in rank else str(original))
        frame.append(pos in rank)
    images = case_overlays(case, colormap)
    columns = columns or math.ceil(math.sqrt(len(images)))
    return montage(images, columns, captions=captions, highlight=frame)


def case_file_stem(path: str) -> str:
    """A file-name stem for a case: its file (or folder) name without image suffixes, safe characters only."""
    name = Path(str(path).rstrip("/\\")).name or "case"
    lower = name.lower()
    for suffix in _STRIP_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "case"


def _unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``, ... when taken; the result is added to ``used``."""
    candidate, counter = stem, 1
    while candidate in used:
        counter += 1
        candidate = f"{stem}_{counter}"
    used.add(candidate)
    return candidate


def _first(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.reshape(-1)[0].item() if value.numel() else None
    if isinstance(value, np.ndarray):
        return value.reshape(-1)[0].item() if value.size else None
    return value


def _plain(value: Any) -> torch.Tensor | None:
    if value is None:
        return None
    return torch.as_tensor(value).as_subclass(torch.Tensor).detach().cpu()


def _check_settings(num_key_slices: int, class_index: int | None) -> None:
    if isinstance(num_key_slices, bool) or not isinstance(num_key_slices, int) or num_key_slices < 1:
        raise ValueError(f"num_key_slices must be an integer >= 1, got {num_key_slices!r}")
    bad_class = isinstance(class_index, bool) or not isinstance(class_index, int) or class_index < 0
    if class_index is not None and bad_class:
        raise ValueError(f"class_index must be None (the predicted class) or a class index >= 0, got {class_index!r}")


class LocalizationWriter:
    """Write heatmaps, key-slice overlays and a montage of every case an inference engine sees.

    Attach to the inference evaluator before :class:`bundle.handlers.PredictionsWriter`: at every
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
        _check_settings(num_key_slices, class_index)
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
        stem = _unique_stem(base, self._stems)
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
            _plain(image),
            _plain(batch_item.get(self.mask_key)),
            _plain(batch_item.get(self.indices_key)),
            class_index,
            self.num_key_slices,
        )
        stem = self._unique_stem(case)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._write_heatmap(image, result, stem, case)
        overlays = case_overlays(result, self.colormap)
        for key in result.key_slices:
            overlay = overlays[result.overlay_index(key["position"])]
            save_png(self.output_dir / f"{stem}_slice{key['slice']}.png", overlay)
        save_png(self.output_dir / f"{stem}_montage.png", case_montage(result, colormap=self.colormap))
        item["key_slices"] = [k["slice"] for k in result.key_slices]
        item["key_slice_scores"] = [k["score"] for k in result.key_slices]
        item["heatmap_class"] = result.target

    def _write_heatmap(self, image: Any, result: CaseLocalization, stem: str, case: str) -> None:
        meta = getattr(image, "meta", None) or {}
        shape = meta.get("spatial_shape")
        if shape is None:
            logger.warning(f"{case}: no spatial_shape in the image's meta data, heatmap volume not written")
            return
        shape = [int(s) for s in np.asarray(_plain(shape)).reshape(-1)]
        axis = int(_first(meta.get("slice_axis", 2)))
        volume = heatmap_volume(result.heatmaps, result.slice_indices, shape, axis)
        if len(shape) == 2:
            save_png(self.output_dir / f"{stem}_heatmap.png", heatmap_to_uint8(volume))
            return
        affine = np.asarray(_plain(image.affine), dtype=np.float64)
        original = meta.get("original_affine")
        if original is not None and not np.allclose(np.asarray(_plain(original), dtype=np.float64), affine):
            logger.warning(
                f"{case}: the affine changed during preprocessing (resampled or reoriented before ToBagd?); "
                "the heatmap volume uses the preprocessed affine and the original spatial shape"
            )
        _save_nifti(self.output_dir / f"{stem}_heatmap.nii.gz", volume, affine)


def _save_nifti(path: Path, volume: np.ndarray, affine: np.ndarray) -> Path:
    """Write a float32 NIfTI with ``affine`` as both its qform and sform (through a temporary file)."""
    import nibabel as nib

    img = nib.Nifti1Image(volume.astype(np.float32), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    tmp = path.with_name(f".tmp_{path.name}")
    nib.save(img, str(tmp))
    os.replace(tmp, path)
    return path


class ValidationOverlayLogger:
    """Every validation epoch, montages of a few fixed validation cases, logged into MLflow when tracked.

    Attach to the validation evaluator (``validate#handlers``). During the epoch it keeps the first
    ``num_cases`` cases with a non-zero label in loader order (the validation loader does not shuffle,
    so they are the same cases every epoch); label-0 cases fill up when there are fewer positives. At
    ``EPOCH_COMPLETED`` it computes their heatmaps and key slices (:func:`localize_case`; by default for
    each case's true label, so a positive case shows where the network finds the lesion class) and
    writes ``<output_dir>/epoch_<nnn>/<case>_montage.png`` (``nnn``: the trainer's epoch, zero-padded to
    3 digits). When the evaluator carries MONAI's ``MLFlowHandler`` (``--tracking mlflow``), the files are
    logged into its run under ``overlays/epoch_<nnn>/``; without tracking the files are only written.

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
        _check_settings(num_key_slices, class_index)
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
                    "image": _plain(batch_item[self.image_key]),
                    "mask": _plain(batch_item.get(self.mask_key)),
                    "slice_indices": _plain(batch_item.get(self.indices_key)),
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
                stem = _unique_stem(case_file_stem(case["case"]) if case["case"] else f"case{number}", stems)
                picture = case_montage(result, colormap=self.colormap)
                written.append(save_png(epoch_dir / f"{stem}_montage.png", picture))
            except Exception as e:
                raise RuntimeError(f"{name}: validation overlay failed: {e}") from e
        self._log_to_mlflow(engine, written, f"{self.artifact_dir}/{epoch_dir.name}")

    @staticmethod
    def _log_to_mlflow(engine: Engine, paths: list[Path], artifact_path: str) -> None:
        for handler in mlflow_handlers(engine):
            if handler.cur_run is None:
                continue
            for path in paths:
                handler.client.log_artifact(handler.cur_run.info.run_id, str(path), artifact_path)
            return  # one run: the trainer's, which the validator's handler shares
