# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The SHA-256 digest of a file: what checkpoints, archives, packages and served models are identified by.

A leaf module (standard library only), so that the export, the model-zoo package checks, the kept-model
provenance and the serving code share it without importing each other.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256"]


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of the file ``path`` (as ``large_files.yml`` states it), read in 1-MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
