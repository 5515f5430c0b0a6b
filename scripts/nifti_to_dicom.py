# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Write a DICOM series from a NIfTI volume, to try the bundle's DICOM input (bundle.dicom_writer).

Example (a demo volume, then inference on the series folder)::

    python scripts/nifti_to_dicom.py data/synthetic_oct/images/case_0200.nii.gz dicom/case_0200
    python -m monai.bundle run --config_file "['configs/common.json','configs/inference.json']" --input dicom
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Write a 3-D NIfTI volume as one DICOM series (one file per slice along the third axis, with its "
            "spacing, origin and orientation), readable by the bundle (a folder as input) and the MONAI Deploy "
            "app. A test series: modality OT, no real patient data."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("nifti", help="the .nii or .nii.gz file holding one 3-D single-channel volume")
    p.add_argument("out_dir", help="the folder to write slice_0000.dcm, ... into (created)")
    p.add_argument("--series-description", default="MIMS-CNN test series", help="SeriesDescription of the series")
    p.add_argument("--patient-id", default="MIMS-DEMO", help="PatientID of the series (a test identifier)")
    p.add_argument("--overwrite", action="store_true", help="replace .dcm files already in out_dir instead of refusing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; 0 on success, 1 with one ``error:`` line when the input or output is refused.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.
    """
    args = build_parser().parse_args(argv)
    from bundle.dicom_writer import write_dicom_series

    try:
        info = write_dicom_series(
            args.nifti,
            args.out_dir,
            series_description=args.series_description,
            patient_id=args.patient_id,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rescale = "" if info["slope"] == 1.0 and info["intercept"] == 0.0 else (
        f", values stored as int16 with RescaleSlope {info['slope']:.6g}, RescaleIntercept {info['intercept']:.6g}"
    )
    size = "x".join(str(n) for n in info["shape"][:2])
    print(f"wrote {len(info['files'])} slices of {size} to {info['folder']} (series {info['series_uid']}{rescale})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
