#!/usr/bin/env bash
# Runs every test: native (CPU backend) and in headless Chromium on WebGPU (SwiftShader).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser

echo "== native tests (CPU) =="
cargo test --workspace --no-default-features --features smoothgrad/flex,smoothgrad/pytorch

echo "== wasm tests in headless Chromium on WebGPU =="
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}
cargo test -p smoothgrad --profile wasm-test --target wasm32-unknown-unknown \
  --target-dir "${CARGO_TARGET_DIR:-target}/wasm" --no-default-features --features wgpu --test webgpu
