#!/usr/bin/env bash
# Every test, in two pytest processes side by side. Most of the suite waits (on devices,
# timers and the kiosk processes the crash and chaos suites start), so on a machine with
# two cores the two halves take little longer than the longer one: the UI, crash and chaos
# suites in one process, everything else in the other. Each process has its own private
# pcscd (tests/conftest.py), X server (tests/ui/conftest.py) and free ports. Arguments go
# to both (e.g. -x). Output lines are prefixed [ui+crash] or [rest]; the summary of each
# comes at its end.
set -uo pipefail
PY=${PY:-.venv/bin/python}
SLOW=(tests/ui tests/crash tests/chaos)

run() {   # run PREFIX PYTEST-ARGS...
    local prefix=$1
    shift
    "$PY" -m pytest -q "$@" 2>&1 | sed -u "s/^/[$prefix] /"
    return "${PIPESTATUS[0]}"
}

run "ui+crash" "${SLOW[@]}" "$@" &
slow=$!
run "rest" $(printf -- '--ignore=%s ' "${SLOW[@]}") "$@" &
rest=$!
wait "$slow"; slow_rc=$?
wait "$rest"; rest_rc=$?
echo "tests: ui+crash exit $slow_rc, rest exit $rest_rc"
[ "$slow_rc" -eq 0 ] && [ "$rest_rc" -eq 0 ]
