#!/bin/sh
# Install Debian's bubblewrap (bwrap) so the benchmarks can compare against it.
# Also installs nsjail when the distribution packages it (Debian bookworm does not).
#
# Idempotent: does nothing when the tools are already on PATH.
# Runs `apt-get update` only when the package index does not know bubblewrap yet,
# so repeated runs stay fast and do not hit the network.
# Exit status: 0 when bwrap is available afterwards, non-zero otherwise
# (bench/run.js then skips the bwrap variant and says so).
set -eu

export DEBIAN_FRONTEND=noninteractive

have() { command -v "$1" >/dev/null 2>&1; }

# "Candidate: (none)" (or no output at all) means the index does not offer the package.
has_candidate() {
  apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'
}

if have bwrap && have nsjail; then
  echo "install-bubblewrap: bwrap and nsjail already installed"
  exit 0
fi

if ! have apt-get; then
  echo "install-bubblewrap: apt-get not found; install bubblewrap with your package manager" >&2
  have bwrap
  exit $?
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then
    SUDO="sudo -n"
  else
    echo "install-bubblewrap: not root and no sudo; cannot install packages" >&2
    have bwrap
    exit $?
  fi
fi

if ! has_candidate bubblewrap; then
  echo "install-bubblewrap: package index does not list bubblewrap; running apt-get update"
  $SUDO apt-get update -qq
fi

pkgs=""
have bwrap || pkgs="bubblewrap"
if ! have nsjail; then
  if has_candidate nsjail; then
    pkgs="$pkgs nsjail"
  else
    echo "install-bubblewrap: nsjail is not packaged in this distribution's repositories; skipping it"
  fi
fi

if [ -n "$pkgs" ]; then
  echo "install-bubblewrap: installing:$pkgs"
  # shellcheck disable=SC2086  # word splitting of $pkgs and $SUDO is intended
  # A stale index can point at .debs the mirror no longer has: refresh once and retry.
  if ! $SUDO apt-get install -y -qq --no-install-recommends $pkgs; then
    echo "install-bubblewrap: install failed; refreshing the package index and retrying"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $pkgs
  fi
fi

if have bwrap; then
  echo "install-bubblewrap: $(bwrap --version)"
  exit 0
fi
echo "install-bubblewrap: bwrap still missing after install" >&2
exit 1
