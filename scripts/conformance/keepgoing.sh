# shellcheck shell=bash
# keepgoing.sh -- instrumentation for scripts/conformance-bwrap.sh; NOT part of bubblewrap.
# Sourced by the tests-keepgoing copy of test-run.sh right before its first test. Instead of
# stopping at the first failure (set -e), the first failure inside each TAP point is recorded
# and the point is printed as "not ok N NAME # KG-FAILED: <first failure>"; the script goes on.
# Every point's end is marked on stderr with "#KG-END N" for the per-point log splitter.
set +e
set -E
KG_FAIL=""
kg_note() { if [ -z "$KG_FAIL" ]; then KG_FAIL="$1"; fi; }
kg_err() {
    local st=$? cmd=$BASH_COMMAND
    echo "Unexpected nonzero exit status $st while running: $cmd" >&2
    kg_note "exit $st: $cmd"
}
trap kg_err ERR
fatal() { echo "$@" 1>&2; kg_note "fatal: $*"; return 1; }
assert_not_reached () { fatal "$@"; }
KG_N=0
kg_emit() {
    KG_N=$((KG_N+1))
    if [ -n "$KG_FAIL" ]; then
        echo "not ok $KG_N $1 # KG-FAILED: $(printf '%s' "$KG_FAIL" | tr '\n' ' ')"
    else
        echo "ok $KG_N $1"
    fi
    echo "#KG-END $KG_N" >&2
    KG_FAIL=""
}
# v0.8.0 style: echo "ok - NAME" was rewritten to kg_ok "ok - NAME"
kg_ok() { local s="$*"; s=${s#ok}; s=${s# }; kg_emit "$s"; }
# v0.9+ style: test-run.sh defines ok()/ok_skip()/done_testing(); replace ok()
if declare -F done_testing >/dev/null; then
    ok() { test_count=$((test_count + 1)); kg_emit "$*"; }
fi
