# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MONAI Deploy operators that classify a volume with the exported bundle and write the result as JSON.

Why not MONAI Deploy's ``MonaiBundleInferenceOperator``: it is made for segmentation. It removes only
transforms whose names contain ``LoadImage`` (our loader is ``transforms.LoadVolumed``, so a DICOM
``Image`` would reach a file loader), adds a batch dimension to one input tensor (the network also
accepts a slice mask), and hands the network output on as an image, with no argmax over classes and
no class names. :class:`BagClassifierOperator` keeps what that operator does right (the inference
config read from the TorchScript archive, the ``DHW -> WHD`` layout of a DICOM ``Image``, the
config's ``device``) and returns a classification: probabilities per class and the decided class (the
decision threshold the archive carries, :func:`bundle.decision.archive_decision`, or the argmax).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.deploy.core import ConditionType, Fragment, Image, Operator, OperatorSpec
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator
from monai.transforms import Compose
from monai.utils import ImageMetaKey

from bundle.decision import archive_decision, decided_class
from bundle.export import load_torchscript
from bundle.serving import verify_sha256

__all__ = [
    "BagClassifierOperator",
    "ClassificationWriterOperator",
    "CheckedSeriesSelectorOperator",
    "image_to_volume",
    "resolve_model_file",
]

#: ids the operator reads from the archive's inference config
CONFIG_IDS = ("preprocessing", "inferer", "postprocessing", "class_names", "device")
#: DICOM attributes of the series copied from the ``Image`` metadata into the result
DICOM_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDescription")


def resolve_model_file(model_path: str | Path) -> Path:
    """The ``model.ts`` file that ``-m`` / ``HOLOSCAN_MODEL_PATH`` points at.

    Accepts the file itself, a folder holding ``model.ts`` or one model file, or MONAI Deploy's named
    model repository ``<models>/<name>/<file>`` with a single model.

    Raises:
        FileNotFoundError: naming the path when no single model file is found there.
    """
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "model.ts").is_file():
            return path / "model.ts"
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if len(files) == 1:
            return files[0]
    raise FileNotFoundError(
        f"{path}: no TorchScript model found; pass -m <model.ts> (exported with bundle.export.export_torchscript) "
        "or a folder holding model.ts"
    )


def image_to_volume(image: Image) -> MetaTensor:
    """A MONAI Deploy ``Image`` of a DICOM series as the ``[1, W, H, D]`` float32 ``MetaTensor`` our loader gives.

    ``DICOMSeriesToVolumeOperator`` stacks the slices as ``[D, H, W]`` (slice, row, column); MONAI's
    ``ITKReader`` (what ``transforms.LoadVolume`` uses for a DICOM folder) and MONAI Deploy's bundle
    operator order the axes ``[W, H, D]`` (x, y, z), so the axes 0 and 2 are swapped. The affine is
    the series' RAS affine (``nifti_affine_transform``) when the operator computed one.

    Raises:
        ValueError: the image is not a 3D single-channel volume.
    """
    array = np.asarray(image.asnumpy())
    if array.ndim != 3:
        raise ValueError(f"expected a 3D single-channel DICOM volume [D, H, W], got an array of shape {array.shape}")
    meta = image.metadata() or {}
    volume = torch.from_numpy(np.ascontiguousarray(np.swapaxes(array, 0, 2)).astype(np.float32))[None]
    affine = meta.get("nifti_affine_transform")
    affine = torch.as_tensor(np.asarray(affine), dtype=torch.float64) if affine is not None else None
    name = meta.get("SeriesInstanceUID", "dicom_series")
    return MetaTensor(volume, affine=affine, meta={ImageMetaKey.FILENAME_OR_OBJ: str(name)})


def _without_loaders(preprocessing: Compose) -> Compose:
    """``preprocessing`` less its file loaders (``LoadVolumed``, ``LoadImaged``): for a volume already in memory."""
    kept = [t for t in preprocessing.transforms if not type(t).__name__.startswith("Load")]
    return Compose(kept)


class CheckedSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """MONAI Deploy's series selector that fails with the folder's name when it selects no series.

    Without selection rules the stock operator selects every series of every study, and
    ``DICOMSeriesToVolumeOperator`` converts the first one. When the loader kept a study but none of
    its series (e.g. instances whose type-2 ``SeriesNumber`` is empty are dropped by
    ``DICOMDataLoaderOperator`` with a logged warning only), the stock converter fails with a bare
    ``IndexError``; this operator raises a ``ValueError`` naming ``input_folder`` instead.

    Args:
        fragment: the application.
        input_folder: the DICOM folder, named in the error.
        kwargs: the stock operator's arguments (``rules``, ``all_matched``, ...).
    """

    def __init__(self, fragment: Fragment, *args: Any, input_folder: str | Path, **kwargs: Any) -> None:
        self.input_folder = Path(input_folder)
        super().__init__(fragment, *args, **kwargs)

    def filter(
        self, selection_rules, dicom_study_list, all_matched: bool = False, sort_by_sop_instance_count: bool = False
    ):
        selected = super().filter(selection_rules, dicom_study_list, all_matched, sort_by_sop_instance_count)
        if not any(study.selected_series for study in selected or []):
            raise ValueError(
                f"input {self.input_folder}: no DICOM series with image instances selected "
                f"({len(dicom_study_list or [])} study(ies) read; instances without SeriesInstanceUID, "
                "SeriesNumber or ImagePositionPatient are skipped by the loader, see its warnings)"
            )
        return selected


class BagClassifierOperator(Operator):
    """Classify one volume with the bundle's TorchScript model: probabilities per class and the decided class.

    The model file is the one ``export_torchscript`` writes: its ``extra/inference.json`` holds the
    bundle's merged inference config, from which this operator takes ``preprocessing`` (file or volume
    -> bag ``[N, C, H, W]``), ``inferer`` (``bundle.inferers.ChunkedBagInferer``), ``postprocessing``
    (softmax of the logits), ``class_names`` and ``device``; from its ``metadata.json`` the decision threshold
    (``"decision"``, written by ``export_torchscript``): the predicted class is 1 when ``p[1] >= threshold``,
    the argmax when the archive carries none.

    Two ways in (chosen by the application):

    - ``input_path`` given (a NIfTI file): the whole preprocessing runs on the path, loader included,
      exactly as ``monai.bundle run inference`` reads the file; the ``image`` port is not used.
    - ``input_path`` None: the ``image`` port receives a MONAI Deploy ``Image`` (a DICOM series from
      ``DICOMSeriesToVolumeOperator``); it is laid out as the loader would (:func:`image_to_volume`)
      and the preprocessing runs without its loader.

    Named input:
        image: ``Image``; required when ``input_path`` is None.

    Named output:
        result: dict with ``input``, ``input_type`` (``nifti`` or ``dicom_series``), ``dicom`` (study
        and series UIDs, DICOM only), ``predicted_class``, ``predicted_label``, ``probabilities``
        (class name -> probability), ``threshold`` (the decision threshold used; None: argmax),
        ``num_slices`` (slices in the bag) and ``model`` (name and version from the archive's metadata,
        method, file, and ``decision``: the archive's decision record).

    Args:
        fragment: the application.
        model_path: ``model.ts``, or a folder as :func:`resolve_model_file` accepts.
        model_sha256: the SHA-256 the model file must have, checked before loading it
            (:func:`bundle.serving.verify_sha256`); None: no check.
        input_path: a NIfTI file to read with the bundle's own loader, or None (see above).
        source: the app's input as recorded in the result's ``input`` (default: ``input_path``; the
            application passes the DICOM folder).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        model_path: str | Path,
        model_sha256: str | None = None,
        input_path: str | Path | None = None,
        source: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.model_file = resolve_model_file(model_path)
        if model_sha256 is not None:  # before loading: the archive's config is evaluated when it is read
            verify_sha256(self.model_file, model_sha256)
        try:  # loaded on construction: a wrong model file fails before any input is read
            # not self.metadata: Holoscan's Operator has a read-only `metadata` property
            self._network, self._model_metadata, self._config = load_torchscript(self.model_file, map_location="cpu")
        except Exception as e:
            raise ValueError(
                f"model {self.model_file}: not a TorchScript archive written by bundle.export.export_torchscript ({e})"
            ) from e
        missing = [key for key in CONFIG_IDS if key not in self._config]
        if missing:
            raise ValueError(
                f"model {self.model_file}: its inference config lacks {missing} (an archive of "
                "`monai.bundle ckpt_export` holds inference.json without common.json's ids); export it with "
                "scripts/export_torchscript.py or bundle.export.export_torchscript"
            )
        self._decision = archive_decision(self._model_metadata)
        self.input_path = Path(input_path) if input_path is not None else None
        self.source = str(source if source is not None else input_path or "")
        self.input_name = "image"
        self.output_name = "result"
        # the base class constructor calls setup(): attributes first
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        port = spec.input(self.input_name)
        if self.input_path is not None:
            port.condition(ConditionType.NONE)  # nothing is connected: the operator reads input_path
        spec.output(self.output_name)

    def compute(self, op_input, op_output, context) -> None:
        start = time.perf_counter()
        metadata, config = self._model_metadata, self._config
        parser = ConfigParser(config)
        device = torch.device(parser.get_parsed_content("device"))
        network = self._network.to(device).eval()
        preprocessing = parser.get_parsed_content("preprocessing")
        if self.input_path is not None:
            data = {"image": str(self.input_path)}
            record = {"input": self.source, "input_type": "nifti"}
        else:
            image = op_input.receive(self.input_name)
            if not isinstance(image, Image):
                raise ValueError(
                    f"input port '{self.input_name}' expects a MONAI Deploy Image, got {type(image).__name__}"
                )
            data = {"image": image_to_volume(image)}
            preprocessing = _without_loaders(preprocessing)
            image_meta = image.metadata() or {}
            dicom = {k: str(image_meta[k]) for k in DICOM_KEYS if k in image_meta}
            record = {"input": self.source, "input_type": "dicom_series", "dicom": dicom}
        bag = preprocessing(data)["image"]  # [N, C, H, W]
        inferer = parser.get_parsed_content("inferer")
        with torch.no_grad():
            logits = inferer(torch.as_tensor(bag, dtype=torch.float32)[None].to(device), network)  # [1, classes]
        probs = parser.get_parsed_content("postprocessing")({"pred": logits[0].cpu()})["pred"]
        probs = torch.as_tensor(probs, dtype=torch.float64).flatten()
        class_names = [str(c) for c in parser.get_parsed_content("class_names")]
        if len(class_names) != probs.numel():
            raise ValueError(f"{self.model_file}: {probs.numel()} outputs but class_names has {len(class_names)}")
        threshold = None if self._decision is None else float(self._decision["threshold"])
        index = decided_class(probs, threshold)
        result = {
            **record,
            "predicted_class": index,
            "predicted_label": class_names[index],
            "probabilities": {name: float(p) for name, p in zip(class_names, probs)},
            "threshold": threshold,
            "num_slices": int(bag.shape[0]),
            "model": {
                "name": metadata.get("name", ""),
                "version": metadata.get("version", ""),
                "method": config.get("method_name", ""),
                "file": str(self.model_file),
                "decision": self._decision,
            },
        }
        self._logger.info(
            f"predicted {result['predicted_label']!r} (class {index}; "
            f"{'argmax' if threshold is None else f'threshold {threshold:.4g}'}) from {bag.shape[0]} slices "
            f"in {time.perf_counter() - start:.2f} s on {device}"
        )
        op_output.emit(result, self.output_name)


class ClassificationWriterOperator(Operator):
    """Write the classification result of :class:`BagClassifierOperator` as JSON.

    Named input:
        result: the result dict.

    Args:
        fragment: the application.
        output_folder: folder of the file (created).
        file_name: name of the JSON file (default ``classification.json``).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        output_folder: str | Path,
        file_name: str = "classification.json",
        **kwargs: Any,
    ) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.output_file = Path(output_folder) / file_name
        self.input_name = "result"
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.input_name)

    def compute(self, op_input, op_output, context) -> None:
        result: Mapping[str, Any] = op_input.receive(self.input_name)
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        self.output_file.write_text(json.dumps(result, indent=2) + "\n")
        self._logger.info(f"wrote {self.output_file}")
