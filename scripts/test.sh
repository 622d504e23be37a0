#!/usr/bin/env bash
# The whole test suite: C unit tests (plain, ASan+UBSan, valgrind), a short
# fuzz run, then the Python binding and integration tests against a real
# Synapse on a throwaway PostgreSQL. Used by `make test` and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(scripts/setup.sh)
export SSP_EXTRA_CFLAGS="-Werror ${SSP_EXTRA_CFLAGS:-}"

step() { echo; echo "==== $* ==== (${SECONDS}s into the run)"; }

# Builds use both cores; the tests themselves run one binary at a time.
JOBS=$(nproc 2>/dev/null || echo 2)
step "C unit tests"
make -s -j"$JOBS" -C tests/c build-test
make -s -C tests/c test
step "C unit tests under ASan+UBSan"
make -s -j"$JOBS" -C tests/c build-asan
make -s -C tests/c asan
step "C unit tests under valgrind"
make -s -C tests/c valgrind
# 5 s per target keeps CI under 20 minutes with every target run; a longer
# search is `make -C tests/c fuzz` (20 s each) or FUZZ_SECONDS=600 make test.
step "fuzz targets (${FUZZ_SECONDS:-5}s each)"
make -s -j"$JOBS" -C tests/c build-fuzz
make -s -C tests/c fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-5}"

step "build and install the module into $VENV"
scripts/install-module.sh "$VENV"

step "Python binding and integration tests (the newest Synapse pin; tests/test_wheel.py builds and checks the wheel)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" tests

# The oldest Synapse of the compatibility window (pyproject.toml's
# "synapse-oldest" extra): the tests of what depends on Synapse's callbacks,
# their signatures and the private members in synapse_compat.py. The full
# suite runs on the newest pin above.
# Restarts, the CLI and the doctor do not depend on the Synapse release and
# stay on the newest pin only (this keeps the run near two minutes).
OLDEST_TESTS=(
  tests/test_synapse_compat.py
  tests/test_rule1_opt_in.py
  tests/test_rule2_one_way.py
  tests/test_rule3_visibility.py
  tests/test_special_rooms.py::test_teachers_room_holds_exactly_the_staff_and_no_announcement_room_exists
  tests/test_special_rooms.py::test_pupils_do_not_reach_pupils_they_share_no_course_with_while_announcements_are_off
  tests/test_special_rooms.py::test_killed_in_the_middle_of_a_reconciliation_it_completes_without_duplicates
  "tests/test_self_check.py::test_strict_self_check_refuses_to_start_and_names_the_setting[user_directory-value0]"
  tests/test_self_check.py::test_non_strict_self_check_only_warns
)
OLDEST_VENV=$(SSP_SYNAPSE_EXTRA=synapse-oldest scripts/setup.sh)
step "build and install the module into $OLDEST_VENV"
scripts/install-module.sh "$OLDEST_VENV"
step "integration tests against the oldest supported Synapse"
"$OLDEST_VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" "${OLDEST_TESTS[@]}"
