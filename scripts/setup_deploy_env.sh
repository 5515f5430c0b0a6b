#!/usr/bin/env bash
# Create (or reuse) .venv-deploy: the environment of the MONAI Deploy app (scripts/monai_deploy_app).
#
# MONAI Deploy App SDK installs the package monai.deploy; with it present, `import monai` tries to
# load monai.deploy (and Holoscan), so the SDK must stay out of the bundle's .venv. Order matters:
# torch==2.13.0 (the CPU build) first, then the app's pinned requirements
# (scripts/monai_deploy_app/requirements.txt) with torch held by a constraint so that no step
# replaces it (a CUDA build would be gigabytes), then this repository without its dependencies
# (pip install --no-deps -e .: the app imports networks, transforms and bundle from it).
#
#   bash scripts/setup_deploy_env.sh     # idempotent: seconds when nothing changed
#
#   PYTHON   interpreter used to create .venv-deploy (default: python3)
#   FORCE=1  re-run the pip steps even when the environment is up to date
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
VENV=.venv-deploy
TORCH_VERSION=2.13.0
REQUIREMENTS=scripts/monai_deploy_app/requirements.txt
py="$VENV/bin/python"
stamp="$VENV/.mims_deploy_setup"
# the environment is up to date when this script, app_env_support.sh, the requirements and pyproject.toml
# are unchanged
want="$(cat "${BASH_SOURCE[0]}" scripts/app_env_support.sh "$REQUIREMENTS" pyproject.toml | sha256sum | cut -d' ' -f1)"
start=$SECONDS
TAG=setup-deploy
# shellcheck source=scripts/app_env_support.sh
source scripts/app_env_support.sh

check() {
    "$py" - "$TORCH_VERSION" <<'PY'
import importlib.metadata as md
import sys
import warnings

warnings.filterwarnings("ignore")  # Holoscan warns about the stack size on import
import highdicom, holoscan, monai, monai.deploy, nibabel, pydicom, torch  # noqa: F401  (import check)
import bundle, networks, transforms  # noqa: F401  (this bundle's code)

if torch.__version__.split("+")[0] != sys.argv[1]:
    sys.exit(f"[setup-deploy] torch {torch.__version__} installed, {sys.argv[1]} expected")
names = ("monai-deploy-app-sdk", "holoscan-cu13", "monai", "torch", "pydicom", "highdicom", "nibabel", "numpy")
print("[setup-deploy] ready: " + ", ".join(f"{n} {md.version(n)}" for n in names))
PY
}

if stamp_is_current && check 2>/dev/null; then
    echo "[setup-deploy] $VENV is up to date (delete $stamp or set FORCE=1 to reinstall) [$((SECONDS - start)) s]"
    exit 0
fi
rm -f "$stamp"
make_venv

if have torch "$TORCH_VERSION"; then
    echo "[setup-deploy] torch $TORCH_VERSION already installed"
else
    echo "[setup-deploy] installing torch==$TORCH_VERSION first"
    pip_install "torch==$TORCH_VERSION"
fi
write_constraints "torch==$TORCH_VERSION"
echo "[setup-deploy] installing $REQUIREMENTS (MONAI Deploy App SDK, Holoscan, MONAI, DICOM and image readers) with torch held"
pip_install -c "$constraints" -r "$REQUIREMENTS"
echo "[setup-deploy] installing this bundle without dependencies (pip install --no-deps -e .)"
pip_install --no-deps -e .
check
if [ -x .venv/bin/python ] && .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('monai.deploy') is None)" 2>/dev/null; then
    echo "[setup-deploy] WARNING: .venv has monai.deploy installed; uninstall monai-deploy-app-sdk from .venv (it breaks 'import monai' there)" >&2
fi
echo "$want" >"$stamp"
echo "[setup-deploy] done in $((SECONDS - start)) s"
