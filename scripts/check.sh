#!/usr/bin/env bash
# The inner loop, `make check`: the C unit tests (the plain build: no
# sanitizers, valgrind or fuzzing) and the Python tests that start no
# process (tests/unit), against the module built from this checkout. It
# starts no Synapse and no PostgreSQL, and takes under 3 minutes on a 2-core
# machine once scripts/setup.sh has built the virtualenv. `make test` runs
# everything. Arguments go to pytest (e.g. -k binding).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(scripts/setup.sh)
# As in `make test`: a warning fails the build here, not only in CI.
export SSP_EXTRA_CFLAGS="-Werror ${SSP_EXTRA_CFLAGS:-}"

step() { echo; echo "==== $* ==== (${SECONDS}s into the run)"; }

JOBS=$(nproc 2>/dev/null || echo 2)
step "build the C unit tests, and the module into $VENV"
make -s -j"$JOBS" -C tests/c build-test
scripts/install-module.sh "$VENV"

# The C tests spend most of their time waiting for fsync and their threads,
# so they run beside pytest; their output follows pytest's.
step "C unit tests (beside pytest) and the Python tests that start no process (tests/unit)"
C_LOG=$(mktemp)
trap 'rm -f "$C_LOG"' EXIT
make -s -C tests/c test >"$C_LOG" 2>&1 &
c_tests=$!
status=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" tests/unit || status=1
wait "$c_tests" || status=1
step "C unit tests"
cat "$C_LOG"
exit "$status"
