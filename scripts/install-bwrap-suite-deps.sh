#!/bin/sh
# Install what bubblewrap's test suite needs beyond a shell (scripts/conformance-bwrap.sh):
# python3 with the seccomp and tap modules (test-seccomp.py), gcc (try-syscall.c), capsh and
# getpcaps (libcap2-bin), findmnt (mount), strace is optional (one point skips without it).
# Debian/Ubuntu only; idempotent: installs only what is missing, `apt-get update` only when
# the package index does not know a package yet.
set -eu
export DEBIAN_FRONTEND=noninteractive
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
if ! have apt-get || ! have dpkg-query; then
  echo "install-bwrap-suite-deps: not a Debian-like system; install python3-seccomp, python3-tap, gcc and libcap2-bin yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then SUDO="sudo -n"; else echo "install-bwrap-suite-deps: not root and no sudo" >&2; exit 1; fi
fi
pkgs=""
for p in python3 python3-seccomp python3-tap gcc libc6-dev libcap2-bin; do
  installed "$p" || pkgs="$pkgs $p"
done
[ -z "$pkgs" ] && { echo "install-bwrap-suite-deps: all present"; exit 0; }
echo "install-bwrap-suite-deps: installing:$pkgs"
# shellcheck disable=SC2086  # word splitting of $pkgs and $SUDO is intended
if ! $SUDO apt-get install -y -qq --no-install-recommends $pkgs; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $pkgs
fi
