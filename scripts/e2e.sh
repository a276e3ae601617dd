#!/usr/bin/env bash
# End-to-end tests of the page (tests/e2e/*.test.mjs) in headless Debian chromium on WebGPU
# (SwiftShader) and on the CPU backend, against a freshly built site (scripts/build-site.sh).
# E2E_SKIP_BUILD=1 reuses the existing dist/. Screenshots go to tests/e2e/output/.
set -euo pipefail
cd "$(dirname "$0")/.."

{ command -v node && command -v npm; } >/dev/null 2>&1 || scripts/apt-install.sh nodejs npm
scripts/setup.sh --browser # chromium (never a browser downloaded by Playwright)
# --omit=optional: TF.js, which only the benchmark uses (300 MB). binaryen before the site's build,
# which optimises the relaxed SIMD module with it.
{ [ -d node_modules/playwright-core ] && [ -d node_modules/binaryen ]; } || npm ci --no-audit --no-fund --omit=optional

# The numbers the page must show, computed natively (CPU backend) by this checkout's code every
# time: a copy kept from before a change to the maths would test the page against old numbers.
cargo run -q -p smoothgrad --no-default-features --features flex,pytorch --example page_reference -- \
  tests/fixtures/narrow_resnet50.safetensors tests/fixtures/chelsea.png > tests/fixtures/page_reference.json

site=${E2E_SITE:-dist}
[ "${E2E_SKIP_BUILD:-0}" = 1 ] || scripts/build-site.sh "$site"
export E2E_SITE=$site

status=0
for test in tests/e2e/*.test.mjs; do
  echo "== $test =="
  start=$(date +%s)
  node --test "$test" || status=1
  echo "== $test: $(( $(date +%s) - start )) s =="
done
exit $status
