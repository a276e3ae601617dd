#!/usr/bin/env bash
# Runs every test: native (CPU backend), wasm in headless Chromium on WebGPU (SwiftShader), and
# the page end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
target_dir=${CARGO_TARGET_DIR:-target}
native=(--no-default-features --features flex,pytorch)
# Each stage says when it starts: CI has 90 minutes, and its log is how one finds the slow part.
stage() { echo "== $1 (at ${SECONDS} s) =="; }

stage "native tests (CPU)"
cargo test -p smoothgrad "${native[@]}"

stage "wasm tests in headless Chromium on WebGPU"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-1800}
# The site's profile (`web`), the web crate's features, and both crates in ONE cargo call: the
# tests run the wasm that ships, and burn + wgpu compile once (25 min cold on 2 cores), shared by
# both test files and the site build. Two calls compiled them twice (cargo gave the core crate's
# test alone another profile hash for every dependency), and CI ran past its 90 minutes.
cargo test -p smoothgrad -p smoothgrad-web --profile web --target wasm32-unknown-unknown \
  --target-dir "$target_dir/wasm" --no-default-features --features smoothgrad/wgpu,smoothgrad/flex \
  --test webgpu --test web

stage "the page, end to end"
cargo run -q -p smoothgrad "${native[@]}" --example page_reference -- \
  tests/fixtures/narrow_resnet50.safetensors tests/fixtures/chelsea.png > tests/fixtures/page_reference.json
scripts/e2e.sh
stage "done"
