#!/usr/bin/env bash
# Builds the static site (scripts/build-site.sh) and serves it on http://127.0.0.1:${PORT:-8000}/.
# Open the printed URL in a browser with WebGPU (Chrome/Edge 113+, Safari 26, Firefox 141+ on
# Windows); elsewhere the page runs on the CPU inside WebAssembly. Ctrl+C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-8000}

command -v python3 >/dev/null 2>&1 || scripts/apt-install.sh python3

scripts/build-site.sh dist

if ! compgen -G "dist/weights/*.safetensors" >/dev/null; then
  echo "No weights/resnet50.safetensors here: the page downloads ResNet-50 from the Hugging Face hub"
  echo "(and caches it). To self-host them instead: scripts/fetch-weights.sh, then run this again."
fi
echo
echo "SmoothGrad demo: http://127.0.0.1:${port}/"
echo
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory dist
