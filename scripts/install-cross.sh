#!/usr/bin/env bash
# Installs Debian's aarch64 cross compiler (for the linux-arm64 prebuild). Idempotent.
set -euo pipefail
command -v aarch64-linux-gnu-g++ >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq g++-aarch64-linux-gnu >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq g++-aarch64-linux-gnu; }
