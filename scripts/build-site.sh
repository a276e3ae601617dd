#!/usr/bin/env bash
# Builds the static site into dist/ (or $1): index.html, www/ and the wasm package in www/pkg/.
# Any static host serves dist/ as it is; weights/*.safetensors are copied in when present.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
scripts/setup.sh

target_dir=${CARGO_TARGET_DIR:-target}/wasm
cargo build -p smoothgrad-web --profile web --target wasm32-unknown-unknown --target-dir "$target_dir"

rm -rf "$out"
mkdir -p "$out"
cp index.html "$out/"
cp -r www "$out/www"
rm -rf "$out/www/pkg"
wasm="$target_dir/wasm32-unknown-unknown/web/smoothgrad_web.wasm"
# Debian's binaryen (scripts/setup.sh installs it): a smaller, faster module (35 → 24 MB). Before
# wasm-bindgen, not after: run on wasm-bindgen's output, wasm-opt 108 breaks its externref table
# ("Table.set(): Argument 1 is invalid"). Optional: the site works without it.
# It takes minutes, so its output is kept beside cargo's under the hash of its input, not by date:
# cargo gives an artifact it reuses (another checkout's, say) its old date.
if command -v wasm-opt >/dev/null 2>&1; then
  optimised="$target_dir/wasm-opt/$(sha256sum "$wasm" | cut -c1-32).wasm"
  if ! [ -s "$optimised" ]; then
    rm -rf "$target_dir/wasm-opt" && mkdir -p "$target_dir/wasm-opt"
    wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types "$wasm" -o "$optimised.part"
    mv "$optimised.part" "$optimised"
  fi
  wasm=$optimised
fi
wasm-bindgen --target web --no-typescript --out-dir "$out/www/pkg" --out-name smoothgrad_web "$wasm"
if compgen -G "weights/*.safetensors" >/dev/null; then
  mkdir -p "$out/weights" && cp weights/*.safetensors "$out/weights/"
fi
echo "site built in $out/ ($(du -h "$out/www/pkg/smoothgrad_web_bg.wasm" | cut -f1) of wasm)"
