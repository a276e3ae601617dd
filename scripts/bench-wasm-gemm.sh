#!/usr/bin/env bash
# Why crates/vendor/gemm-f32 exists, measured: gemm's wasm micro-kernel as upstream ships it and
# as vendored, side by side in headless Chromium (JSON with GFLOP/s and speed-ups per shape).
# Rerun it when gemm is upgraded: if upstream is as fast, drop the vendored copy.
#   scripts/bench-wasm-gemm.sh [--rounds 7]
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")/gemm-bench
build() { # $1: output name; the rest: extra cargo arguments
  local name=$1
  shift
  (cd crates/vendor/gemm-bench &&
    cargo build -q --release --target wasm32-unknown-unknown --target-dir "$target/$name" "$@")
}
build upstream
build vendored --config 'patch.crates-io.gemm-f32.path="../gemm-f32"'
wasm=wasm32-unknown-unknown/release/gemm_bench.wasm
node scripts/bench-wasm-gemm.mjs "$target/upstream/$wasm" "$target/vendored/$wasm" "$@"
