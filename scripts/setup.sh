#!/usr/bin/env bash
# Installs what building and testing need, on a fresh Debian machine; skips what is present.
# Usage: scripts/setup.sh [--browser]   (--browser: chromium + chromedriver for the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# wasm-bindgen's CLI must be exactly the version the lockfile pins for the library.
wanted=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wanted" ]; then
  # Not --locked: its lockfile names a crate the registry mirror lacks.
  cargo install wasm-bindgen-cli --version "$wanted"
fi

# Debian's packages: binaryen's wasm-opt for the site's wasm (scripts/build-site.sh), chromium for
# the tests.
packages=()
have wasm-opt || packages+=(binaryen)
if [ "${1:-}" = "--browser" ] && ! { have chromium && have chromedriver; }; then
  packages+=(chromium chromium-driver)
fi
[ ${#packages[@]} = 0 ] || scripts/apt-install.sh "${packages[@]}"
