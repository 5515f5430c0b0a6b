#!/usr/bin/env bash
# Create (or reuse) the bundle's virtual environment in .venv and install the bundle with its
# dependencies. Safe to re-run: an existing .venv is updated, not recreated.
#
#   TORCH_SPEC   torch requirement installed first (default: torch==2.13.0, the CPU build).
#                GPU users: TORCH_SPEC="torch --index-url <your CUDA wheel index>" or install a
#                CUDA torch into .venv yourself before running this script.
#   PYTHON       interpreter used to create .venv (default: python3)
#   EXTRAS       pip extras of the bundle to install (default: test,oct: the tests and the OCT vendor-file readers)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-test,oct}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating virtual environment .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
pip_quiet=(--quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing $TORCH_SPEC"
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install "${pip_quiet[@]}" $TORCH_SPEC 2> >(grep -v "^WARNING: Location" >&2)
fi
echo "[setup] installing the bundle (editable) and its dependencies: pip install -e .[$EXTRAS]"
# (this machine's pip configuration prints one "WARNING: Location ..." line per package: hidden)
.venv/bin/python -m pip install "${pip_quiet[@]}" -e ".[$EXTRAS]" 2> >(grep -v "^WARNING: Location" >&2)
.venv/bin/python -c "import monai, torch, networks, transforms, bundle; print(f'[setup] ready: monai {monai.__version__}, torch {torch.__version__}, cuda available: {torch.cuda.is_available()}')"
