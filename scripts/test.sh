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

# The wasm build is the longest step, and much of it (fat LTO of each test binary) keeps one core
# busy: it runs in the background while the native tests build and run on the other.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-1800}
# The site's profile (`web`), the web crate's features, and both crates in ONE cargo call: the
# tests run the wasm that ships, and burn + wgpu compile once (25 min cold on 2 cores), shared by
# both test files and the site build. Two calls compiled them twice (cargo gave the core crate's
# test alone another profile hash for every dependency), and CI ran past its 90 minutes.
wasm=(test -p smoothgrad -p smoothgrad-web --profile web --target wasm32-unknown-unknown
  --target-dir "$target_dir/wasm" --no-default-features --features smoothgrad/wgpu,smoothgrad/flex
  --test webgpu --test web)
wasm_log=$(mktemp)
cargo "${wasm[@]}" --no-run >"$wasm_log" 2>&1 &
wasm_build=$!
trap 'kill "$wasm_build" 2>/dev/null || true' EXIT

stage "native tests (CPU), the wasm tests building meanwhile"
cargo test -p smoothgrad "${native[@]}"
# The numbers the page must show, computed natively, for the end-to-end tests.
cargo run -q -p smoothgrad "${native[@]}" --example page_reference -- \
  tests/fixtures/narrow_resnet50.safetensors tests/fixtures/chelsea.png > tests/fixtures/page_reference.json

stage "waiting for the wasm build"
wasm_built=0
wait "$wasm_build" || wasm_built=$?
cat "$wasm_log"
[ "$wasm_built" = 0 ] || exit "$wasm_built"

stage "wasm tests in headless Chromium on WebGPU"
cargo "${wasm[@]}"

stage "the page, end to end"
scripts/e2e.sh
stage "done"
