#!/usr/bin/env bash
# Builds what scripts/bench-h100.sh carries to the GPU machine: the native benchmark as shipped
# (.bench/bench) and with burn's autotune (.bench/bench-autotune, native only), the Vulkan loader
# (.gl/) and Captum's wheel (.whl/). All git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .bench .gl .whl /tmp/amd64/partial
# Stripped and gzipped: what travels to the GPU machine is limited to 64 MiB.
build() {
  cargo build --release -p smoothgrad --example bench --no-default-features --features "$1"
  strip -o ".bench/$2" "${CARGO_TARGET_DIR:-target}/release/examples/bench"
  gzip -9f ".bench/$2"
}
build wgpu,flex bench
build wgpu,flex,autotune bench-autotune
apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
# The Vulkan loader and glvnd's libraries, which the NVIDIA ICD loads.
ls .gl/libglvnd0_*.deb >/dev/null 2>&1 || { apt-get "${apt[@]}" update -qq; (cd .gl && apt-get "${apt[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2); }
ls .whl/captum-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: -d .whl captum==0.9.0
