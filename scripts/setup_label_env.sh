#!/usr/bin/env bash
# Create (or reuse) .venv-label: the environment of the MONAI Label app (scripts/monai_label_app).
#
# MONAI Label 0.8.5 imports torchvision, and the only torch/torchvision pair on hand that import
# together is torch 2.14.1 + torchvision 0.29.1, so this environment is separate from .venv
# (torch 2.13.0). Order matters: torch and torchvision first, then monailabel and this bundle with
# torch held by a constraint, so that no later step replaces torch.
#
#   bash scripts/setup_label_env.sh     # idempotent: seconds when nothing changed
#
#   PYTHON   interpreter used to create .venv-label (default: python3)
#   FORCE=1  re-run the pip steps even when the environment is up to date
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
VENV=.venv-label
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MONAILABEL_VERSION=0.8.5
# monailabel 0.8.5 breaks with pydicom 3 and the newest dicomweb-client / pynetdicom releases
PINS=("pydicom<3" "dicomweb-client<0.60" "pynetdicom<3")
py="$VENV/bin/python"
stamp="$VENV/.mims_label_setup"
# the environment is up to date when this script, app_env_support.sh and pyproject.toml are unchanged
want="$(cat "${BASH_SOURCE[0]}" scripts/app_env_support.sh pyproject.toml | sha256sum | cut -d' ' -f1)"
start=$SECONDS
TAG=setup-label
# shellcheck source=scripts/app_env_support.sh
source scripts/app_env_support.sh

# the versions that matter, read from the installed metadata (no import: fast)
versions() {
    "$py" - <<'PY'
import importlib.metadata as md
names = ("monailabel", "monai", "torch", "torchvision", "pytorch-ignite", "fastapi", "pydicom", "numpy")
print(", ".join(f"{n} {md.version(n)}" for n in names))
PY
}
# after installing: everything the app imports, imports (torch, MONAI, MONAI Label, this bundle's code)
check() {
    "$py" -c "import torch, torchvision, monai, monailabel, monailabel.tasks.infer.bundle, networks, transforms, bundle"
}

# how to start the server: on loopback only (MONAI Label's default host 0.0.0.0 serves the whole network,
# without authentication; the app warns at start when --host is not loopback, docs/monai_label.md#security)
start_hint() {
    echo "[setup-label] start: source $VENV/bin/activate && monailabel start_server --app scripts/monai_label_app" \
        "--studies <folder> --host 127.0.0.1 --port 8000   (keep --host 127.0.0.1: the default 0.0.0.0 is open to the network)"
}

if stamp_is_current && have_all=$(versions 2>/dev/null); then
    echo "[setup-label] $VENV is up to date: $have_all"
    echo "[setup-label] nothing to do (FORCE=1 reinstalls) [$((SECONDS - start)) s]"
    start_hint
    exit 0
fi
rm -f "$stamp"
make_venv

if have torch "$TORCH_VERSION" && have torchvision "$TORCHVISION_VERSION"; then
    echo "[setup-label] torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION already installed"
else
    echo "[setup-label] installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (large download/unpack)"
    pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
write_constraints "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
echo "[setup-label] installing monailabel==$MONAILABEL_VERSION ${PINS[*]} and this bundle (pip install -e .) with torch held"
pip_install -c "$constraints" "monailabel==$MONAILABEL_VERSION" "${PINS[@]}" -e .
if ! have torch "$TORCH_VERSION"; then
    echo "[setup-label] error: torch is no longer $TORCH_VERSION after installing monailabel" >&2
    exit 1
fi
check
echo "[setup-label] ready: $(versions)"
echo "$want" >"$stamp"
echo "[setup-label] done in $((SECONDS - start)) s"
start_hint
