# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MONAI Deploy application: classify one 3D volume (NIfTI file or DICOM series folder) with the exported bundle.

Run it in the environment made by ``bash scripts/setup_deploy_env.sh`` (MONAI Deploy App SDK 4.0.0;
it must not be installed into ``.venv``)::

    .venv-deploy/bin/python scripts/monai_deploy_app -i volume.nii.gz -o out -m models/model.ts
    .venv-deploy/bin/python scripts/monai_deploy_app -i dicom_series_folder/ -o out -m models/model.ts

Options are MONAI Deploy's own (``monai.deploy.core.arg_parser``): ``-i/--input`` a NIfTI file
(``.nii``, ``.nii.gz``) or a folder holding one DICOM series, ``-o/--output`` the output folder,
``-m/--model`` the ``model.ts`` written by ``bundle.export.export_torchscript`` (or a folder holding
it), ``-l/--log-level``. Without them the SDK reads ``HOLOSCAN_INPUT_PATH``,
``HOLOSCAN_OUTPUT_PATH`` and ``HOLOSCAN_MODEL_PATH`` (defaults ``input``, ``output``, ``models``).

One option of this app: ``--model-sha256 <hex>`` checks the model file against that SHA-256 before loading it
(a mismatch stops the app with an error naming the file and both digests; ``bundle.serving.verify_sha256``).
A ``model.ts`` is code (its embedded config is evaluated here): load only archives from a source you trust.

Output: ``<output>/classification.json`` (see ``docs/monai_deploy.md``). Exit status 0 on success;
1 with one ``error:`` line on stderr when the input or the model cannot be used (the line names the
path); 2 from the SDK's argument parser when ``-i`` or ``-m`` does not exist.

Operator graph:

- NIfTI file: ``BagClassifierOperator`` (reads the file with the bundle's own loader) ->
  ``ClassificationWriterOperator``;
- DICOM folder: ``DICOMDataLoaderOperator`` -> ``CheckedSeriesSelectorOperator`` (MONAI Deploy's
  ``DICOMSeriesSelectorOperator`` without rules, failing clearly when nothing is selected) ->
  ``DICOMSeriesToVolumeOperator`` (the first selected series) -> ``BagClassifierOperator`` ->
  ``ClassificationWriterOperator``.

The first operator of each graph runs once (``CountCondition(1)``): a source operator without a
count condition is scheduled again and again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bag_classifier_operator import BagClassifierOperator, ClassificationWriterOperator, CheckedSeriesSelectorOperator
from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from bundle.serving import check_sha256

__all__ = ["NIFTI_SUFFIXES", "MIMSClassifierApp", "build_parser", "input_kind", "main"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def input_kind(path: str | Path) -> str:
    """``"nifti"`` for a NIfTI file, ``"dicom"`` for a non-empty folder (a DICOM series is expected there).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: a file that is not NIfTI, or a folder with no files; the message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path}: no such file or folder")
    if path.is_file():
        if path.name.lower().endswith(NIFTI_SUFFIXES):
            return "nifti"
        raise ValueError(
            f"input {path}: unsupported file; expected a NIfTI file ({', '.join(NIFTI_SUFFIXES)}) "
            "or a folder holding one DICOM series"
        )
    if not any(p.is_file() for p in path.rglob("*")):
        raise ValueError(f"input {path}: empty folder; expected a folder holding one DICOM series or a NIfTI file")
    return "dicom"


class MIMSClassifierApp(Application):
    """Classify a volume with the MIMS-CNN bundle's TorchScript model; writes ``classification.json``.

    The graph depends on the input (see the module docstring); paths come from MONAI Deploy's
    ``AppContext`` (``-i``/``-o``/``-m`` or the ``HOLOSCAN_*_PATH`` variables); ``model_sha256`` (set by
    :func:`main` from ``--model-sha256``), when not None, is checked against the model file before it is loaded.
    """

    model_sha256: str | None = None

    def compose(self) -> None:
        app_context = Application.init_app_context(self.argv)
        input_path = Path(app_context.input_path)
        output_path = Path(app_context.output_path)
        self.input_path = input_path  # named by main() in errors
        kind = input_kind(input_path)
        logging.getLogger(__name__).info(
            f"input {input_path} ({kind}), output {output_path}, model {app_context.model_path}"
        )
        writer = ClassificationWriterOperator(self, output_folder=output_path, name="writer_op")
        if kind == "nifti":
            classifier = BagClassifierOperator(
                self,
                CountCondition(self, 1),
                model_path=app_context.model_path,
                model_sha256=self.model_sha256,
                input_path=input_path,
                name="classifier_op",
            )
            self.add_operator(classifier)
        else:
            classifier = BagClassifierOperator(
                self,
                model_path=app_context.model_path,
                model_sha256=self.model_sha256,
                source=input_path,
                name="classifier_op",
            )
            loader = DICOMDataLoaderOperator(
                self, CountCondition(self, 1), input_folder=input_path, name="dicom_loader_op"
            )
            selector = CheckedSeriesSelectorOperator(self, input_folder=input_path, name="series_selector_op")
            to_volume = DICOMSeriesToVolumeOperator(self, name="series_to_volume_op")
            self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
            self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
            self.add_flow(to_volume, classifier, {("image", "image")})
        self.add_flow(classifier, writer, {("result", "result")})


def build_parser() -> argparse.ArgumentParser:
    """The options of this app; the SDK's own (``-i``, ``-o``, ``-m``, ``-l``) are parsed by MONAI Deploy."""
    parser = argparse.ArgumentParser(add_help=False, description="Options of the MIMS-CNN app (before the SDK's):")
    parser.add_argument(
        "--model-sha256",
        type=check_sha256,
        default=None,
        help="SHA-256 hex digest the model file must have (e.g. from the model-zoo package's large_files.yml, or "
        "`sha256sum model.ts` where it was exported); checked before the archive is loaded; default: no check",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the application; returns the exit status.

    Args:
        argv: the arguments without the program name; None: ``sys.argv[1:]``. ``--model-sha256`` is taken out,
            the rest goes to MONAI Deploy's parser.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if "-h" in argv or "--help" in argv:
        print(parser.format_help())
    try:
        args, rest = parser.parse_known_args(argv)
    except SystemExit as e:  # a malformed --model-sha256: argparse printed the reason
        return int(e.code or 2)
    app = MIMSClassifierApp(argv=[sys.executable, sys.argv[0], *rest])
    app.model_sha256 = args.model_sha256
    try:
        app.run()
    except Exception as e:  # the SDK and Holoscan raise plain exceptions: report them on one line
        message = f"{type(e).__name__}: {e}".replace("\n", " ")
        input_path = getattr(app, "input_path", None)
        if input_path is not None and str(input_path) not in message:
            message += f" (while processing input {input_path})"
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
