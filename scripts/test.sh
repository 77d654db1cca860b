#!/usr/bin/env bash
# Build and run every test. GPU tests run on Mesa's lavapipe (a Vulkan driver on the CPU) where
# no GPU exists; this installs it on Debian/Ubuntu when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] && [ ! -e /usr/share/vulkan/icd.d/lvp_icd.json ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    echo "note: lavapipe (mesa-vulkan-drivers) not found; GPU tests need a Vulkan adapter" >&2
  fi
fi
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
  # nextest does not run documentation examples; they are tests too.
  if [ "$#" -eq 0 ]; then cargo test --doc; fi
else
  cargo test --no-fail-fast "$@"
fi
