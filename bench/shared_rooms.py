#!/usr/bin/env python3
"""bench: shared_rooms -- rule 3's shared-room decision at 10,000 rooms and 100,000 users.

Usage (with the virtualenv that has Synapse 1.163.2, psycopg2 and the module):

    VENV=~/.cache/synapse-school-policy/venv-synapse-1.163.2-py3.11
    $VENV/bin/python bench/shared_rooms.py            # 20-40 s on 2 cores (loading the table 6-18 s)
    $VENV/bin/python bench/shared_rooms.py --quick    # 10,000 users / 1,000 rooms, ~10 s

Options: --users N (100000), --rooms N (10000), --rooms-per-user N (10, each
user joins N-2..N+2 rooms), --pairs N (2000), --batches N (300 engine
batches per case), --batch N (200 decisions per batch), --time-limit S (290).

Part 1, the engine. One _core.Engine (schools gym-nord and rs-west, both
messenger: true; gym-nord also announcement_room: true), the roster of
--users users loaded with roster_upsert (timed; the journal fsync is
included), and --rooms room policies (course rooms of both schools,
announcement rooms of both, unmanaged rooms = None). decide() is timed for
user_may_invite into an unmanaged room (room_known=True, room_policy None,
actor_admin FACT_NO) between two local roster users of gym-nord, with
shared_rooms lists of length 0 (denied: no_shared_room, which queues an
audit record for the writer thread), 1, 5 and 20 (the qualifying room last,
every room before it a non-qualifying one: worst case), 20 with none
qualifying (denied), and the preceding calls of the same invite (room not
known yet -> NEED_ROOM; shared rooms not known yet -> NEED_SHARED_ROOMS).
ns per decision = one batch's time / batch size, as Python calls it (the
binding's argument conversion included); median and p99 over the batches.
Cases are interleaved batch by batch, GC off inside the timed loops.

Part 2, Synapse's data source. A throwaway PostgreSQL (tests/harness,
127.0.0.1, never the machine's own service) gets the current_state_events
table exactly as Synapse 1.163.2 has it (full_schemas/72 plus the deltas
that touch it, see CSE_SCHEMA) and is filled with COPY: every user joined to
~--rooms-per-user rooms (~1,000,000 join rows in random order), 5% of the
users with one extra 'leave' row, 4 ordinary state rows per room plus the
policy event of managed rooms, and a few dozen heavy users in 100 or 300
rooms. Then ANALYZE and, over --pairs pairs (half random pairs, half two
members of a common room):

  cold   Synapse's get_rooms_for_user SQL for both users (each in its own
         REPEATABLE READ transaction, as runInteraction does) + frozenset
         intersection; psycopg2 over loopback TCP. Once on the first touch
         of the users' pages (PostgreSQL reads them from the OS page cache),
         then again with them in shared_buffers.
  @cached cold/warm  a tiny store with Synapse's OWN @cached descriptors
         (same decorators and body as roommember.py's get_rooms_for_user and
         get_mutual_rooms_between_users) over the same SQL: the first call
         misses (cold pairs are timed alternately with the bare SQL path),
         then (a) the same pair again (pair cache hit; that cache holds only
         500 pairs at Synapse's default cache factor, so fewer are timed) and
         (b) new pairs of already cached users (two user cache hits +
         intersection; the user cache holds 250,000 users).
  warm dict  dict lookup + intersection: the floor of what a cache can give.

What is NOT included: Synapse's db_pool machinery around a query (thread
pool hop, LoggingTransaction, metrics), the reactor, and ModuleApi.
get_room_state for each shared room (only its SQL probe on
current_state_events is timed, as a lower bound of a cold call).

Churn: a member of a shared room leaves (the current_state_events row
becomes membership 'leave', as Synapse's _update_current_state_txn does);
the next SQL query no longer returns the room; the @cached store still does
until get_rooms_for_user is invalidated for the leaver, as Synapse does after
the transaction and on every worker (the file:line in the venv is printed);
after that the engine denies the invite (no_shared_room).

Every loop is bounded in count and by --time-limit. 2 noisy cores shared
with other jobs: read medians; p99s are mostly scheduler noise.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from synapse_school_policy import _core  # noqa: E402
from benchlib import log  # noqa: E402
from shared_rooms_world import (  # noqa: E402
    Deadline,
    fmt_us,
    make_policies,
    pct,
    room_id_of,
)
from shared_rooms_engine import part1  # noqa: E402
from shared_rooms_synapse import part2  # noqa: E402

# ---- report ----------------------------------------------------------------------

def summary(args, r1: dict, r2: dict, load: tuple) -> None:
    print()
    print(f"== Rule 3 shared-room decision: {args.users:,} users, {args.rooms:,} rooms "
          f"(engine {_core.__file__}) ==")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (cores: {os.cpu_count()})")
    q, nq, nn = r1["room_mix"]
    print(f"\n-- 1. engine: decide(user_may_invite), roster {r1['roster_size']:,} users "
          f"(roster_upsert {r1['roster_load_s']:.2f}s incl. journal fsync), rooms: {q:,} qualifying, "
          f"{nq:,} not ({nn:,} unmanaged) --")
    print(f"{'case':<58} {'batches':>7} {'median ns':>10} {'p99 ns':>8}")
    for name, n, med, p99 in r1["engine"]:
        print(f"{name:<58} {n:>7} {med:>10.0f} {p99:>8.0f}")
    a = r1["audit"]
    print(f"audit queue after the denials: {a}")

    print(f"\n-- 2. Synapse's store: current_state_events on PostgreSQL {r2['pg_version']} "
          f"(shared_buffers {r2['shared_buffers']}), loopback --")
    c = r2["rows"]
    print(f"rows: {c['join']:,} join, {c['leave']:,} leave, {c['other_state']:,} other state "
          f"(table {r2['table'][1]}, indexes {r2['table'][2]}); load {r2['load_s']:.1f}s")
    print("plan of get_rooms_for_user's query:")
    for line in r2["plan"]:
        print("    " + line)
    sd = r2["shared_dist"]
    print(f"random pairs sharing any room: {sd['random'] * 100:.1f}%; co-member pairs share "
          f"{sd['co_k']:.2f} rooms on average; max over all pairs {sd['max_k']}")
    print(f"{'path (per pair unless noted)':<72} {'n':>6} {'p50 us':>8} {'p99 us':>8}")

    def row(name, values):
        if not values:
            print(f"{name:<72} {'-':>6}")
            return
        print(f"{name:<72} {len(values):>6} {fmt_us(statistics.median(values)):>8} {fmt_us(pct(values, 99)):>8}")

    row("cold: 2 x SQL + intersection, first touch of the pages in PG", r2["cold_first"])
    for name, vals in r2["cold_sql"].items():
        row(f"cold: 2 x SQL + intersection, pages in PG buffers, {name}", vals)
    row("cold: Synapse @cached store, first call (2 x SQL)", r2["cached_cold"])
    row(f"warm: @cached pair hit (same pair again; {len(r2['cached_pair_hit_n'])} pairs) [batch]",
        r2["cached_pair_hit"])
    row("warm: @cached, new pair of cached users (2 user hits)", r2["cached_users_hit"])
    row("warm: dict lookup + frozenset intersection [per batch]", r2["dict_warm"])
    row("get_room_state SQL probe only (policy state id), per room", r2["probe"])
    print(f"Synapse cache capacities at the default cache factor 0.5: get_rooms_for_user {r2['caps'][0]:,} users, "
          f"get_mutual_rooms_between_users {r2['caps'][1]:,} pairs")
    print("one user's get_rooms_for_user SQL by the user's room count:")
    for count, vals in sorted(r2["by_count"].items()):
        row(f"    user in {count} rooms", vals)

    ch = r2["churn"]
    print("\n-- churn --")
    if "skipped" in ch:
        print(ch["skipped"])
    else:
        print(f"pair {ch['pair'][0]} / {ch['pair'][1]} share {ch['before']}; engine: {ch['verdict_before']}")
        print(f"{ch['pair'][0]} leaves {ch['room']} (current_state_events row -> membership 'leave', "
              f"{ch['rows_updated']} row)")
        print(f"  next SQL query for the pair:                      {ch['sql_after']}")
        print(f"  @cached store WITHOUT invalidation (stale):       {ch['cached_stale']}")
        print(f"  after get_rooms_for_user.invalidate((leaver,)):   {ch['cached_after']} "
              f"({ch['invalidate_and_requery_us']:.0f} us incl. the re-query); engine: {ch['verdict_after']}")
    print("Synapse 1.163.2 invalidates get_rooms_for_user on membership change:")
    for what, where in ch["cites"].items():
        print(f"  {where:<62} {what}")

    # ---- the estimate ----
    e = r1["engine_by_name"]
    pre = e["invite, room not known -> NEED_ROOM"] + e["unmanaged room, shared not known -> NEED_SHARED_ROOMS"]
    cold = statistics.median(r2["cold_sql"]["co-member pairs"] or r2["cached_cold"])
    warm_pair = statistics.median(r2["cached_pair_hit"]) if r2["cached_pair_hit"] else float("nan")
    warm_users = statistics.median(r2["cached_users_hit"]) if r2["cached_users_hit"] else float("nan")
    probe = statistics.median(r2["probe"]) if r2["probe"] else float("nan")
    print("\n-- 3. estimated cost of the shared-room part of one allowed invite (medians, us) --")
    print("   lookup + k x get_room_state(policy) [NOT measured; SQL probe only, cold] + decide() calls")
    print(f"{'k':>3} {'decide x3':>10} {'warm lookup':>12} {'cold lookup':>12} {'k x probe (cold)':>17} "
          f"{'warm total':>11} {'cold total':>11}")
    for k in (1, 5, 20):
        dk = pre + e[f"{k} shared, qualifying one last -> allowed"]
        warm_total = dk + warm_users
        cold_total = dk + cold + k * probe
        print(f"{k:>3} {dk / 1000:>10.2f} {warm_users / 1000:>12.1f} {cold / 1000:>12.1f} {k * probe / 1000:>17.1f} "
              f"{warm_total / 1000:>10.1f}+ {cold_total / 1000:>10.1f}+")
    print(f"    warm lookup = @cached new pair of cached users ({warm_users / 1000:.1f} us; same pair again "
          f"{warm_pair / 1000:.1f} us); '+' = plus k x get_room_state and Synapse's db_pool/reactor overhead, "
          f"not measured here")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--rooms-per-user", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--time-limit", type=float, default=290.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.users, args.rooms, args.pairs, args.batches = 10_000, 1_000, 400, 60
    for name, lo, hi in (("users", 100, 1_000_000), ("rooms", 10, 100_000), ("rooms_per_user", 3, 100),
                         ("pairs", 10, 100_000), ("batches", 1, 10_000), ("batch", 1, 100_000),
                         ("time_limit", 10, 3600)):
        if not lo <= getattr(args, name) <= hi:
            parser.error(f"--{name.replace('_', '-')} out of range [{lo}, {hi}]")
    deadline = Deadline(args.time_limit)
    load = os.getloadavg()
    rng = random.Random(20261124)
    t0 = time.monotonic()
    policies = make_policies(args.rooms, rng)
    room_ids = [room_id_of(i, 7) for i in range(args.rooms)]
    log(f"world: {args.users:,} users, {args.rooms:,} rooms; load average {load[0]:.2f}")
    r1 = part1(args, policies, rng, deadline)
    try:
        log("part 1 done; part 2: Synapse's store on a throwaway PostgreSQL")
        r2 = part2(args, room_ids, policies, rng, deadline, r1["engine_ref"])
        summary(args, r1, r2, load)
    finally:
        engine = r1.pop("engine_ref", None)
        if engine is not None:
            engine.audit_flush()
        del engine
        shutil.rmtree(r1["data_dir"], ignore_errors=True)
    if deadline.passed():
        print(f"\nNOTE: the --time-limit of {args.time_limit:.0f}s was reached; some samples were cut short.")
    print(f"\ntotal {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
