# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The model zoo's checks on a package folder made by :mod:`bundle.zoo_package`, offline.

:func:`check_package` runs :data:`CHECKS` in a fresh process, started as ``python -m bundle.zoo_checks
<package>`` with the package first on ``PYTHONPATH``, so they test the package's code (this very module
included), not the repository's or an installed copy: required files, version in the changelog, JSON
configs parse, the code imports from the package, ``verify_metadata`` against a schema, the inference
workflow's properties, ``verify_net_in_out`` (``network_volume_def``), ``ckpt_export`` (same logits as
``model.pt`` and ``model.ts``), the decision threshold (the one ``inference.json`` resolves from
``models/model.decision.json`` is the one ``model.ts`` carries), the checkpoint hashes (``model.ts`` records the
SHA-256 of the ``model.pt`` it was built from: a WARNING when they differ), ``large_files.yml`` (each file
downloaded from its URL and hash-checked into a scratch folder), ``ruff`` lint of the package's code.
Before starting that process, :func:`check_package` warns when the checkpoint the package was built from
(``built_from`` in the package's ``models/model.provenance.json``) has changed since
(:func:`source_checkpoint_mismatch`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bundle.checksums import sha256
from bundle.config import build_network

__all__ = [
    "CHECKS",
    "CODE_PACKAGES",
    "REQUIRED_FILES",
    "Warned",
    "check_package",
    "run_checks",
    "source_checkpoint_mismatch",
]


#: the packages the configs import, copied into the package
CODE_PACKAGES = ("networks", "transforms", "bundle")


class Warned(str):
    """What a check returns when it passed with a warning (printed as ``WARN``; not a failure)."""


REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/inference.json",
    "configs/train.json",
    "configs/logging.conf",
    "models/model.pt",
    "models/model.ts",
    "docs/README.md",
    "docs/data_license.txt",
    "LICENSE",
    "large_files.yml",
)


def _check_required_files(bundle: Path, **_: Any) -> str:
    missing = [f for f in REQUIRED_FILES if not (bundle / f).is_file()]
    if missing:
        raise FileNotFoundError(f"missing: {', '.join(missing)}")
    return f"{len(REQUIRED_FILES)} files present"


def _check_version(bundle: Path, **_: Any) -> str:
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    for key in ("version", "changelog"):
        if key not in meta:
            raise KeyError(f"configs/metadata.json has no '{key}'")
    if meta["version"] not in meta["changelog"]:
        raise KeyError(f"version {meta['version']} is not in the changelog ({', '.join(meta['changelog'])})")
    return f"version {meta['version']} in changelog"


def _check_json(bundle: Path, **_: Any) -> str:
    files = sorted((bundle / "configs").rglob("*.json"))
    for file in files:
        try:
            json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{file.relative_to(bundle)}: {err}") from err
    return f"{len(files)} JSON files parse"


def _check_code_origin(bundle: Path, **_: Any) -> str:
    import importlib

    for package in CODE_PACKAGES:
        origin = Path(importlib.import_module(package).__file__).resolve()
        if bundle.resolve() not in origin.parents:
            raise ImportError(f"'{package}' imports from {origin}, not from the package {bundle}")
    return "networks, transforms, bundle import from the package"


def _check_metadata(bundle: Path, schema: str | None = None, **_: Any) -> str:
    from monai.bundle import verify_metadata

    if schema is None:
        raise ValueError("no schema: pass --schema FILE (offline) or --schema download (fetches metadata.json's URL)")
    kwargs = {} if schema == "download" else {"filepath": schema}
    if schema != "download" and not Path(schema).is_file():
        raise FileNotFoundError(f"schema not found: {schema}")
    if schema == "download":  # MONAI downloads to filepath; keep the package clean
        kwargs["filepath"] = str(Path(tempfile.mkdtemp()) / "schema.json")
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), **kwargs)
    return f"metadata valid against {Path(kwargs['filepath']).name}"


def _check_properties(bundle: Path, **_: Any) -> str:
    import nibabel
    import numpy as np
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as scratch:  # inference.json checks its input exists: give it one volume
        volume = np.random.default_rng(0).random((16, 16, 4), dtype=np.float32)
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(Path(scratch) / "case.nii.gz"))
        workflow = ConfigWorkflow(
            config_file=str(bundle / "configs" / "inference.json"),
            meta_file=str(bundle / "configs" / "metadata.json"),
            logging_file=str(bundle / "configs" / "logging.conf"),
            workflow_type="inference",
            bundle_root=str(bundle),
            input=scratch,
        )
        workflow.initialize()
        missing = workflow.check_properties()
    if missing:
        raise ValueError(f"inference.json lacks required properties: {missing}")
    return "inference workflow has MONAI's required properties"


def _check_net_in_out(bundle: Path, **_: Any) -> str:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_volume_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        device="cpu",
        any=3,
        bundle_root=str(bundle),
    )
    return "network_volume_def: a volume of metadata's input shape (3 slices) gives metadata's output"


def _check_export(bundle: Path, **_: Any) -> str:
    import torch
    from monai.bundle import ckpt_export

    verify_ts = bundle / "models" / "verify_model.ts"
    try:
        ckpt_export(
            net_id="network_def",
            filepath=str(verify_ts),
            ckpt_file=str(bundle / "models" / "model.pt"),
            meta_file=str(bundle / "configs" / "metadata.json"),
            config_file=str(bundle / "configs" / "inference.json"),
            bundle_root=str(bundle),
        )
        network, parser = build_network([bundle / "configs" / "inference.json"], ckpt=bundle / "models" / "model.pt")
        size = [int(s) for s in parser.get_parsed_content("image_size")]
        channels = int(parser.get_parsed_content("in_channels"))
        bag = torch.rand(2, 4, channels, *size, generator=torch.Generator().manual_seed(0))
        mask = torch.tensor([[True] * 4, [True, True, True, False]])
        with torch.no_grad():
            expected = network(bag, mask)
            for path in (verify_ts, bundle / "models" / "model.ts"):
                torch.testing.assert_close(torch.jit.load(str(path))(bag, mask), expected, rtol=1e-4, atol=1e-5)
    finally:
        verify_ts.unlink(missing_ok=True)
    return "ckpt_export works; exported and shipped model.ts give model.pt's logits"


def _check_decision(bundle: Path, **_: Any) -> str:
    from bundle.config import config_parser
    from bundle.decision import archive_decision
    from bundle.export import load_torchscript

    parser = config_parser([bundle / "configs" / "inference.json"], {"bundle_root": str(bundle)})
    threshold = parser.get_parsed_content("threshold")
    _, metadata, _ = load_torchscript(bundle / "models" / "model.ts")
    decision = archive_decision(metadata)
    shipped = None if decision is None else decision["threshold"]
    if shipped != threshold:
        raise ValueError(f"inference.json resolves the decision threshold {threshold}, model.ts carries {shipped}")
    if threshold is None:
        return "argmax (no decision threshold)"
    return f"threshold {threshold:.4g} in inference.json and model.ts"


def _check_checkpoint_hashes(bundle: Path, **_: Any) -> str:
    from bundle.export import checkpoint_mismatch, load_torchscript

    _, metadata, _ = load_torchscript(bundle / "models" / "model.ts")
    mismatch = checkpoint_mismatch(bundle / "models" / "model.ts", metadata, bundle / "models" / "model.pt")
    if mismatch:
        return Warned(mismatch)
    if not (metadata.get("checkpoint") or {}).get("sha256"):
        return Warned("model.ts records no checkpoint hash (exported before it was recorded)")
    return "model.ts records the sha256 of models/model.pt"


def source_checkpoint_mismatch(bundle: str | Path, repo: str | Path | None = None) -> str | None:
    """Why the package ``bundle`` no longer matches the checkpoint it was built from; None when it does.

    The package's ``models/model.provenance.json`` records ``built_from`` (path, relative to the repository
    when inside it, and SHA-256 of the checkpoint given to :func:`bundle.zoo_package.build_package`).

    Args:
        bundle: the package folder.
        repo: the repository relative paths are resolved against (default: this module's repository).

    Returns:
        a message naming both files when that checkpoint exists and has another hash now; else None.
    """
    from bundle.config import REPO

    try:
        provenance = json.loads((Path(bundle) / "models" / "model.provenance.json").read_text(encoding="utf-8"))
        record = provenance.get("built_from") or {}
    except (OSError, ValueError, AttributeError):
        return None
    path, recorded = record.get("path"), record.get("sha256")
    if not path or not recorded:
        return None
    source = Path(path) if Path(path).is_absolute() else Path(repo if repo is not None else REPO) / path
    if not source.is_file():
        return None
    actual = sha256(source)
    if actual == recorded:
        return None
    return (
        f"the package {bundle} was built from {source} with sha256 {recorded[:12]}, but {source} now has sha256 "
        f"{actual[:12]}: the package no longer holds that model (build it again to ship the current one)"
    )


def _check_large_files(bundle: Path, **_: Any) -> str:
    from monai.bundle.scripts import download_large_files

    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy2(bundle / "large_files.yml", Path(scratch) / "large_files.yml")
        # large_file_name=None: MONAI 1.6.1 fails when it is given (finds large_files.* itself)
        download_large_files(bundle_path=scratch, large_file_name=None)
        fetched = sorted(p.relative_to(scratch).as_posix() for p in Path(scratch).rglob("*.*") if p.suffix != ".yml")
        for rel in fetched:
            if sha256(Path(scratch) / rel) != sha256(bundle / rel):
                raise ValueError(f"{rel} from large_files.yml differs from the package's")
    return f"large_files.yml: {', '.join(fetched)} downloaded and hash-checked"


def _check_lint(bundle: Path, **_: Any) -> str:
    targets = [str(bundle / p) for p in (*CODE_PACKAGES, "scripts")]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(bundle / "pyproject.toml"), *targets],
        capture_output=True,
        text=True,
    )
    if "No module named ruff" in result.stderr:
        raise RuntimeError("ruff is not installed: pip install -e '.[test]' (or pass --skip-lint)")
    if result.returncode:
        raise RuntimeError(f"ruff found problems:\n{result.stdout}{result.stderr}")
    return "ruff check (pyproject settings) clean"


#: name -> check function; order is the order they run in
CHECKS: dict[str, Callable[..., str]] = {
    "required files": _check_required_files,
    "version in changelog": _check_version,
    "configs are JSON": _check_json,
    "code imports from the package": _check_code_origin,
    "verify_metadata": _check_metadata,
    "inference properties": _check_properties,
    "verify_net_in_out": _check_net_in_out,
    "ckpt_export": _check_export,
    "decision threshold": _check_decision,
    "checkpoint hashes": _check_checkpoint_hashes,
    "large_files.yml": _check_large_files,
    "lint": _check_lint,
}


def run_checks(bundle: str | Path, schema: str | None = None, skip: Sequence[str] = ()) -> int:
    """Run :data:`CHECKS` (but ``skip``) on the package folder ``bundle`` in this process, printing one line each.

    Returns:
        The number of checks that failed.
    """
    bundle = Path(bundle)
    failures = 0
    for name, check in CHECKS.items():
        if name in skip:
            print(f"  SKIP  {name} (asked)", flush=True)
            continue
        start = time.perf_counter()
        try:
            detail = check(bundle, schema=schema)
        except Exception as err:  # report every check, then fail
            failures += 1
            print(f"  FAIL  {name}: {type(err).__name__}: {err}", flush=True)
        else:
            status = "WARN" if isinstance(detail, Warned) else "ok  "
            print(f"  {status}  {name}: {detail} ({time.perf_counter() - start:.1f} s)", flush=True)
    return failures


def check_package(bundle: str | Path, schema: str | None = None, skip: Sequence[str] = ()) -> bool:
    """Run :data:`CHECKS` on the package folder ``bundle`` in a fresh process (package first on PYTHONPATH).

    Args:
        bundle: the package folder.
        schema: MONAI's bundle metadata JSON schema file for ``verify_metadata``; ``"download"`` lets MONAI
            fetch it; None fails that check.
        skip: names of checks (keys of :data:`CHECKS`) to leave out.

    Returns:
        True when all ran and passed (one line per check is printed; a WARNING line first when the checkpoint
        the package was built from has changed since, :func:`source_checkpoint_mismatch`).
    """
    bundle = Path(bundle).resolve()
    mismatch = source_checkpoint_mismatch(bundle)
    if mismatch:
        print(f"  WARN  built from: {mismatch}", flush=True)
    if schema not in (None, "download"):
        schema = str(Path(schema).resolve())
    # The package first on PYTHONPATH: the child imports `bundle` (this module, the checks, the configs' code)
    # from the package, not from the repository or an installed copy, which is what "code imports from the
    # package" verifies; PYTHONPATH entries come before the editable install's finder.
    path = [str(bundle), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    command = [sys.executable, "-m", "bundle.zoo_checks", str(bundle), "--schema", schema or "", "--skip", *skip]
    with tempfile.TemporaryDirectory() as cwd:  # not the repository: its folders would shadow the package
        return subprocess.run(command, env=env, cwd=cwd).returncode == 0


def _main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the checking process that :func:`check_package` starts; 1 when a check failed."""
    parser = argparse.ArgumentParser(description="Run the model-zoo checks on a package folder (in this process).")
    parser.add_argument("bundle", help="the package folder")
    parser.add_argument("--schema", default="", help="metadata schema file, 'download', or empty: none")
    parser.add_argument("--skip", nargs="*", default=[], help="names of checks to leave out")
    args = parser.parse_args(argv)
    return 1 if run_checks(Path(args.bundle), args.schema or None, args.skip) else 0


if __name__ == "__main__":
    sys.exit(_main())
