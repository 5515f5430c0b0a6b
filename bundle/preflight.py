# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Pre-flight: every check that can fail a run, before any work (data cache, engines, run folder).

:func:`preflight` is the second item of the configs' ``run`` lists (train, evaluate, inference and the
multi-process overlays), after ``initialize`` set the seed and before anything is cached, built or written
(``monai.bundle.load`` only initializes a workflow: it needs no data; ``ConfigWorkflow.check_properties()``
builds the datasets it checks, before the pre-flight when called before ``run()``). It checks:

- **the data**: every datalist entry of the splits the run uses, from its header only (NIfTI header, ITK
  image information, PIL's size and mode; no voxel data, so it stays fast): it exists and is readable, it is
  a 2-D image or a 3-D volume as ``spatial_dims`` asks (null: all entries of the run alike), and its channels
  can be brought to ``in_channels`` (:func:`read_header`, :func:`header_problems`);
- **the labels**: a labelled split with a single class is an error unless ``allow_single_class`` is true
  (:func:`label_problems`);
- **the checkpoint**: it exists, loads with ``weights_only=True``, and fits the configured network, keys and
  shapes (:func:`checkpoint_problems`);
- **the output folders**: writable, or creatable (:func:`output_problems`); nothing is left behind;
- **config values** that are otherwise checked late (:func:`option_problems`), and the ``localization_layer``
  (:func:`layer_problems`);
- **the command line**: a ``--key null`` that MONAI's command line would pass on as the text ``'null'``
  (:func:`bundle.command_line.null_text_problems`), first and alone: it explains the late problems it causes.

Every problem is one line naming the file (or config key), the problem and the fix; all are reported at once
in one :class:`bundle.errors.PreflightError` (one line each, then a summary). Data problems are warnings
instead (logged, the run goes on) where the run handles bad cases itself: inference without ``fail_fast``
(bad cases are reported in the predictions file) and ``skip_bad_cases``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.command_line import check_command_line
from bundle.config import as_bool
from bundle.errors import PreflightError
from transforms.io import IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS, VOLUME_EXTENSIONS, file_suffix

__all__ = [
    "ImageHeader",
    "read_header",
    "header_problems",
    "label_problems",
    "checkpoint_problems",
    "output_problems",
    "option_problems",
    "layer_problems",
    "preflight",
]

logger = logging.getLogger(__name__)

#: how many names a message lists at most
_MAX_NAMES = 5


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What the header of an input says.

    Attributes:
        spatial_dims: 2 (an image ``[H, W]``) or 3 (a volume ``[H, W, D]``).
        channels: the channels ``transforms.LoadVolume`` gives it; None: unknown (a DICOM series).
        shape: the spatial shape.
        stored_channels: a volume file storing a 4-D array ``[H, W, D, C]``.
    """

    spatial_dims: int
    channels: int | None
    shape: tuple[int, ...]
    stored_channels: bool = False


def _spatial(path: Path, shape: tuple[int, ...], channels: int | None, stored: bool = False) -> ImageHeader:
    if not shape or min(shape) == 0:
        raise ValueError(f"{path}: empty image: no voxels (array shape {shape})")
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{path}: {len(shape)}-D array of shape {shape} (after the channel axis); expected a 2-D image [H, W] or "
            "a 3-D volume [H, W, D]"
        )
    return ImageHeader(len(shape), channels, shape, stored)


def _nifti_header(path: Path) -> ImageHeader:
    import nibabel

    try:
        shape = tuple(int(s) for s in nibabel.load(str(path)).header.get_data_shape())
    except Exception as e:
        raise ValueError(f"{path}: cannot be read as NIfTI: {' '.join(str(e).split())}") from e
    if len(shape) >= 4:  # [H, W, D, C]: read as C channels (transforms.LoadVolume), the last axis
        return _spatial(path, shape[:-1], shape[-1], stored=True)
    return _spatial(path, shape, 1)


def _itk_header(path: Path, fmt: str) -> ImageHeader:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as e:
        raise ValueError(f"{path}: cannot be read as {fmt}: {' '.join(str(e).split())}") from e
    components = int(reader.GetNumberOfComponents())
    return _spatial(path, tuple(int(s) for s in reader.GetSize()), components, stored=components > 1)


def _pil_header(path: Path) -> ImageHeader:
    from transforms.io import image_2d_header

    shape, channels = image_2d_header(path)
    return _spatial(path, shape, channels)


def _folder_header(folder: Path) -> ImageHeader:
    children = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not children:
        raise ValueError(f"{folder}: empty folder; expected 2D slice images or a DICOM series.")
    slices = sorted(p for p in children if p.is_file() and file_suffix(p) in IMAGE_EXTENSIONS)
    if not slices:
        return ImageHeader(3, None, ())  # a DICOM series: read by ITK when the case is loaded
    first = _pil_header(slices[0])
    for other in slices[1:]:
        header = _pil_header(other)
        if (header.shape, header.channels) != (first.shape, first.channels):
            raise ValueError(
                f"{other}: slice of {header.channels} channel(s) {header.shape} differs from "
                f"{first.channels} channel(s) {first.shape} of {slices[0].name}; all slices in {folder} must have "
                "the same size and channels."
            )
    return ImageHeader(3, first.channels, (*first.shape, len(slices)))


def read_header(path: str | os.PathLike, scan: int | None = None) -> ImageHeader:
    """The header of an input (a file or a folder, as ``transforms.LoadVolume`` reads it), no voxel data.

    OCT files (``.vol``, ``.e2e``, ``.fda``, ``.fds``, Zeiss ``.img``, multi-frame ``.dcm``) are read with
    :func:`transforms.oct_formats.read_oct_header`; ``scan`` selects the scan of a file holding several (the
    datalist entry's ``"scan"``). A Cirrus ``.img`` of no known protocol size has an unknown shape here.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: naming the path: an unsupported suffix, a header that cannot be read, an empty image, a
            wrong number of dimensions, a multi-frame image, slices of different sizes in a folder.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return _folder_header(path)
    from transforms.oct_formats import oct_format, read_oct_header

    if oct_format(path) is not None:
        info = read_oct_header(path, scan=scan, strict=False)
        return ImageHeader(3, 1, info.shape) if not info.shape else _spatial(path, info.shape, 1)
    suffix = file_suffix(path)
    if suffix in IMAGE_EXTENSIONS:
        return _pil_header(path)
    if VOLUME_EXTENSIONS.get(suffix) == "NIfTI":
        return _nifti_header(path)
    if suffix in VOLUME_EXTENSIONS:
        return _itk_header(path, VOLUME_EXTENSIONS[suffix])
    raise ValueError(
        f"{path}: unsupported file type '{suffix or path.name}'; supported suffixes are "
        f"{', '.join(SUPPORTED_EXTENSIONS)}, a folder of 2D slices or a DICOM series folder."
    )


def _channel_problem(path: str, header: ImageHeader, in_channels: int) -> tuple[str | None, str | None]:
    """(error, warning) of a case's channels under ``in_channels``."""
    c = header.channels
    if c is None or c == in_channels:
        return None, None
    if header.stored_channels and c not in (1, in_channels):
        return (
            f"{path}: 4-D array {(*header.shape, c)} read as a 3-D volume of {c} channels, but the model takes "
            f"{in_channels} (in_channels); store one 3-D volume [H, W, D] per file, or set in_channels",
            None,
        )
    if c == 1 and in_channels == 3:
        return None, None
    if c in (3, 4) and in_channels == 1:
        return None, (
            f"{path}: colour image ({c} channels) under in_channels 1: it is turned grey (luma); set in_channels 3 "
            "to keep the colour (docs/README.md, your own 2D colour images)"
        )
    if c in (3, 4) and in_channels == 3:
        return None, None
    return (
        f"{path}: {c} channel(s) cannot be brought to in_channels {in_channels}; supported: equal counts, 1 -> 3, "
        "3 or 4 (RGBA) -> 1 or 3",
        None,
    )


def header_problems(
    entries: Sequence[Mapping[str, Any]], spatial_dims: int | None, in_channels: int
) -> tuple[list[str], list[str]]:
    """Read every entry's header; the problems (one line per bad entry) and the warnings.

    An entry is bad when its image does not exist or cannot be read (:func:`read_header`), is not
    ``spatial_dims``-D (None: when both 2-D images and 3-D volumes are among the entries, those of the less
    frequent kind, 2-D on a tie), or has channels that cannot be brought to ``in_channels``. A colour image
    under ``in_channels`` 1 is a warning (it is turned grey).

    Args:
        entries: datalist entries with absolute ``image`` paths.
        spatial_dims: 2, 3 or None (both accepted, but not mixed).
        in_channels: the channels the model takes.

    Returns:
        ``(problems, warnings)``, one line each, in the entries' order.
    """
    problems: dict[int, str] = {}
    warnings: list[str] = []
    headers: dict[int, ImageHeader] = {}
    for i, entry in enumerate(entries):
        path = str(entry["image"])
        try:
            header = headers[i] = read_header(path, scan=entry.get("scan"))
        except (OSError, ValueError, ImportError) as e:  # ImportError: an OCT file without its optional reader
            problems[i] = " ".join(str(e).split())
            continue
        error, warning = _channel_problem(path, header, in_channels)
        if error:
            problems[i] = error
        if warning:
            warnings.append(warning)
    counts = Counter(h.spatial_dims for h in headers.values())
    expected = spatial_dims if spatial_dims is not None else (3 if counts[3] > counts[2] else 2)
    for i, header in headers.items():
        if header.spatial_dims == expected or i in problems:
            continue
        kind = "2-D image" if header.spatial_dims == 2 else "3-D volume"
        path = entries[i]["image"]
        if spatial_dims is not None:
            problems[i] = (f"{path}: {kind} {header.shape} where {spatial_dims}-D inputs are expected (spatial_dims "
                           f"{spatial_dims}; null accepts both)")
        else:
            problems[i] = (f"{path}: {kind} {header.shape} among {counts[expected]} {expected}-D input(s) of this run; "
                           "remove it, or set spatial_dims to the kind you mean")
    return [problems[i] for i in sorted(problems)], warnings


def label_problems(
    entries: Sequence[Mapping[str, Any]], where: str, num_classes: int, allow_single_class: bool = False
) -> list[str]:
    """A labelled split whose cases all have one class (a problem unless ``allow_single_class``).

    Args:
        entries: the split's entries (``label`` an ``int`` when present).
        where: the split, for the message (``"datalist <path>, split 'training'"``).
        num_classes: the classes of the task.
        allow_single_class: accept such a split.
    """
    labels = {entry["label"] for entry in entries if entry.get("label") is not None}
    if allow_single_class or len(labels) != 1 or num_classes < 2:
        return []
    (label,) = labels
    return [
        f"{where}: all {len(entries)} case(s) have label {label}: one class cannot be learned nor scored (AUROC); "
        "add cases of the other class(es), or set allow_single_class true"
    ]


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).strip().splitlines()[0].split()) if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_NAMES])
    return shown + (", ..." if len(names) > _MAX_NAMES else "")


def checkpoint_problems(path: str | os.PathLike | None, network: Any, key: str = "ckpt_path") -> list[str]:
    """The checkpoint ``path`` exists, loads with ``weights_only=True`` and fits ``network`` (keys and shapes).

    Args:
        path: a state dict, or a checkpoint whose ``"model"`` entry is one.
        network: the network built from the configs (``torch.nn.Module``); None: only readability.
        key: the config key that names the checkpoint, for the message.

    Returns:
        at most one line, naming the file and ``key``.
    """
    import torch

    if path is None:
        return [f"config {key}: no checkpoint given; set {key} to a trained model (models/model.pt)"]
    file = Path(path).expanduser()
    if not file.is_file():
        return [f"{file}: checkpoint not found ({key}); train a model first (configs/train.json promotes its best "
                f"model to models/model.pt) or set {key}"]
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # never retried with weights_only=False: an untrusted file could run code
        return [f"{file}: checkpoint cannot be read as a weights-only PyTorch file ({key}): {_first_line(e)}; it is "
                "truncated, corrupt or not a state dict: train again or set another file"]
    if isinstance(content, Mapping) and isinstance(content.get("model"), Mapping):
        content = content["model"]
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        return [f"{file}: not a state dict nor a checkpoint with a 'model' state dict ({key})"]
    if network is None:
        return []
    from networks.utils import state_dict_mismatch

    expected = network.state_dict()
    missing, unexpected, shapes = state_dict_mismatch(expected, content)
    if not (missing or unexpected or shapes):
        return []
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) ({_names(unexpected)})")
    if shapes:
        name = shapes[0]
        parts.append(f"{len(shapes)} shape mismatch(es) ({name!r}: {list(content[name].shape)} in the file, "
                     f"{list(expected[name].shape)} configured)")
    return [f"{file}: checkpoint does not fit the configured {type(network).__name__} ({key}): {'; '.join(parts)}; "
            "it was trained with other settings: use the same method overlay and in_channels, num_classes, "
            "backbone_depth, feature_stage"]


def output_problems(outputs: Mapping[str, str | os.PathLike | None]) -> list[str]:
    """Folders the run writes must be writable, or creatable in a writable folder; nothing is left behind.

    Writes (and deletes) a temporary file in the folder, or in its nearest existing parent.

    Args:
        outputs: config key -> folder (None: not used by this run).
    """
    problems = []
    for key, folder in outputs.items():
        if folder is None:
            continue
        path = Path(folder).expanduser().absolute()
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            problems.append(f"{path}: cannot be created, {probe} is a file ({key}); set {key} to another folder")
            continue
        try:
            handle, tmp = tempfile.mkstemp(dir=probe, prefix=".mims_cnn_write_test_")
            os.close(handle)
            os.remove(tmp)
        except OSError as e:
            what = "is not writable" if probe == path else f"cannot be created: {probe} is not writable"
            problems.append(f"{path}: {what} ({e.strerror or e}) ({key}); set {key} to another folder or make it "
                            "writable")
    return problems


def _option_checks() -> dict[str, Callable[[Any], Any]]:
    from bundle.class_balance import check_class_weighting
    from bundle.localization.handlers import check_class_index, check_num_key_slices
    from bundle.model_selection import (
        check_best_model_min_epoch,
        check_early_stopping_patience,
        check_keep_model,
        check_promote,
    )

    checks: dict[str, Callable[[Any], Any]] = {
        "keep_model": check_keep_model,
        "promote": check_promote,
        "best_model_min_epoch": check_best_model_min_epoch,
        "early_stopping_patience": check_early_stopping_patience,
        "class_weighting": check_class_weighting,
        "num_key_slices": check_num_key_slices,
        "localization_class_index": lambda value: check_class_index(value, "localization_class_index"),
    }
    for name in ("skip_bad_cases", "use_amp", "fail_fast", "localize", "heatmap_per_slice", "allow_single_class"):
        checks[name] = lambda value, name=name: as_bool(value, name)
    return checks


def option_problems(options: Mapping[str, Any]) -> list[str]:
    """Config values that are otherwise checked only when their handler is built (after the data cache).

    Known keys: ``keep_model``, ``promote``, ``best_model_min_epoch``, ``early_stopping_patience``,
    ``class_weighting``, ``warmup_epochs`` (with ``epochs``), ``decision_threshold`` (with ``num_classes``, default
    2), ``num_key_slices``, ``localization_class_index``, ``spatial_dims``, ``in_channels``, ``num_classes`` and
    the switches ``skip_bad_cases``, ``use_amp``, ``fail_fast``, ``localize``, ``heatmap_per_slice``,
    ``allow_single_class``. Each is checked by the function its handler or config expression uses, with the same
    message. Other keys are not checked.

    Returns:
        one line per bad value: ``config <key>: <what is allowed>, got <value>``.
    """
    from bundle.decision import check_decision_threshold
    from bundle.schedules import check_warmup_epochs

    checks = _option_checks()
    num_classes = options.get("num_classes", 2)
    num_classes = num_classes if isinstance(num_classes, int) and not isinstance(num_classes, bool) else 2
    problems = []
    for key, value in options.items():
        try:
            if key in checks:
                checks[key](value)
            elif key == "warmup_epochs" and "epochs" in options:
                check_warmup_epochs(value, options["epochs"])
            elif key == "decision_threshold":
                check_decision_threshold(value, num_classes)
            elif key == "spatial_dims" and value is not None and (isinstance(value, bool) or value not in (2, 3)):
                raise ValueError(f"spatial_dims must be 2, 3 or null (both accepted), got {value!r}")
            elif key in ("in_channels", "num_classes") and (isinstance(value, bool) or not isinstance(value, int)
                                                            or value < (1 if key == "in_channels" else 2)):
                raise ValueError(f"{key} must be an integer >= {1 if key == 'in_channels' else 2}, got {value!r}")
        except ValueError as e:
            problems.append(f"config {key}: {_first_line(e)}")
    return problems


def layer_problems(network: Any, layer: str | None, key: str = "localization_layer") -> list[str]:
    """The heatmap layer ``layer`` is ``"input"`` or a submodule of ``network`` (None: the default layer)."""
    if layer is None or network is None:
        return []
    from bundle.localization.grad_input import GradientTimesInput

    try:
        GradientTimesInput(network, layer)
    except ValueError as e:
        return [f"config {key}: {_first_line(e, limit=400)}"]
    return []


def _entries(
    kind: str, datalist: str | None, splits: Sequence[str], num_classes: int, input_split: str, extensions: Any
) -> tuple[dict[str, list[dict]], list[str]]:
    """The entries of each split (problems of the datalist itself, e.g. a missing split, as problems)."""
    from bundle.datalist import inference_datalist, load_datalist

    entries, problems = {}, []
    for split in dict.fromkeys(splits):
        try:
            if kind == "inference":
                entries[split] = inference_datalist(datalist, extensions, split=input_split, check_files=False)
            else:
                entries[split] = load_datalist(datalist, split=split, num_classes=num_classes, check_files=False)
        except (OSError, ValueError) as e:
            problems.append(" ".join(str(e).split()))
    return entries, problems


def preflight(
    kind: str,
    datalist: str | os.PathLike,
    splits: Sequence[str] = (),
    num_classes: int = 2,
    in_channels: int = 1,
    spatial_dims: int | None = None,
    allow_single_class: bool | str = False,
    skip_bad_cases: bool | str = False,
    fail_fast: bool | str = True,
    network: Any = None,
    ckpt_path: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    outputs: Mapping[str, str | os.PathLike | None] | None = None,
    options: Mapping[str, Any] | None = None,
    localization_layer: str | None = None,
    extensions: Sequence[str] = (),
) -> None:
    """Run every pre-flight check of a run (see the module docstring); raise for all problems at once.

    Args:
        kind: ``"train"``, ``"evaluate"`` or ``"inference"``.
        datalist: the datalist (inference: ``@input``, a datalist or a folder).
        splits: the splits the run reads (inference: one, ``@input_split``).
        num_classes: classes of the task.
        in_channels: channels the model takes.
        spatial_dims: 2, 3, or None (both, not mixed).
        allow_single_class: accept a labelled split with one class (training and evaluation).
        skip_bad_cases: training and evaluation: the entries' problems are warnings (the datasets leave the bad
            cases out and report them).
        fail_fast: inference: False: the entries' problems are warnings (the bad cases are reported in the
            predictions file); True: problems.
        network: the configured network (``@network_def``), for the checkpoint and the layer; None: not checked.
        ckpt_path: a checkpoint that must fit ``network`` (evaluation, inference); None: none.
        resume_from: a checkpoint the run resumes from: it must exist (train); None: none.
        outputs: config key -> folder the run writes.
        options: config key -> value, see :func:`option_problems`.
        localization_layer: a heatmap layer the run uses; None: none (or the network's default).
        extensions: inference: image suffixes of an input folder.

    Raises:
        PreflightError: one line per problem, then a summary; nothing was started.
    """
    switches = {"allow_single_class": allow_single_class, "skip_bad_cases": skip_bad_cases, "fail_fast": fail_fast}
    options = {**switches, "num_classes": num_classes, "in_channels": in_channels, "spatial_dims": spatial_dims,
               **dict(options or {})}
    check_command_line()  # a --key null explains the late problems it would cause: it alone is reported
    problems = option_problems(options)
    if option_problems({key: options[key] for key in (*switches, "num_classes", "in_channels", "spatial_dims")}):
        raise PreflightError(problems)  # the data checks need these values
    if kind == "inference":
        as_warnings = not as_bool(fail_fast, "fail_fast")
    else:
        as_warnings = as_bool(skip_bad_cases, "skip_bad_cases")
    entries, data = _entries(kind, str(datalist), splits or ["test"], num_classes, splits[0] if splits else "test",
                             extensions)
    problems += data  # a datalist that cannot be read stops any run
    all_entries = [entry for split_entries in entries.values() for entry in split_entries]
    bad, warnings = header_problems(all_entries, spatial_dims, in_channels)
    if as_warnings:
        warnings += bad
    else:
        problems += bad
    if kind != "inference":
        for split, split_entries in entries.items():
            where = f"datalist {Path(datalist).expanduser().resolve()}, split '{split}'"
            problems += label_problems(split_entries, where, num_classes, as_bool(allow_single_class))
    if ckpt_path is not None:
        problems += checkpoint_problems(ckpt_path, network)
    if resume_from is not None and not Path(resume_from).expanduser().is_file():
        problems.append(f"{resume_from}: checkpoint not found (resume_from); give a checkpoint_*.pt of a run folder")
    problems += output_problems(outputs or {})
    problems += layer_problems(network, localization_layer)
    for warning in warnings:
        logger.warning(f"pre-flight: {warning}")
    if warnings:
        logger.warning(f"pre-flight: {len(warnings)} warning(s) above; the run goes on")
    if problems:
        raise PreflightError(problems)
    logger.info(f"pre-flight: {len(all_entries)} case(s), checkpoint, outputs and options checked")
