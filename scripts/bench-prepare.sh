#!/usr/bin/env bash
# Builds what scripts/bench-h100.sh carries to the GPU machine: the native benchmark as shipped
# (.bench/bench), with burn's autotune (.bench/bench-autotune, native only) and with cubek's
# matrix-product strategy chosen at run time (.bench/bench-matmul, through
# scripts/bench-matmul-strategy.patch), the Vulkan loader (.gl/) and Captum's wheel (.whl/).
# All git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .bench .gl .whl /tmp/amd64/partial
# Stripped and gzipped: what travels to the GPU machine is limited to 64 MiB.
build() { # $1: features, $2: output name; the rest: extra cargo arguments
  local features=$1 name=$2
  shift 2
  cargo build --release -p smoothgrad --example bench --no-default-features --features "$features" "$@"
  strip -o ".bench/$name" "${CARGO_TARGET_DIR:-target}/release/examples/bench"
  gzip -9f ".bench/$name"
}
build wgpu,flex bench
build wgpu,flex,autotune bench-autotune
# A patched copy of the locked cubek-matmul (cargo says where its source is), named after the
# patch's hash: its path gives its artifacts their own hashes, so the two builds above stay fresh
# in the same target dir.
source=$(dirname "$(cargo metadata --format-version 1 | python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cubek-matmul"))')")
patched=$PWD/.bench-src/$(basename "$source")-$(sha256sum scripts/bench-matmul-strategy.patch | cut -c1-12)
if [ ! -d "$patched" ]; then
  rm -rf .bench-src && mkdir -p .bench-src
  cp -r "$source" "$patched"
  patch -d "$patched" -p1 --quiet < scripts/bench-matmul-strategy.patch ||
    { echo "scripts/bench-matmul-strategy.patch no longer applies to $(basename "$source")" >&2; exit 1; }
fi
# The patch rewrites Cargo.lock's entry for the crate: put the shipped lock back however the build ends.
cp Cargo.lock .bench-src/Cargo.lock
trap 'mv .bench-src/Cargo.lock Cargo.lock' EXIT
build wgpu,flex bench-matmul --config "patch.crates-io.cubek-matmul.path=\"$patched\""
apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
# The Vulkan loader and glvnd's libraries, which the NVIDIA ICD loads.
ls .gl/libglvnd0_*.deb >/dev/null 2>&1 || { apt-get "${apt[@]}" update -qq; (cd .gl && apt-get "${apt[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2); }
ls .whl/captum-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: -d .whl captum==0.9.0
