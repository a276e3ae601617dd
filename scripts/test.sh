#!/usr/bin/env bash
# Runs every test: native (CPU backend), wasm in headless Chromium on WebGPU (SwiftShader), and
# the page end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
target_dir=${CARGO_TARGET_DIR:-target}
# Each stage says when it starts: CI has 90 minutes, and its log is how one finds the slow part.
stage() { echo "== $1 (at ${SECONDS} s) =="; }

stage "native tests (CPU)"
cargo test -p smoothgrad --no-default-features --features flex,pytorch

stage "wasm tests: build"
# The site's profile (`web`), both backends, and both crates in ONE cargo call: the tests run
# code compiled as the site's is, and wgpu + CubeCL compile once (25 min cold on 2 cores), shared
# by both test files and the site's WebGPU module (which rebuilds only burn's own crates, without
# the CPU backend). Two calls compiled them twice (cargo gave the core crate's test alone another
# profile hash for every dependency), and CI ran past its 90 minutes.
artifacts=$(mktemp)
cargo test -p smoothgrad -p smoothgrad-web --profile web --target wasm32-unknown-unknown \
  --target-dir "$target_dir/wasm" --no-default-features --features smoothgrad-web/webgpu,smoothgrad-web/cpu \
  --test webgpu --test web --no-run --message-format=json-render-diagnostics > "$artifacts"
test_wasm() { # the built file of test target $1, from cargo's JSON messages
  grep '"kind":\["test"\]' "$artifacts" | grep "\"name\":\"$1\"" | grep -o '"executable":"[^"]*"' |
    cut -d'"' -f4 | grep . || { echo "cargo built no test named $1" >&2; return 1; }
}
webgpu_tests=$(test_wasm webgpu)
web_tests=$(test_wasm web)

# SwiftShader runs tests/webgpu.rs, the longest test (12 min), on one of the two cores: the
# other runs the rest meanwhile. The runner goes straight to the built files (not `cargo test`), so
# the site build's cargo call never waits for another one's lock; from the crate's folder, as cargo
# would run it, where its webdriver.json turns WebGPU on in chromium.
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
# A ceiling for one test file, there to end a hang: tests/webgpu.rs took 12–14 min alone and up to
# 25 min (1520 s) beside the end-to-end tests on 2 cores.
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-2400}
stage "wasm tests in headless Chromium on WebGPU; the page end to end meanwhile"
webgpu_log=$(mktemp)
(cd crates/smoothgrad && exec wasm-bindgen-test-runner "$webgpu_tests") >"$webgpu_log" 2>&1 &
webgpu_run=$!
trap 'kill "$webgpu_run" 2>/dev/null || true' EXIT
status=0
echo "-- crates/smoothgrad-web/tests/web.rs"
(cd crates/smoothgrad-web && exec wasm-bindgen-test-runner "$web_tests") || status=1
scripts/e2e.sh || status=1

stage "tests/webgpu.rs"
wait "$webgpu_run" || status=1
cat "$webgpu_log"
stage "done"
exit $status
