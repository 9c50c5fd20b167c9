#!/bin/bash
# npm run conformance:bwrap -- SUITE_TOP [--recurse-via-tool] [script ...]
#
# Runs bubblewrap's own test suite against `nsjail-node-bwrap` (bin/, over dist/) and prints
# the score of each script and the failing points. SUITE_TOP (or $BWRAP_SUITE) is a folder
# holding bubblewrap's tests/ at some tag (containers/bubblewrap, e.g. v0.11.1 or v0.8.0); the
# suite is not part of this package. BWRAP_TOOL overrides the tool under test (e.g.
# /usr/bin/bwrap, to score bubblewrap itself on this machine).
#
# The suite is copied to a scratch folder under /var/tmp (the suite mounts a tmpfs on /tmp in
# its sandboxes), try-syscall is compiled, and test-run.sh is made to report every point
# instead of stopping at the first failure (scripts/conformance/keepgoing.sh, sourced before
# its first test; the other edits are below). Its help-text grep is NOT changed: the tool's
# usage line names it as invoked, as bwrap's does. Points that run `/proc/self/exe` as the
# sandbox tool inside a sandbox cannot pass (a Node script is not its own /proc/self/exe):
# --recurse-via-tool runs $BWRAP there instead.
# Needs root for the full suite, and python3-seccomp, python3-tap, gcc, capsh:
# scripts/install-bwrap-suite-deps.sh installs them (Debian/Ubuntu).
set -u
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(dirname "$here")
suite=${BWRAP_SUITE:-}
recurse_via_tool=0
scripts=()
for a in "$@"; do
  case $a in
    --recurse-via-tool) recurse_via_tool=1 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) if [ -z "$suite" ]; then suite=$a; else scripts+=("$a"); fi ;;
  esac
done
if [ -z "$suite" ] || [ ! -f "$suite/tests/test-run.sh" ]; then
  echo "conformance-bwrap: give the folder that holds bubblewrap's tests/ (argument or BWRAP_SUITE)" >&2
  exit 2
fi
[ ${#scripts[@]} -eq 0 ] && scripts=(test-run.sh test-seccomp.py test-specifying-pidns.sh test-specifying-userns.sh)
tool=${BWRAP_TOOL:-$pkg/bin/nsjail-node-bwrap}
[ -f "$pkg/dist/cli-bwrap.js" ] || [ -n "${BWRAP_TOOL:-}" ] || { echo "conformance-bwrap: build first (npm run build:dev)" >&2; exit 2; }

bash "$pkg/scripts/install-bwrap-suite-deps.sh" >/dev/null || echo "conformance-bwrap: could not install the suite's dependencies; test-seccomp.py may skip" >&2

top=$(mktemp -d /var/tmp/bwrap-conformance.XXXXXX)
out=$top/out
mkdir -p "$out"
cp -a "$suite/tests" "$top/tests"
chmod -R u+w "$top/tests"
gcc -O2 -o "$top/tests/try-syscall" "$top/tests/try-syscall.c" || { echo "conformance-bwrap: cannot compile try-syscall.c" >&2; exit 2; }
t=$top/tests
cp "$here/conformance/keepgoing.sh" "$t/keepgoing.sh"
# Keep going: keepgoing.sh before the first test; v0.8.0's `echo "ok ...` lines go through it.
sed -i 's|^# Test help$|. "${srcd}/keepgoing.sh"\n# Test help|' "$t/test-run.sh"
sed -i 's|^\( *\)echo "ok|\1kg_ok "ok|' "$t/test-run.sh"
# A lock never released (--die-with-parent not working) must not hang the run.
sed -i 's|^\( *\)\./lockf-n.py \./lock wait$|\1timeout 60 ./lockf-n.py ./lock wait|' "$t/test-run.sh"
for f in test-specifying-pidns.sh test-specifying-userns.sh; do
  [ -f "$t/$f" ] && sed -i 's|^\( *\)while ! test -f \([a-z0-9-]*\); do sleep 1; done$|\1kg_i=0; while ! test -f \2 \&\& [ $kg_i -lt 30 ]; do sleep 1; kg_i=$((kg_i+1)); done|' "$t/$f"
done
if [ "$recurse_via_tool" = 1 ]; then
  sed -i 's|\$BWRAP_RECURSE -- /proc/self/exe |$BWRAP_RECURSE -- $BWRAP |; s|-- /proc/self/exe --dev-bind / / -- true|-- $BWRAP --dev-bind / / -- true|' "$t/test-run.sh"
fi

# Each script as bubblewrap's meson test() runs it: BWRAP, G_TEST_SRCDIR/BUILDDIR, a clean
# environment; in its own session under a timeout; a marker variable finds its leftovers.
mark="BWRAP_CONFORMANCE_$$_$RANDOM"
maxns=$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo)
printf '%s\n' "tool: $tool" "suite: $suite" "scratch: $top"
for s in "${scripts[@]}"; do
  [ -f "$t/$s" ] || { echo "$s: not in this suite"; continue; }
  case $s in *.py) interp=python3 ;; *) interp=bash ;; esac
  case $s in test-run.sh) tmo=${PER_SCRIPT_TIMEOUT:-900} ;; *) tmo=${PER_SCRIPT_TIMEOUT:-90} ;; esac
  (cd /var/tmp && env -i HOME="${HOME:-/root}" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      BWRAP="$tool" G_TEST_SRCDIR="$top" G_TEST_BUILDDIR="$top" "$mark=1" \
      setsid timeout -k 10 "$tmo" "$interp" "$t/$s" >"$out/$s.out" 2>"$out/$s.err" </dev/null)
  rc=$?
  [ "$rc" = 124 ] && echo "TIMEOUT: killed after $tmo s" >>"$out/$s.err"
  left=""
  for p in /proc/[0-9]*; do
    if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "$mark=1"; then left="$left ${p#/proc/}"; fi
  done
  for pid in $left; do kill -9 "$pid" 2>/dev/null; done
  ok=$(grep -cE '^ok' "$out/$s.out"); skip=$(grep -cE '^ok.*# SKIP' "$out/$s.out"); nok=$(grep -cE '^not ok' "$out/$s.out")
  plan=$(grep -E '^1\.\.[0-9]+' "$out/$s.out" | tail -1)
  printf '%-28s exit=%-3s ok=%s (skipped %s) not-ok=%s plan=%s%s\n' "$s" "$rc" "$((ok - skip))" "$skip" "$nok" "${plan:-none}" "${left:+ (leftover processes killed:$left)}"
  if [ "$s" = test-run.sh ]; then
    # A point whose sandbox runs /proc/self/exe cannot pass with a Node script as the tool.
    BWRAP_TOOLS="$(basename "$tool"):bwrap:nsjail-node" python3 "$here/conformance/points.py" "$out" |
      sed 's/^/  /; /\/proc\/self\/exe/s/$/\t[runs \/proc\/self\/exe: see --recurse-via-tool]/'
  else
    grep -hE '^not ok|^# [A-Za-z]*Error:|TIMEOUT' "$out/$s.out" "$out/$s.err" 2>/dev/null | head -8 | sed 's/^/  /'
    # A shell script that stopped before its "ok": the tool's last words.
    if [ "$interp" = bash ] && [ "$ok" = 0 ]; then
      grep -vE '^\+' "$out/$s.err" | grep -E 'bwrap:|nsjail-node' | tail -2 | sed 's/^/  stopped: /'
    fi
  fi
done
if [ -n "$maxns" ] && [ "$(cat /proc/sys/user/max_user_namespaces)" != "$maxns" ]; then
  echo "user.max_user_namespaces was changed by the suite; restoring $maxns"
  echo "$maxns" >/proc/sys/user/max_user_namespaces
fi
echo "logs: $out"
