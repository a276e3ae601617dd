#!/usr/bin/env bash
# Speed, one command: the native benchmark (ResNet-50 224×224 fp32, forward, forward+backward,
# SmoothGrad-50 at micro-batches 1/10/25/50) beside the same work in PyTorch eager and Captum on
# this machine, as JSON with the ratios project / PyTorch.
# Usage: scripts/bench.sh [wgpu|flex] [scripts/bench.py options, e.g. --runs 3 --device cpu]
# PYTHON names an interpreter with torch + torchvision (+ captum); default python3.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-wgpu}
shift || true
cargo build --release -q -p smoothgrad --example bench --no-default-features --features wgpu,flex
"${PYTHON:-python3}" scripts/bench.py \
  --project "${CARGO_TARGET_DIR:-target}/release/examples/bench --backend $backend" "$@"
