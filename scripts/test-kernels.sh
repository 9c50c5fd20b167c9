#!/usr/bin/env bash
# npm run test:kernels: the kernel-facing test program (test/kernels/guest-test.js) on real
# kernels other than this machine's, under qemu's software emulation (no KVM needed):
#   x86_64  Debian bookworm's 6.1 LTS kernel; the host's / shared read-only over virtio-9p
#           (tmpfs overlay on top), so the guest runs this Node and this worktree's build/.
#   arm64   Debian bookworm's arm64 kernel on qemu-system-aarch64 -M virt; an arm64 userland
#           with Debian's nodejs unpacked by debootstrap (first stage only: nothing of it runs
#           on the host, binfmt_misc is not touched), and this package's linux-arm64 prebuild
#           installed into it from `npm pack` with scripts disabled.
# Both boot a busybox-static initramfs that loads virtio, 9p, overlay and veth from the
# unpacked kernel package and mount a pure cgroup v2 hierarchy (test/kernels/init.sh,
# test/kernels/stage2.sh). Everything it downloads is Debian's, through apt-get and
# debootstrap, into a cache it owns ($NSJAIL_KERNELS_CACHE, default .cache/kernels).
#   scripts/test-kernels.sh [x86_64] [arm64]      (default: both)
# NSJAIL_KERNELS_ONLY=regex (no spaces) runs only the guest checks whose names match;
# NSJAIL_KERNELS_NODE_FLAGS (no spaces inside a flag) are given to the guest's node, e.g.
# --no-sparkplug to tell a fault in V8's baseline code from one elsewhere;
# NSJAIL_KERNELS_ARM64_CPU picks the emulated arm64 CPU (default
# max,pauth-impdef=on,sve=off,sme=off: the newest architecture features, pointer
# authentication included, without the scalable vector extensions; cortex-a57 has none).
# Why no SVE: with it the guest's glibc (2.36) copies memory with its SVE functions
# (__memcpy_sve, __memmove_sve, __memset_sve_zva64), and the guest's Node died of SIGILL in
# V8's generated (Sparkplug) code in some runs, at the same offset each time; it passes with
# sve=off, kernel arm64.nosve, cortex-a76/a57 or node --no-sparkplug, and still fails with
# pauth=off, -smp 1 and with every clone fork-like. libnode and the addon have no SVE code:
# the fault is in the emulated SVE path (qemu 7.2 under the 6.1 kernel), not the addon.
# NSJAIL_KERNELS_ARM64_CPU=max,pauth-impdef=on brings SVE back; a guest that dies of a
# signal prints the kernel's fault lines and the code bytes at pc (stage2.sh, guest-core.js).
# Prints each guest's `N passed, N failed`, boot and run times; exits non-zero on any failure.
# Every qemu runs under timeout (x86_64 450 s, arm64 660 s; NSJAIL_KERNELS_QEMU_TIMEOUT), so
# that a guest that hangs fails the run instead of holding it.
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
cache=${NSJAIL_KERNELS_CACHE:-$project/.cache/kernels}
mirror=${NSJAIL_KERNELS_MIRROR:-http://deb.debian.org/debian}
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 arm64)
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$cache"
only=${NSJAIL_KERNELS_ONLY:+KERNEL_TEST_ONLY=$NSJAIL_KERNELS_ONLY}
node_flags=${NSJAIL_KERNELS_NODE_FLAGS:-}

say() { echo "test-kernels: $*"; }
die() { echo "test-kernels: $*" >&2; exit 2; }
now() { date +%s; }

# Host tools, from Debian's packages; a package that cannot be had ends the run at once.
need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} (apt-get)"
  if ! timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1; then
    timeout 300 apt-get update -q >>"$cache/apt.log" 2>&1 || true
    timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$cache/apt.log" 2>&1 ||
      die "cannot install ${missing[*]} with apt-get (log: $cache/apt.log): $(tail -n 3 "$cache/apt.log" | tr '\n' ' ')"
  fi
}

# The modules (and what they depend on) for the initramfs, in load order, from a kernel
# package unpacked into $1 (version $2); built-in ones are skipped.
module_files() {
  local root=$1 version=$2 m
  shift 2
  for m in "$@"; do
    modprobe -d "$root" -S "$version" --show-depends "$m" ||
      die "module $m not found in $root/lib/modules/$version"
  done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

# initramfs: busybox-static ($1), its /init and the stage2 of the switched-to root, the
# modules, and the test's settings ($5). Written to $2.
make_initramfs() {
  local busybox=$1 out=$2 kroot=$3 version=$4 envfile=$5 dir f
  dir=$(mktemp -d "$cache/initramfs.XXXXXX")
  mkdir -p "$dir/bin" "$dir/modules"
  cp "$busybox" "$dir/bin/busybox"
  cp "$project/test/kernels/init.sh" "$dir/init"
  cp "$project/test/kernels/stage2.sh" "$dir/stage2.sh"
  cp "$envfile" "$dir/test.env"
  chmod 755 "$dir/init"
  : >"$dir/modules.list"
  while read -r f; do
    cp "$f" "$dir/modules/"
    basename "$f" >>"$dir/modules.list"
  done < <(module_files "$kroot" "$version" virtio_pci 9pnet_virtio 9p overlay veth)
  [ -s "$dir/modules.list" ] || die "no modules found for the initramfs in $kroot"
  (cd "$dir" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$out")
  rm -rf "$dir"
}

# Unpacks a kernel .deb ($1) into $2 (not installed) and indexes its modules; prints its version.
unpack_kernel() {
  local deb=$1 root=$2 version
  if [ ! -e "$root/.unpacked" ]; then
    rm -rf "$root"
    dpkg-deb -x "$deb" "$root" || die "cannot unpack $deb"
    version=$(ls "$root/lib/modules")
    depmod -b "$root" "$version" || die "depmod failed for $root"
    touch "$root/.unpacked"
  fi
  ls "$root/lib/modules"
}

# Boots one guest under timeout; its console goes to the terminal and to $log.
# Returns the test's status (KERNEL-TEST-RC), or 3 when the guest never reported one.
boot() {
  local name=$1 log=$2 limit=$3
  shift 3
  local start end rc
  start=$(now)
  say "$name: booting ($*)"
  set +e
  timeout -k 10 "$limit" "$@" </dev/null 2>&1 | tee "$log" | grep --line-buffered -v -e '^\s*$' -e 'KERNEL-TEST-BOOTED' -e 'KERNEL-TEST-RUNTIME'
  local qemu_rc=${PIPESTATUS[0]}
  set -e
  end=$(now)
  local booted run
  booted=$(sed -n 's/.*KERNEL-TEST-BOOTED uptime=\([0-9.]*\).*/\1/p' "$log" | head -n 1)
  run=$(sed -n 's/.*KERNEL-TEST-RUNTIME start=\([0-9.]*\) end=\([0-9.]*\).*/\1 \2/p' "$log" | head -n 1)
  rc=$(sed -n 's/.*KERNEL-TEST-RC=\([0-9]*\).*/\1/p' "$log" | head -n 1)
  local counts
  counts=$(grep -o '[0-9]* passed, [0-9]* failed' "$log" | tail -n 1 || true)
  summary+=("$name: ${counts:-no result} (kernel $(sed -n 's/.*kernel=\([^ ]*\).*/\1/p' "$log" | head -n 1); boot to userland ${booted:-?} s of guest time, test $(echo "$run" | awk '{ if (NF == 2) printf "%.0f", $2 - $1; else printf "?" }') s, qemu $((end - start)) s wall)")
  if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    say "$name: qemu killed after ${limit} s (timeout); log: $log"
    return 3
  fi
  if grep -q 'KERNEL-TEST-INIT-FAILED' "$log"; then
    say "$name: the guest's init failed: $(sed -n 's/.*KERNEL-TEST-INIT-FAILED: //p' "$log" | head -n 1); log: $log"
    return 3
  fi
  [ -n "$rc" ] || { say "$name: the guest reported no result (qemu status $qemu_rc); log: $log"; return 3; }
  return "$rc"
}

# ---------------------------------------------------------------------------------------

run_x86_64() {
  need_packages qemu-system-x86 busybox-static kmod
  [ -e "$project/build/Release/nsjail_node.node" ] && [ -e "$project/dist/index.js" ] ||
    die "x86_64 needs the built addon and dist/ (npm install)"
  local dir=$cache/amd64 pkg deb version
  mkdir -p "$dir/debs"
  # The kernel bookworm's linux-image-amd64 points at (6.1 LTS), from bookworm or its updates.
  # NSJAIL_KERNELS_AMD64_KERNEL names another linux-image package apt can get.
  pkg=${NSJAIL_KERNELS_AMD64_KERNEL:-$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n 1)}
  [ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 (apt-get update?)"
  case "$pkg" in linux-image-6.1.*) ;; *) say "note: linux-image-amd64 is $pkg here, not a 6.1 kernel" ;; esac
  deb=$(ls "$dir/debs/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    say "x86_64: apt-get download $pkg"
    (cd "$dir/debs" && timeout 600 apt-get download -q "$pkg" >"$dir/download.log" 2>&1) ||
      die "cannot download $pkg: $(tail -n 3 "$dir/download.log" | tr '\n' ' ')"
    deb=$(ls "$dir/debs/${pkg}_"*.deb | head -n 1)
  fi
  version=$(unpack_kernel "$deb" "$dir/$pkg")
  cat >"$dir/test.env" <<EOF
TEST_DIR='$project'
TEST_TIMEOUT=${NSJAIL_KERNELS_TEST_TIMEOUT:-360}
TEST_COMMAND='env $only NSJAIL_NODE_ADDON=$project/build/Release/nsjail_node.node $(command -v node) $node_flags test/kernels/guest-test.js $project'
EOF
  make_initramfs "$(command -v busybox)" "$dir/initramfs.gz" "$dir/$pkg" "$version" "$dir/test.env"
  boot x86_64 "$dir/console.log" "${NSJAIL_KERNELS_QEMU_TIMEOUT:-450}" \
    qemu-system-x86_64 -accel tcg,thread=multi -M pc -cpu max -smp 2 -m 1536 -nographic -no-reboot -nic none \
    -kernel "$dir/$pkg/boot/vmlinuz-$version" -initrd "$dir/initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init" \
    -virtfs "local,path=/,mount_tag=shared,security_model=none,readonly=on,multidevs=remap"
}

run_arm64() {
  need_packages qemu-system-arm debootstrap kmod busybox-static
  local dir=$cache/arm64 rootfs version kdeb
  rootfs=$dir/rootfs
  mkdir -p "$dir"
  if [ ! -e "$dir/.debootstrap-done" ]; then
    rm -rf "$rootfs" "$dir/.rootfs-done"
    say "arm64: debootstrap --foreign --arch=arm64 bookworm (download and unpack only)"
    timeout 1800 debootstrap --foreign --arch=arm64 --variant=minbase --include=nodejs,busybox-static,linux-image-arm64 \
      bookworm "$rootfs" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
      die "debootstrap failed (log: $dir/debootstrap.log): $(tail -n 3 "$dir/debootstrap.log" | tr '\n' ' ')"
    touch "$dir/.debootstrap-done"
  fi
  if [ ! -e "$dir/.rootfs-done" ]; then
    # The first stage unpacks only the essential packages; the rest (nodejs and its
    # libraries) are unpacked here, the kernel beside the tree. No maintainer script runs.
    local deb
    mkdir -p "$dir/debs"
    for deb in "$rootfs"/var/cache/apt/archives/*.deb; do
      case "$(basename "$deb")" in
        linux-image-[0-9]*) cp "$deb" "$dir/debs/" ;;
        linux-image-*) ;;
        *) dpkg-deb -x "$deb" "$rootfs" ;;
      esac
    done
    ls "$dir"/debs/linux-image-[0-9]*.deb >/dev/null 2>&1 || die "debootstrap fetched no linux-image package"
    [ -x "$rootfs/usr/bin/node" ] || die "no usr/bin/node in the arm64 tree (nodejs not unpacked)"
    touch "$dir/.rootfs-done"
  fi
  kdeb=$(ls "$dir"/debs/linux-image-[0-9]*.deb | head -n 1)
  local kname
  kname=$(basename "$kdeb" .deb)
  version=$(unpack_kernel "$kdeb" "$dir/$kname")

  # The package as users get it: the linux-arm64 prebuild, packed, installed with scripts off.
  if [ ! -e "$project/prebuilds/linux-arm64/nsjail-node.node" ] ||
    [ -n "$(find "$project/src-native" "$project/binding.gyp" -newer "$project/prebuilds/linux-arm64/nsjail-node.node" | head -n 1)" ]; then
    say "arm64: building the linux-arm64 prebuild (scripts/make-prebuilds.sh arm64)"
    bash "$project/scripts/make-prebuilds.sh" arm64
  fi
  local app=$rootfs/opt/kernel-test pack
  pack=$(mktemp -d "$cache/pack.XXXXXX")
  (cd "$project" && npm pack --ignore-scripts --silent --pack-destination "$pack" >/dev/null)
  rm -rf "$app" && mkdir -p "$app/test/kernels"
  echo '{"name":"kernel-test","version":"1.0.0","private":true}' >"$app/package.json"
  (cd "$app" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline --silent "$pack"/nsjail-node-*.tgz) ||
    die "npm install of the packed tarball failed"
  rm -rf "$pack"
  [ -e "$app/node_modules/nsjail-node/prebuilds/linux-arm64/nsjail-node.node" ] || die "the tarball has no linux-arm64 prebuild"
  [ ! -e "$app/node_modules/nsjail-node/build" ] || die "the installed package has a build/ (scripts ran?)"
  cp "$project"/test/kernels/guest-*.js "$app/test/kernels/"
  cat >"$dir/test.env" <<EOF
TEST_DIR=/opt/kernel-test
TEST_TIMEOUT=${NSJAIL_KERNELS_TEST_TIMEOUT:-540}
TEST_COMMAND='env $only /usr/bin/node $node_flags test/kernels/guest-test.js /opt/kernel-test/node_modules/nsjail-node'
EOF
  make_initramfs "$rootfs/bin/busybox" "$dir/initramfs.gz" "$dir/$kname" "$version" "$dir/test.env"
  boot arm64 "$dir/console.log" "${NSJAIL_KERNELS_QEMU_TIMEOUT:-660}" \
    qemu-system-aarch64 -accel tcg,thread=multi -M virt -cpu "${NSJAIL_KERNELS_ARM64_CPU:-max,pauth-impdef=on,sve=off,sme=off}" -smp 2 -m 1536 \
    -nographic -no-reboot -nic none \
    -kernel "$dir/$kname/boot/vmlinuz-$version" -initrd "$dir/initramfs.gz" \
    -append "console=ttyAMA0 panic=-1 quiet loglevel=3 rdinit=/init" \
    -virtfs "local,path=$rootfs,mount_tag=shared,security_model=none,readonly=on,multidevs=remap"
}

summary=()
failed=0
total_start=$(now)
for arch in "${arches[@]}"; do
  case "$arch" in
    x86_64 | x64 | amd64) run_x86_64 || failed=1 ;;
    arm64 | aarch64) run_arm64 || failed=1 ;;
    *) die "unknown guest '$arch' (x86_64 or arm64)" ;;
  esac
done
echo
for line in "${summary[@]}"; do say "$line"; done
say "total $(($(now) - total_start)) s"
exit "$failed"
