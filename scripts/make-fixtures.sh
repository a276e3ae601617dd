#!/usr/bin/env bash
# Regenerate the reference fixtures in tests/fixtures/ (see scripts/make_fixtures.py).
#
# Usage:  scripts/make-fixtures.sh [extra make_fixtures.py args, e.g. --with-broken]
#
# Environment:
#   FIXTURE_VENV       venv to use/create (default: ${XDG_CACHE_HOME:-$HOME/.cache}/saliency-fixtures-venv;
#                      must be outside the repository)
#   FIXTURE_OUT        output directory (default: <repo>/tests/fixtures)
#   PYTHON             interpreter used to create the venv (default: python3)
#   FIXTURE_TORCH_INDEX_URL  optional pip index for torch/torchvision, e.g.
#                      https://download.pytorch.org/whl/cpu (avoids the multi-GB CUDA wheels;
#                      the fixtures are computed on the CPU either way)
#
# Packages are only installed when one of them is missing from the venv. The
# fixtures were generated with torch 2.15.0, torchvision 0.29.2, captum 0.9.0,
# Pillow 13.0.0, numpy 2.4.6, safetensors 0.8.0, scikit-image 0.26.0 (the exact
# versions used are recorded in tests/fixtures/manifest.json).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${FIXTURE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/saliency-fixtures-venv}"
out="${FIXTURE_OUT:-$repo/tests/fixtures}"
python="${PYTHON:-python3}"

abspath() { realpath -m "$1" 2>/dev/null || "$python" -c 'import os,sys; print(os.path.realpath(sys.argv[1]))' "$1"; }
venv_abs="$(abspath "$venv")"
repo_abs="$(abspath "$repo")"
case "$venv_abs/" in
  "$repo_abs"/*) echo "error: FIXTURE_VENV ($venv_abs) must be outside the repository" >&2; exit 1 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  echo ">> creating venv $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"

# requirement spec per importable module ("pinned-ish": known-good major/minor ranges)
missing="$("$py" - <<'PYEOF'
import importlib.util
reqs = {
    "torch": "torch>=2.2,<3",
    "torchvision": "torchvision>=0.17,<1",
    "captum": "captum>=0.7,<0.10",
    "safetensors": "safetensors>=0.4,<1",
    "skimage": "scikit-image>=0.22,<1",
    "PIL": "pillow>=10",
    "numpy": "numpy>=1.24",
}
print(" ".join(spec for mod, spec in reqs.items() if importlib.util.find_spec(mod) is None))
PYEOF
)"

if [ -n "$missing" ]; then
  echo ">> installing into $venv: $missing"
  "$py" -m pip install --upgrade pip >/dev/null
  torch_pkgs=()
  other_pkgs=()
  for spec in $missing; do
    case "$spec" in
      torch*) torch_pkgs+=("$spec") ;;
      *) other_pkgs+=("$spec") ;;
    esac
  done
  if [ ${#torch_pkgs[@]} -gt 0 ]; then
    if [ -n "${FIXTURE_TORCH_INDEX_URL:-}" ]; then
      "$py" -m pip install --index-url "$FIXTURE_TORCH_INDEX_URL" "${torch_pkgs[@]}"
    else
      "$py" -m pip install "${torch_pkgs[@]}"
    fi
  fi
  if [ ${#other_pkgs[@]} -gt 0 ]; then
    "$py" -m pip install "${other_pkgs[@]}"
  fi
fi

# CPU only, single-threaded, reproducible.
export CUDA_VISIBLE_DEVICES=""
export PYTHONHASHSEED=0
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"

mkdir -p "$out"
echo ">> writing fixtures to $out"
exec "$py" "$here/make_fixtures.py" --out "$out" "$@"
