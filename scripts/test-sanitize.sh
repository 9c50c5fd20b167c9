#!/usr/bin/env bash
# The addon built with AddressSanitizer and UndefinedBehaviorSanitizer (cmake-js, into
# build-sanitize/; build/ is left alone), and the test files that drive its native code run
# against it. Node itself is not instrumented: the ASan runtime is preloaded into every Node
# process (jest, its workers, the worker threads and the CLI or Node children the tests start)
# and NSJAIL_NODE_ADDON points lib/binding.ts at the sanitizer build. Sandboxed programs get
# only the env their options give them, so nothing is preloaded into them.
#
# A finding anywhere fails the run: both runtimes halt the process on the first report and
# write it under a log directory, and any report there fails the script even when the test
# that triggered it passed. A finding in the child between clone and execve kills that child
# (its spawn fails with the sanitizer's exit status or a signal, and with it the test); its
# report reaches the log directory only while the child still sees the host's /tmp.
#
# Usage: scripts/test-sanitize.sh [jest args...]   (default: the files listed below)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian/Ubuntu ship libasan/libubsan with gcc's libgcc-N-dev; install them when missing.
need_runtime() { [[ "$(gcc -print-file-name="$1")" == /* ]]; }
if ! need_runtime libasan.so || ! need_runtime libubsan.so || ! command -v cmake >/dev/null; then
  gcc_major="$(gcc -dumpversion | cut -d. -f1)"
  echo "test-sanitize: installing the sanitizer runtimes (libgcc-${gcc_major}-dev) and cmake" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libgcc-${gcc_major}-dev" cmake >/dev/null
fi
ASAN_RUNTIME="$(gcc -print-file-name=libasan.so)"
need_runtime libasan.so || { echo "test-sanitize: no libasan.so for $(gcc --version | head -1)" >&2; exit 1; }

# The regular build is still needed for the init helper (a static program, not instrumented)
# and dist/ for the tests that load the library in worker threads or child Node processes.
[[ -x build/Release/nsjail_node_init && -f dist/index.js ]] || npm run build

node_modules/.bin/cmake-js build --out build-sanitize --parallel "$(nproc)" --log-level warn \
  --CDNSJAIL_SANITIZE=address,undefined --CDCMAKE_BUILD_TYPE=RelWithDebInfo
ADDON="$PWD/build-sanitize/Release/nsjail_node.node"

LOGS="$(mktemp -d /tmp/nsjail-node-sanitize.XXXXXX)"
chmod 0777 "$LOGS"  # Node children that run as another user (rootless tests) log here too
trap 'rm -rf "$LOGS"' EXIT

# detect_leaks=0: a Node process that ends with process.exit() (jest's workers do) leaves V8's
# heap to the kernel, and every allocation of the addon sits on Node's frames, so no
# suppression by module keeps the addon's leaks apart from Node's.
# detect_stack_use_after_return=0: the child between clone and execve must not put its frames
# on the parent thread's fake stack.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=0:detect_stack_use_after_return=0:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOGS/ubsan"
export NSJAIL_NODE_ADDON="$ADDON"

if [[ $# -eq 0 ]]; then
  set -- test/spawn.*.test.ts test/filesystem*.test.ts test/identity*.test.ts
fi

start=$SECONDS
status=0
# Bounded: a finding in a CLONE_VM child can leave a sanitizer lock held in the parent's
# memory, and a hung run must fail rather than hold CI up.
LD_PRELOAD="$ASAN_RUNTIME" timeout --kill-after=30 1800 node_modules/.bin/jest "$@" || status=$?
echo "test-sanitize: jest took $((SECONDS - start)) s" >&2

# The runtimes open their log only when they have something to say.
if compgen -G "$LOGS/*" >/dev/null; then
  echo "test-sanitize: sanitizer reports:" >&2
  for report in "$LOGS"/*; do
    echo "=== $report" >&2
    cat "$report" >&2
  done
  status=1
fi
exit "$status"
