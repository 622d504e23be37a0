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
import base64
import gc
import io
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness.postgres import PostgresCluster  # noqa: E402
from synapse_school_policy import _core  # noqa: E402
from benchlib import log  # noqa: E402

SERVER = "school.test"
POLICY_TYPE = "org.synapse_school_policy.room"
SCHOOLS = {"gym-nord": {"messenger": True, "announcement_room": True},
           "rs-west": {"messenger": True}}
INVITE_ROOM = f"!directchat:{SERVER}"

# current_state_events as a fresh Synapse 1.163.2 database has it: the table and
# its constraints/index from full_schemas/72/full.sql.postgres, the column added
# by delta 74/03, the two indexes created by background updates
# (events_bg_updates.py: current_state_events_stream_ordering_idx, delta 77/14;
# state.py: current_state_events_members_room_index, delta 87/03). Left out,
# because they need the events table and only act on writes: the NOT VALID
# foreign key event_stream_ordering -> events(stream_ordering) (74/03, 79/04)
# and the check_event_stream_ordering trigger (74/04).
CSE_TABLE = """
CREATE TABLE current_state_events (
    event_id text NOT NULL,
    room_id text NOT NULL,
    type text NOT NULL,
    state_key text NOT NULL,
    membership text
);
ALTER TABLE current_state_events ADD COLUMN event_stream_ordering BIGINT;
"""
CSE_INDEXES = """
ALTER TABLE ONLY current_state_events
    ADD CONSTRAINT current_state_events_event_id_key UNIQUE (event_id);
ALTER TABLE ONLY current_state_events
    ADD CONSTRAINT current_state_events_room_id_type_state_key_key UNIQUE (room_id, type, state_key);
CREATE INDEX current_state_events_member_index ON current_state_events USING btree (state_key)
    WHERE (type = 'm.room.member'::text);
CREATE INDEX current_state_events_stream_ordering_idx ON current_state_events (event_stream_ordering);
CREATE INDEX current_state_events_members_room_index ON current_state_events (room_id, membership)
    WHERE type='m.room.member';
"""
CSE_SCHEMA = CSE_TABLE + CSE_INDEXES

# What simple_select_onecol builds for get_rooms_for_user (roommember.py):
# keyvalues type, membership, state_key in that order; '?' becomes %s.
ROOMS_FOR_USER_SQL = ("SELECT room_id FROM current_state_events "
                      "WHERE type = %s AND membership = %s AND state_key = %s")
# The SQL part of a cold get_room_state(room, [(POLICY_TYPE, "")]) (the state id;
# the event itself then comes from the event cache or event_json: not timed).
POLICY_STATE_SQL = ("SELECT type, state_key, event_id FROM current_state_events "
                    "WHERE room_id = %s AND type = %s AND state_key = %s")



def uid(i: int) -> str:
    return f"@u{i}:{SERVER}"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def fmt_us(ns: float) -> str:
    return f"{ns / 1000:.1f}" if ns < 1e7 else f"{ns / 1000:.0f}"


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end


# ---- the world -------------------------------------------------------------------

def school_of_user(i: int) -> str:
    return "rs-west" if i % 3 == 2 else "gym-nord"


def make_policies(n_rooms: int, rng: random.Random) -> list[dict | None]:
    """45% gym-nord course, 35% rs-west course, 5% announcement of each school,
    10% unmanaged (None)."""
    out: list[dict | None] = []
    for _ in range(n_rooms):
        x = rng.random()
        if x < 0.45:
            out.append({"school": "gym-nord", "kind": "course", "two_way": True})
        elif x < 0.80:
            out.append({"school": "rs-west", "kind": "course", "two_way": True})
        elif x < 0.85:
            out.append({"school": "gym-nord", "kind": "announcement", "two_way": False})
        elif x < 0.90:
            out.append({"school": "rs-west", "kind": "announcement", "two_way": False})
        else:
            out.append(None)
    return out


def qualifies(policy: dict | None) -> bool:
    """Rule 3's qualifying room under SCHOOLS (mirrors decide.c room_qualifies)."""
    if policy is None:
        return False
    school = SCHOOLS.get(policy.get("school"))
    if school is None or not school.get("messenger"):
        return False
    return policy.get("kind") != "announcement" or bool(school.get("announcement_room"))


def room_id_of(i: int, rng_bits: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    r = random.Random(rng_bits * 1_000_003 + i)
    return "!" + "".join(r.choice(letters) for _ in range(18)) + f":{SERVER}"


# ---- part 1: the engine ----------------------------------------------------------

def decide_args(callback: int, actor: str, target: str | None, room_id: str | None, room_known: bool,
                room_policy: Any, actor_admin: int, shared_rooms: Any) -> tuple:
    # decide(callback, actor, target, room_id, event_type, state_key, content, room,
    #        actor_admin, is_invited, shared_rooms, actor_membership, member_count, redacts)
    # (python/synapse_school_policy/_core.pyi). Every room here was created by
    # the sync, which also sent its policy event: room = (policy content,
    # policy sender, power levels, create content, creator, policy event id).
    sync = f"@sync:{SERVER}"
    room = (room_policy, sync, None, {"room_version": "12"}, sync, None) if room_known else None
    shared = [(p, sync, sync) for p in shared_rooms] if shared_rooms is not None else None
    return (callback, actor, target, room_id, None, None, None, room,
            actor_admin, None, shared, None, None, None)


def part1(args, policies: list[dict | None], rng: random.Random, deadline: Deadline) -> dict:
    data_dir = tempfile.mkdtemp(prefix="ssp-bench-shared-")
    res: dict[str, Any] = {}
    try:
        config = {"data_dir": data_dir, "schools": SCHOOLS, "service_users": [f"@sync:{SERVER}"]}
        engine = _core.Engine(json.dumps(config), SERVER, "bench")
        engine.open()
        t = time.perf_counter()
        body = json.dumps({"users": [
            {"user_id": uid(i), "schools": [{"school": school_of_user(i),
                                             "role": "teacher" if i % 40 == 0 else "student"}]}
            for i in range(args.users)]})
        res["roster_json_s"] = time.perf_counter() - t
        t = time.perf_counter()
        written = engine.roster_upsert(body)["upserted"]
        res["roster_load_s"] = time.perf_counter() - t
        res["roster_size"] = engine.roster_size()
        del body
        log(f"engine: roster_upsert of {written} users {res['roster_load_s']:.2f}s "
            f"(+{res['roster_json_s']:.2f}s building the JSON); roster_size {res['roster_size']}")

        qual = [p for p in policies if qualifies(p)]
        nonqual = [p for p in policies if not qualifies(p)]  # None and rs-west announcement rooms
        res["room_mix"] = (len(qual), len(nonqual), sum(p is None for p in policies))
        # Actors and targets: gym-nord users on the roster (i % 3 != 2), distinct.
        pool = [i for i in rng.sample(range(args.users), min(args.users, 6000)) if school_of_user(i) == "gym-nord"]
        pairs = [(uid(pool[j]), uid(pool[j + 1])) for j in range(0, len(pool) - 1, 2)][:2048]

        def shared(k: int, last_qualifies: bool) -> list:
            lst = [rng.choice(nonqual) for _ in range(k - 1 if last_qualifies else k)]
            if last_qualifies:
                lst.append(rng.choice(qual))
            return lst

        cb, no = _core.CB_USER_MAY_INVITE, _core.FACT_NO
        cases: list[tuple[str, Any, list[tuple]]] = []
        cases.append(("invite, room not known -> NEED_ROOM", _core.NEED_ROOM,
                      [decide_args(cb, a, b, INVITE_ROOM, False, None, _core.FACT_UNKNOWN, None) for a, b in pairs]))
        cases.append(("unmanaged room, shared not known -> NEED_SHARED_ROOMS", _core.NEED_SHARED_ROOMS,
                      [decide_args(cb, a, b, INVITE_ROOM, True, None, _core.FACT_UNKNOWN, None) for a, b in pairs]))
        cases.append(("0 shared rooms -> denied (audited)", "no_shared_room",
                      [decide_args(cb, a, b, INVITE_ROOM, True, None, no, []) for a, b in pairs]))
        for k in (1, 5, 20):
            cases.append((f"{k} shared, qualifying one last -> allowed", None,
                          [decide_args(cb, a, b, INVITE_ROOM, True, None, no, shared(k, True)) for a, b in pairs]))
        cases.append(("20 shared, none qualifies -> denied (audited)", "no_shared_room",
                      [decide_args(cb, a, b, INVITE_ROOM, True, None, no, shared(20, False)) for a, b in pairs]))

        decide = engine.decide
        for name, expected, arglists in cases:
            for a in arglists:
                out = decide(*a)
                got = out[0] if isinstance(out, tuple) else out
                if got != expected:
                    raise AssertionError(f"{name}: expected {expected!r}, got {out!r} for {a[1]} -> {a[2]}")
        log(f"engine: {len(cases)} cases checked on {len(pairs)} actor/target pairs each; timing "
            f"{args.batches} batches x {args.batch} decisions per case, interleaved")
        samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        n_pairs = len(pairs)
        offset = 0
        gc.disable()
        try:
            for _ in range(args.batches):
                if deadline.passed():
                    break
                for name, _, arglists in cases:
                    batch = [arglists[(offset + j) % n_pairs] for j in range(args.batch)]
                    t0 = time.perf_counter_ns()
                    for a in batch:
                        decide(*a)
                    samples[name].append((time.perf_counter_ns() - t0) / args.batch)
                offset += args.batch
        finally:
            gc.enable()
        engine.audit_flush()
        res["audit"] = engine.audit_stats()
        res["engine"] = [(name, len(s), statistics.median(s), pct(s, 99)) for name, s in samples.items()]
        res["engine_by_name"] = {name: statistics.median(s) for name, s in samples.items()}
        res["engine_ref"] = engine  # kept for the churn demonstration
        res["data_dir"] = data_dir
        return res
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise


# ---- part 2: Synapse's store -----------------------------------------------------

def event_id(rng: random.Random) -> str:
    return "$" + base64.urlsafe_b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode().rstrip("=")


def build_rows(args, room_ids: list[str], policies: list[dict | None], rng: random.Random):
    """Returns (COPY text, truth: user -> set of joined room ids, heavy users by room count)."""
    n_rooms = len(room_ids)
    lo, hi = max(1, args.rooms_per_user - 2), args.rooms_per_user + 2
    truth: dict[str, set[str]] = {}
    member_rows: list[tuple[str, str, str]] = []  # (room, user, membership)
    for i in range(args.users):
        user = uid(i)
        rooms = rng.sample(range(n_rooms), rng.randint(lo, hi))
        truth[user] = {room_ids[r] for r in rooms}
        member_rows.extend((room_ids[r], user, "join") for r in rooms)
        if i % 20 == 0:  # 5% of users once left a room
            r = rng.randrange(n_rooms)
            if room_ids[r] not in truth[user]:
                member_rows.append((room_ids[r], user, "leave"))
    heavy: dict[int, list[str]] = {}
    for count in (1, 100, 300):  # users outside the roster range, for "cost ~ own room count"
        for j in range(16):
            user = f"@heavy{count}_{j}:{SERVER}"
            rooms = rng.sample(range(n_rooms), min(count, n_rooms))
            truth[user] = {room_ids[r] for r in rooms}
            member_rows.extend((room_ids[r], user, "join") for r in rooms)
            heavy.setdefault(count, []).append(user)
    rng.shuffle(member_rows)  # events arrive interleaved: a user's rows are spread over the heap
    buf = io.StringIO()
    w = buf.write
    so = 0
    n_state = 0
    for r, room in enumerate(room_ids):
        for etype in ("m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility"):
            so += 1
            w(f"{event_id(rng)}\t{room}\t{etype}\t\t\\N\t{so}\n")
            n_state += 1
        if policies[r] is not None:
            so += 1
            w(f"{event_id(rng)}\t{room}\t{POLICY_TYPE}\t\t\\N\t{so}\n")
            n_state += 1
    for room, user, membership in member_rows:
        so += 1
        w(f"{event_id(rng)}\t{room}\tm.room.member\t{user}\t{membership}\t{so}\n")
    n_join = sum(1 for m in member_rows if m[2] == "join")
    return buf, truth, heavy, {"join": n_join, "leave": len(member_rows) - n_join, "other_state": n_state,
                               "total": so}


class SqlRooms:
    """get_rooms_for_user's SQL, one REPEATABLE READ transaction per call (runInteraction)."""

    def __init__(self, conn):
        self.conn = conn
        self.cur = conn.cursor()

    def rooms_for_user(self, user_id: str) -> frozenset[str]:
        self.cur.execute(ROOMS_FOR_USER_SQL, ("m.room.member", "join", user_id))
        rows = frozenset(r[0] for r in self.cur.fetchall())
        self.conn.commit()
        return rows


def make_cached_store(sql: SqlRooms):
    """A store with Synapse's own @cached descriptors and the bodies of
    roommember.py's get_rooms_for_user / get_mutual_rooms_between_users."""
    from twisted.internet import reactor

    from synapse.util.caches.descriptors import _CacheContext, cached
    from synapse.util.clock import Clock

    class Store:
        server_name = SERVER

        def __init__(self) -> None:
            self.clock = Clock(reactor, SERVER)
            self.db_calls = 0

        @cached(max_entries=500000, iterable=True)
        async def get_rooms_for_user(self, user_id: str) -> frozenset[str]:
            self.db_calls += 1
            return sql.rooms_for_user(user_id)

        @cached(cache_context=True, iterable=True)
        async def get_mutual_rooms_between_users(self, user_ids: frozenset[str],
                                                 cache_context: _CacheContext) -> frozenset[str]:
            shared_room_ids: frozenset[str] | None = None
            for user_id in user_ids:
                room_ids = await self.get_rooms_for_user(user_id, on_invalidate=cache_context.invalidate)
                if shared_room_ids is not None:
                    shared_room_ids &= room_ids
                else:
                    shared_room_ids = room_ids
            return shared_room_ids or frozenset()

    return Store()


def result_of(d) -> Any:
    """The result of a Deferred that has already fired (no reactor is running)."""
    out: list = []
    d.addBoth(out.append)
    if not out:
        raise RuntimeError("Deferred did not fire synchronously")
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def time_each(fn: Callable[[Any], Any], items: list, deadline: Deadline) -> list[float]:
    out = []
    gc.disable()
    try:
        for x in items:
            if deadline.passed():
                break
            t = time.perf_counter_ns()
            fn(x)
            out.append(time.perf_counter_ns() - t)
    finally:
        gc.enable()
    return out


def time_batches(fn: Callable[[Any], Any], items: list, repeats: int, deadline: Deadline) -> list[float]:
    """ns per item, one sample per pass over items."""
    out = []
    gc.disable()
    try:
        for _ in range(repeats):
            if deadline.passed():
                break
            t = time.perf_counter_ns()
            for x in items:
                fn(x)
            out.append((time.perf_counter_ns() - t) / len(items))
    finally:
        gc.enable()
    return out


def find_line(path: str, pattern: str, after: str | None = None) -> str:
    """'file:line' of the first line matching pattern (after the first line matching `after`)."""
    import synapse

    base = os.path.dirname(os.path.dirname(synapse.__file__))
    full = os.path.join(os.path.dirname(synapse.__file__), path)
    started = after is None
    with open(full) as f:
        for n, line in enumerate(f, 1):
            if not started and re.search(after, line):
                started = True
            if started and re.search(pattern, line):
                return f"{os.path.relpath(full, base)}:{n}"
    return f"{path}: '{pattern}' not found"


def part2(args, room_ids: list[str], policies: list[dict | None], rng: random.Random, deadline: Deadline,
          engine) -> dict:
    import psycopg2

    res: dict[str, Any] = {}
    t = time.perf_counter()
    buf, truth, heavy, counts = build_rows(args, room_ids, policies, rng)
    res["rows"] = counts
    log(f"rows generated in {time.perf_counter() - t:.1f}s: {counts}")
    pg = PostgresCluster()
    try:
        t = time.perf_counter()
        pg.start()
        dsn = pg.create_database("bench")
        admin = psycopg2.connect(**dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SHOW server_version")
            res["pg_version"] = cur.fetchone()[0]
            cur.execute(CSE_TABLE)
            buf.seek(0)
            cur.copy_expert("COPY current_state_events (event_id, room_id, type, state_key, membership, "
                            "event_stream_ordering) FROM STDIN", buf)
            del buf
            t_copy = time.perf_counter() - t
            cur.execute(CSE_INDEXES)
            cur.execute("ANALYZE current_state_events")
            cur.execute("SELECT count(*), pg_size_pretty(pg_table_size('current_state_events')), "
                        "pg_size_pretty(pg_indexes_size('current_state_events')) FROM current_state_events")
            res["table"] = cur.fetchone()
            cur.execute("SHOW shared_buffers")
            res["shared_buffers"] = cur.fetchone()[0]
        res["load_s"] = time.perf_counter() - t
        log(f"PostgreSQL {res['pg_version']} on 127.0.0.1:{pg.port}: start+COPY {t_copy:.1f}s, "
            f"indexes+ANALYZE {res['load_s'] - t_copy:.1f}s; rows, table, indexes = {res['table']}")

        conn = psycopg2.connect(**dsn)  # a connection like Synapse's: REPEATABLE READ, explicit commits
        conn.set_session(isolation_level="REPEATABLE READ", autocommit=False)
        sql = SqlRooms(conn)
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + ROOMS_FOR_USER_SQL,
                        ("m.room.member", "join", uid(12345 % args.users)))
            res["plan"] = [r[0] for r in cur.fetchall()]
        conn.commit()

        # Pairs: half random, half two members of the same room.
        members: dict[str, list[str]] = {}
        for i in range(args.users):
            for r in truth[uid(i)]:
                members.setdefault(r, []).append(uid(i))
        users_used: set[str] = set()
        rand_pairs, co_pairs = [], []
        for _ in range(args.pairs * 20):  # bounded
            if len(rand_pairs) >= args.pairs // 2:
                break
            a, b = uid(rng.randrange(args.users)), uid(rng.randrange(args.users))
            if a != b and a not in users_used and b not in users_used:
                users_used.update((a, b))
                rand_pairs.append((a, b))
        for _ in range(args.pairs * 20):
            if len(co_pairs) >= args.pairs - args.pairs // 2:
                break
            room = room_ids[rng.randrange(len(room_ids))]
            if len(members.get(room, ())) < 2:
                continue
            a, b = rng.sample(members[room], 2)
            if a not in users_used and b not in users_used:
                users_used.update((a, b))
                co_pairs.append((a, b))
        pairs = rand_pairs + co_pairs

        def cold_pair(p):
            return sql.rooms_for_user(p[0]) & sql.rooms_for_user(p[1])

        store = make_cached_store(sql)  # Synapse's own @cached descriptors over the same SQL

        def mutual(p):
            return result_of(store.get_mutual_rooms_between_users(frozenset(p)))

        # cold: Synapse's cache holds neither user. The SQL path alone and the
        # @cached store's first call, alternating pair by pair (order flipped
        # every pair) so that drift on the noisy machine hits both alike. The
        # first pass over the pairs is reported on its own: PostgreSQL then reads
        # the users' index and heap pages into shared_buffers (from the OS page
        # cache: the machine has the RAM; a disk read would come on top).
        res["cold_first"] = time_each(cold_pair, pairs, deadline)
        cold_sql: dict[str, list[float]] = {"random pairs": [], "co-member pairs": []}
        cached_cold: list[float] = []
        gc.disable()
        try:
            for j, p in enumerate(pairs):
                if deadline.passed():
                    break
                kind = "random pairs" if j < len(rand_pairs) else "co-member pairs"
                for first in ((0, 1) if j % 2 == 0 else (1, 0)):
                    if first == 0:
                        t = time.perf_counter_ns()
                        cold_pair(p)
                        cold_sql[kind].append(time.perf_counter_ns() - t)
                    else:
                        store.get_rooms_for_user.invalidate((p[0],))  # cascades to the pair's entry
                        store.get_rooms_for_user.invalidate((p[1],))
                        t = time.perf_counter_ns()
                        mutual(p)
                        cached_cold.append(time.perf_counter_ns() - t)
        finally:
            gc.enable()
        res["cold_sql"] = cold_sql
        res["cached_cold"] = cached_cold
        # The SQL against the generated truth (joins only, leaves excluded); after
        # the timing, so that it does not warm the first-touch pages.
        for a, b in pairs[:200]:
            if sql.rooms_for_user(a) != truth[a] or sql.rooms_for_user(b) != truth[b]:
                raise AssertionError(f"SQL disagrees with the generated memberships for {a} or {b}")

        shared_counts = [len(truth[a] & truth[b]) for a, b in pairs]
        res["shared_dist"] = {
            "random": sum(1 for a, b in rand_pairs if truth[a] & truth[b]) / max(1, len(rand_pairs)),
            "co_k": statistics.mean(len(truth[a] & truth[b]) for a, b in co_pairs) if co_pairs else 0,
            "max_k": max(shared_counts) if shared_counts else 0,
        }

        # Cost vs the users' own room counts (heavy users: 1, 100, 300 rooms).
        by_count = {}
        typical = [p[0] for p in pairs[:16]]
        groups = sorted(list(heavy.items()) + [(args.rooms_per_user, typical)])
        for _, users in groups:  # first touch of these users: discarded
            for u in users:
                sql.rooms_for_user(u)
        for count, users in groups:
            by_count[count] = time_each(sql.rooms_for_user, users * 8, deadline)
        res["by_count"] = by_count

        # The policy-state probe of a cold get_room_state (SQL only).
        def probe(room):
            with conn.cursor() as cur:
                cur.execute(POLICY_STATE_SQL, (room, POLICY_TYPE, ""))
                cur.fetchall()
            conn.commit()
        probe_rooms = [room_ids[rng.randrange(len(room_ids))] for _ in range(1000)]
        res["probe"] = time_each(probe, probe_rooms, deadline)

        for p in pairs:  # every pair and its users into the cache
            mutual(p)
        for a, b in pairs[:200]:
            if mutual((a, b)) != frozenset(truth[a] & truth[b]):
                raise AssertionError("cached store disagrees with the generated memberships")
        db_calls = store.db_calls
        # The pair cache is small (1000 entries x Synapse's default cache factor
        # 0.5 = 500): time pair hits on fewer pairs than it holds, so they are hits.
        pair_cap = store.get_mutual_rooms_between_users.cache.cache.max_size
        user_cap = store.get_rooms_for_user.cache.cache.max_size
        res["caps"] = (user_cap, pair_cap)
        hot = pairs[:max(1, min(len(pairs), pair_cap * 4 // 5))]
        for p in hot:
            mutual(p)
        db_calls = store.db_calls
        res["cached_pair_hit"] = time_batches(mutual, hot, 50, deadline)
        res["cached_pair_hit_n"] = hot
        swapped = [(pairs[j][0], pairs[(j + shift) % len(pairs)][1])
                   for shift in (1, 2, 3) for j in range(len(pairs))]
        res["cached_users_hit"] = time_each(mutual, swapped, deadline)  # first call per new pair
        if store.db_calls != db_calls:
            raise AssertionError(f"warm paths queried the database ({store.db_calls - db_calls} times)")
        # The floor: plain dict lookups + intersection.
        plain = {u: frozenset(truth[u]) for p in pairs for u in p}
        res["dict_warm"] = time_batches(lambda p: plain[p[0]] & plain[p[1]], pairs, 50, deadline)

        # ---- churn: a member leaves the only room the pair shares ---------------------
        churn: dict[str, Any] = {}
        candidate = None
        pol = dict(zip(room_ids, policies))
        for a, b in co_pairs:  # bounded by len(co_pairs)
            common = truth[a] & truth[b]
            if len(common) == 1 and qualifies(pol[next(iter(common))]):
                candidate = (a, b, next(iter(common)))
                break
        if candidate is None:
            churn["skipped"] = "no co-member pair with exactly one qualifying shared room"
        else:
            a, b, room = candidate

            def engine_verdict(shared_ids):
                out = engine.decide(*decide_args(_core.CB_USER_MAY_INVITE, a, b, INVITE_ROOM, True, None,
                                                 _core.FACT_NO, [pol[r] for r in shared_ids]))
                return "allowed" if out is None else out[0]

            before = mutual((a, b))  # warm in the cache
            churn.update(pair=(a, b), room=room, before=sorted(before), verdict_before=engine_verdict(before))
            with admin.cursor() as cur:  # the leave: Synapse replaces the row's event and membership
                cur.execute("UPDATE current_state_events SET event_id = %s, membership = 'leave', "
                            "event_stream_ordering = event_stream_ordering + 10000000 "
                            "WHERE room_id = %s AND type = 'm.room.member' AND state_key = %s",
                            (event_id(rng), room, a))
                churn["rows_updated"] = cur.rowcount
            churn["sql_after"] = sorted(sql.rooms_for_user(a) & sql.rooms_for_user(b))
            churn["cached_stale"] = sorted(mutual((a, b)))
            t = time.perf_counter_ns()
            store.get_rooms_for_user.invalidate((a,))  # what _invalidate_state_caches does for a
            after = mutual((a, b))
            churn["invalidate_and_requery_us"] = (time.perf_counter_ns() - t) / 1000
            churn["cached_after"] = sorted(after)
            churn["verdict_after"] = engine_verdict(after)
            if room in churn["sql_after"] or room in churn["cached_after"] or churn["verdict_after"] != "no_shared_room":
                raise AssertionError(f"churn: the room is still reachable: {churn}")
        churn["cites"] = {
            "_invalidate_state_caches: get_rooms_for_user.invalidate per changed member":
                find_line("storage/_base.py", r'"get_rooms_for_user", \(user_id,\)', r"def _invalidate_state_caches\("),
            "called after the current-state transaction (and streamed to workers)":
                find_line("storage/databases/main/events.py", r"_invalidate_state_caches_and_stream\("),
            "_invalidate_state_caches_and_stream: txn.call_after + cache stream row":
                find_line("storage/databases/main/cache.py", r"call_after\(self\._invalidate_state_caches",
                          r"def _invalidate_state_caches_and_stream"),
            "other workers: caches stream CURRENT_STATE_CACHE_NAME -> _invalidate_state_caches":
                find_line("storage/databases/main/cache.py", r"self\._invalidate_state_caches\(room_id, members_changed\)",
                          r"def process_replication_rows"),
            "other workers: events stream current-state row (m.room.member)":
                find_line("storage/databases/main/cache.py", r'"get_rooms_for_user", \(data\.state_key,\)'),
            "_invalidate_caches_for_event (m.room.member)":
                find_line("storage/databases/main/cache.py", r'"get_rooms_for_user", \(state_key,\)',
                          r"def _invalidate_caches_for_event"),
            "get_mutual_rooms_between_users: cache_context -> on_invalidate":
                find_line("storage/databases/main/roommember.py", r"on_invalidate=cache_context\.invalidate",
                          r"async def get_mutual_rooms_between_users"),
        }
        res["churn"] = churn
        conn.close()
        admin.close()
        return res
    finally:
        pg.stop()


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
