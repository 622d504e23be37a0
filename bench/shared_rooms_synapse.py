"""Part 2 of bench/shared_rooms.py: Synapse's store as the data source (see that file)."""

import base64
import gc
import io
import os
import random
import re
import statistics
import sys
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness.postgres import PostgresCluster  # noqa: E402
from synapse_school_policy import _core  # noqa: E402
from benchlib import log  # noqa: E402
from shared_rooms_engine import decide_args  # noqa: E402
from shared_rooms_world import (  # noqa: E402
    CSE_INDEXES,
    CSE_TABLE,
    Deadline,
    INVITE_ROOM,
    POLICY_STATE_SQL,
    POLICY_TYPE,
    ROOMS_FOR_USER_SQL,
    SERVER,
    qualifies,
    uid,
)

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
