# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``python scripts/monai_deploy_app -i <input> -o <output> -m <model.ts>``: runs :mod:`app` (see its docstring)."""

from __future__ import annotations

import sys

from app import main

if __name__ == "__main__":
    sys.exit(main())
