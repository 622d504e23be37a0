#!/usr/bin/env bash
# bench: callgrind_decide -- machine instructions per ssp_decide call.
#
# Usage: bench/callgrind_decide.sh [ITERATIONS [USERS]]     (defaults 100000 100000; ~1 minute)
#
# Builds the engine (csrc/ and its sub-folders, without the CPython binding) and
# bench/decide_bench.c with gcc -O2, loads a roster of USERS users through
# ssp_roster_upsert_batch into a temporary data_dir, and calls ssp_decide
# ITERATIONS times on one fixed request, once natively (ns per decision, noisy)
# and once under valgrind --tool=callgrind, counting only the loop
# (--instr-atstart=no + CALLGRIND_START/STOP_INSTRUMENTATION) and only
# ssp_decide and its callees (--toggle-collect=ssp_decide). Instructions per
# decision = collected Ir / ITERATIONS: deterministic for a given build and
# compiler, unlike wall time on this 2-core machine.
#
# Cases: message    check_event_for_spam, allowed pupil, managed two-way room, room
#                   state supplied (the decisive second call of every message)
#        need-room  the same message before the room's state is known (first call)
#        login      check_login_for_spam, allowed pupil
#        token      is_user_expired, allowed pupil (Synapse asks it on every request)
#        denied     message by a pupil whose school has not opted in (-> NEED_ADMIN)
#        group-message   the message in a two-way team's room (its policy names a
#                        group of 25 members in the roster's group index)
#        group-join      user_may_join_room, invited: the cross-school join of a
#                        gym-nord pupil into a course room of rs-west that lists them
#        after-message   ssp_after_event: a local user's message (decided on two facts)
#        after-join      ssp_after_event: a pupil's join under their global name in a
#                        one-way course, every fact read (nothing to take back)
#        after-remote    ssp_after_event: a remote member's message in a room made here
#                        whose doors are closed
# (the after-* cases count ssp_after_event and its callees instead of ssp_decide)
# Needs: gcc, pkg-config, libjansson-dev, libpq-dev (the engine's PostgreSQL
# store is linked in, not used: the roster lives in the embedded store), valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${1:-100000}
USERS=${2:-100000}
CASES="${CASES_OVERRIDE:-message need-room login token denied group-message group-join after-message after-join after-remote}"

BUILD=$(mktemp -d /tmp/ssp-bench-callgrind-XXXXXX)
trap 'rm -rf "$BUILD"' EXIT
SRCS=$(find csrc -name '*.c' -not -path 'csrc/py/*' -not -name _core.c | sort)
CFLAGS="$(pkg-config --cflags jansson)"
LIBS="$(pkg-config --libs jansson)"
if grep -q 'libpq-fe\.h' $SRCS; then  # the PostgreSQL store, when the engine has one
  if pkg-config --exists libpq; then
    CFLAGS="$CFLAGS $(pkg-config --cflags libpq)"; LIBS="$LIBS $(pkg-config --libs libpq)"
  else
    CFLAGS="$CFLAGS -I$(pg_config --includedir)"; LIBS="$LIBS -L$(pg_config --libdir) -lpq"
  fi
fi
if grep -q 'amqp\.h' $SRCS; then  # the roster feed (rabbitmq-c), when the engine has one
  CFLAGS="$CFLAGS $(pkg-config --cflags librabbitmq)"; LIBS="$LIBS $(pkg-config --libs librabbitmq)"
fi
# shellcheck disable=SC2086
gcc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-missing-field-initializers -Icsrc \
  $CFLAGS bench/decide_bench.c $SRCS -o "$BUILD/decide_bench" $LIBS -lpthread
echo "built with $(gcc --version | head -1), -O2; $(valgrind --version)"
echo

printf '%-14s %12s %14s %12s %18s\n' case iterations "Ir total" "Ir/decision" "native ns/decision"
for c in $CASES; do
  native=$("$BUILD/decide_bench" --iterations "$ITERATIONS" --users "$USERS" --case "$c")
  ns=$(sed -n 's/.*ns_per_decision=\([0-9.]*\).*/\1/p' <<<"$native")
  out="$BUILD/callgrind.$c.out"
  fn=ssp_decide
  case $c in after-*) fn=ssp_after_event ;; esac
  timeout 600 valgrind --tool=callgrind --callgrind-out-file="$out" --instr-atstart=no \
    --toggle-collect="$fn" "$BUILD/decide_bench" --iterations "$ITERATIONS" --users "$USERS" \
    --case "$c" >"$BUILD/run.$c.txt" 2>"$BUILD/valgrind.$c.txt"
  # The "totals:" line of the callgrind output = Ir collected inside ssp_decide.
  total=$(awk '/^totals:/ {print $2; exit}' "$out")
  printf '%-14s %12d %14d %12.1f %18s\n' "$c" "$ITERATIONS" "$total" \
    "$(echo "$total / $ITERATIONS" | bc -l)" "$ns"
done

echo
echo "where the instructions of one 'message' decision go (inclusive Ir per decision, top functions):"
callgrind_annotate --inclusive=yes "$BUILD/callgrind.${ANNOTATE_CASE:-message}.out" 2>/dev/null \
  | awk -v n="$ITERATIONS" '
      /^ *[0-9,]+ +\( *[0-9.]+%\) +/ && /\[/ && !/PROGRAM TOTALS/ && !/decide_bench\.c:main/ {
        ir = $1; gsub(",", "", ir);
        fn = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", fn); sub(/ \[.*$/, "", fn);
        sub(/^.*\/sysdeps\//, "libc:", fn);
        printf "  %8.1f  %s\n", ir / n, fn; if (++shown == 12) exit
      }'
