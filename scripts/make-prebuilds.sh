#!/usr/bin/env bash
# Builds N-API prebuilds with prebuildify into prebuilds/: linux-x64 natively and linux-arm64
# with Debian's cross toolchain (installed by scripts/install-cross.sh when missing).
# The build runs in a scratch copy so that the project's own build/ is never wiped.
#   scripts/make-prebuilds.sh [x64] [arm64]     (default: both)
# `npm pack` and `npm publish` run it (prepack), so a published tarball always carries both.
# PREBUILDS_OUT=dir puts them elsewhere than the project's prebuilds/ (the packaging test).
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)

scratch=$(mktemp -d /tmp/nsjail-node-prebuild.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
cp -r "$project/package.json" "$project/binding.gyp" "$project/src-native" "$scratch/"
ln -s "$project/node_modules" "$scratch/node_modules"

# The node-gyp that npm bundles (npm scripts set npm_config_node_gyp; plain shells do not).
if [ -z "${PREBUILD_NODE_GYP:-}" ]; then
  gyp_js="${npm_config_node_gyp:-$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js}"
  export PREBUILD_NODE_GYP="$gyp_js"
fi
# Headers come from the installed Node (no download): build for the running version.
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
target="$(node -p process.versions.node)"

for arch in "${arches[@]}"; do
  case "$arch" in
    x64)
      (cd "$scratch" && "$project/node_modules/.bin/prebuildify" --napi --strip --arch x64 --target "$target") ;;
    arm64)
      command -v aarch64-linux-gnu-g++ >/dev/null || bash "$project/scripts/install-cross.sh"
      (cd "$scratch" && CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
        PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip "$project/node_modules/.bin/prebuildify" --napi --strip --arch arm64 --target "$target") ;;
    *) echo "make-prebuilds: unknown arch '$arch' (x64 or arm64)" >&2; exit 2 ;;
  esac
  # prebuildify keeps only .node files; the static init helper (init: true) ships beside it.
  cp "$scratch/build/Release/nsjail_node_init" "$scratch/prebuilds/linux-$arch/"
done
out="${PREBUILDS_OUT:-$project/prebuilds}"
mkdir -p "$out"
for arch in "${arches[@]}"; do
  # Replace, never merge: a stale file from an older build must not ship.
  rm -rf "${out:?}/linux-$arch"
  cp -r "$scratch/prebuilds/linux-$arch" "$out/"
  for file in nsjail-node.node nsjail_node_init; do
    [ -s "$out/linux-$arch/$file" ] || { echo "make-prebuilds: $out/linux-$arch/$file is missing" >&2; exit 1; }
  done
done
find "$out" -name '*.node' | sort
