#!/usr/bin/env bash
# Builds the static site into dist/ (or $1): index.html, www/ and the wasm modules in www/pkg/
# (www/wasm-modules.js names them).
# Any static host serves dist/ as it is; weights/*.safetensors are copied in when present.
# WASM_NAMES=1 keeps the functions' names in the modules (the same code, 0.3 MB more of CPU
# module): for profiles that name what runs (scripts/profile-cpu.mjs), not for a site to serve.
set -euo pipefail
# Also inside $(module …): without it a failed cargo build there went unnoticed, and the site
# was built with the module of the build before.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
# `npm run` puts node_modules/.bin first on PATH: its wasm-opt (npm's binaryen, a slower build in
# JS) is for the relaxed SIMD module alone, named below, not for setup.sh or the other modules.
PATH=$(tr : '\n' <<<"$PATH" | grep -v '/node_modules/\.bin$' | paste -sd: -)
out=${1:-dist}
scripts/setup.sh

target_dir=${CARGO_TARGET_DIR:-target}
names=
[ "${WASM_NAMES:-0}" = 1 ] && names=1

# Builds one wasm module and prints its path: $1 cargo's target directory, $2 the module's
# features (crates/smoothgrad-site), $3 the wasm-opt to run on it (empty: none), $4… more of
# wasm-opt's --enable-* flags.
module() {
  local dir=$1
  cargo build -p smoothgrad-site --profile web --target wasm32-unknown-unknown --target-dir "$dir" --no-default-features --features "$2" >&2
  local wasm="$dir/wasm32-unknown-unknown/web/smoothgrad_site.wasm"
  # binaryen's wasm-opt: a smaller, faster module (WebGPU's 35 → 24 MB on 2026-11-27). Before
  # wasm-bindgen, not after: run on wasm-bindgen's output, wasm-opt 108 breaks its externref table
  # ("Table.set(): Argument 1 is invalid"). Optional: the site works without it.
  # It takes minutes, so its output is kept beside cargo's under the hash of its input, not by
  # date: cargo gives an artifact it reuses (another checkout's, say) its old date.
  if [ -n "$3" ]; then
    local kept="$dir/wasm-opt${names:+-names}"
    local optimised
    optimised="$kept/$(sha256sum "$wasm" | cut -c1-32).wasm"
    if ! [ -s "$optimised" ]; then
      rm -rf "$kept" && mkdir -p "$kept"
      "$3" -O3 ${names:+-g} --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals --enable-reference-types "${@:4}" "$wasm" -o "$optimised.part" >&2
      mv "$optimised.part" "$optimised"
    fi
    wasm=$optimised
  fi
  echo "$wasm"
}
# Debian's (scripts/setup.sh installs it) for the WebGPU and plain CPU modules.
wasm_opt=$(command -v wasm-opt || true)
# The relaxed SIMD module: Debian bookworm's wasm-opt, 108, cannot parse its instructions, so it
# takes npm's build of binaryen (package.json; `npm ci` installs it, as the tests do). Without
# it, the module is served as cargo built it: 17 % bigger and 1–2 % slower (2026-12-07).
wasm_opt_relaxed=
[ -x node_modules/.bin/wasm-opt ] && command -v node >/dev/null 2>&1 && wasm_opt_relaxed=node_modules/.bin/wasm-opt
# WebGPU alone, in the wasm tests' target directory (scripts/test.sh): wgpu and CubeCL are built
# once for both, and only burn's own crates again without the CPU backend (2 min on 2 cores).
webgpu=$(module "$target_dir/wasm" webgpu "$wasm_opt")
# The CPU backend alone, each build in a target directory of its own: cargo names a path crate's
# cdylib without a hash, so two feature sets in one directory would overwrite each other's module.
cpu=$(module "$target_dir/wasm-cpu" cpu "$wasm_opt")
cpu_relaxed_simd=$(module "$target_dir/wasm-cpu-relaxed-simd" cpu-relaxed-simd "$wasm_opt_relaxed" --enable-relaxed-simd)
[ -n "$wasm_opt_relaxed" ] || echo "no node_modules/.bin/wasm-opt (npm ci): the relaxed SIMD module is not optimised" >&2

# The old site stays whole until the modules are built.
rm -rf "$out"
mkdir -p "$out"
cp index.html "$out/"
cp -r www "$out/www"
rm -rf "$out/www/pkg"
# $1 the module's name, $2 its wasm.
bind() {
  wasm-bindgen --target web --no-typescript --out-dir "$out/www/pkg" --out-name "$1" "$2"
  echo "$1: $(du -h "$out/www/pkg/$1_bg.wasm" | cut -f1) of wasm"
}
bind smoothgrad_web "$webgpu"
bind smoothgrad_web_cpu "$cpu"
bind smoothgrad_web_cpu_relaxed_simd "$cpu_relaxed_simd"
if compgen -G "weights/*.safetensors" >/dev/null; then
  mkdir -p "$out/weights" && cp weights/*.safetensors "$out/weights/"
fi
echo "site built in $out/"
