#!/usr/bin/env bash
# The whole test suite: C unit tests (plain, ASan+UBSan, valgrind), a short
# fuzz run, then the Python binding and integration tests against a real
# Synapse on a throwaway PostgreSQL. Used by `make test` and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(scripts/setup.sh)
export SSP_EXTRA_CFLAGS="-Werror ${SSP_EXTRA_CFLAGS:-}"

step() { echo; echo "==== $* ===="; }

step "C unit tests"
make -s -C tests/c test
step "C unit tests under ASan+UBSan"
make -s -C tests/c asan
step "C unit tests under valgrind"
make -s -C tests/c valgrind
step "fuzz targets (${FUZZ_SECONDS:-15}s each)"
make -s -C tests/c fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-15}"

step "build and install the module into $VENV"
scripts/install-module.sh "$VENV"

step "Python binding and integration tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" tests
