#!/usr/bin/env bash
# Runs every test: native (CPU backend), wasm in headless Chromium on WebGPU (SwiftShader), and
# the page end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
target_dir=${CARGO_TARGET_DIR:-target}
native=(--no-default-features --features flex,pytorch)

echo "== native tests (CPU) =="
cargo test -p smoothgrad "${native[@]}"

echo "== wasm tests in headless Chromium on WebGPU =="
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-1800}
# The site's profile (`web`) and the web crate's features everywhere: the tests run the wasm that
# ships, and the site build reuses these artifacts.
wasm=(--profile web --target wasm32-unknown-unknown --target-dir "$target_dir/wasm")
cargo test -p smoothgrad "${wasm[@]}" --no-default-features --features wgpu,flex --test webgpu
cargo test -p smoothgrad-web "${wasm[@]}" --tests

echo "== the page, end to end =="
cargo run -q -p smoothgrad "${native[@]}" --example page_reference -- \
  tests/fixtures/narrow_resnet50.safetensors tests/fixtures/chelsea.png > tests/fixtures/page_reference.json
scripts/e2e.sh
