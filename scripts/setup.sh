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

if [ "${1:-}" = "--browser" ] && ! { have chromium && have chromedriver; }; then
  apt_install=(apt-get install -y --no-install-recommends chromium chromium-driver)
  [ "$(id -u)" = 0 ] || apt_install=(sudo "${apt_install[@]}")
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  DEBIAN_FRONTEND=noninteractive "${apt_install[@]}"
fi
