"""Audit throughput and roster load of the PostgreSQL store.

Starts a throwaway PostgreSQL cluster (tests/harness), opens an engine on
it and measures:
- audit: N denials decided as fast as possible; records/s from the first
  decision until the last record is committed in PostgreSQL, and the p50/p99
  of the decision call itself while the store thread writes;
- roster (--roster N): N roster rows loaded at engine start-up (COPY), the
  time and the process's resident memory growth;
- denials (--denials N): the HTTP round trip of a denied message through a
  real Synapse (tests/harness) with the module on each store (--store
  embedded, postgres or both): a pupil posts into a one-way course and gets
  403 one_way. N denials one after another, then N from --concurrency
  clients at once (p50/p99 per request, denials/s), and a teacher's allowed
  messages for comparison. With PostgreSQL it also counts the module
  database's commits during the concurrent phase;
- group commit (--waiters T): T threads each decide --per-thread denials and
  wait for each one's record (Engine.wait_durable, as the adapter does before
  a 403), on each store; prints denials/s, the wait's p50/p99 and how many
  fdatasync calls (embedded store, counted by strace attached meanwhile) or
  commits (PostgreSQL) the records took.

    VENV/bin/python bench/audit_throughput.py --records 200000 --roster 1000000
    VENV/bin/python bench/audit_throughput.py --records 0 --denials 400
    VENV/bin/python bench/audit_throughput.py --records 0 --waiters 32
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from harness.client import Client, register_user, request  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.synapse import SynapseServer  # noqa: E402

from synapse_school_policy import _core  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))] if ordered else float("nan")


ADMIN_API = "/_synapse/client/school_policy/v1"
POLICY_TYPE = "org.synapse_school_policy.room"


def module_commits(pg, dbname: str) -> int:
    conn = pg.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def timed_sends(client: Client, room_id: str, n: int, expect: int, out: list[float]) -> None:
    for i in range(n):
        t0 = time.perf_counter()
        status, body = client.send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"m{i}"})
        out.append(time.perf_counter() - t0)
        if status != expect:
            raise RuntimeError(f"{client.user_id}: expected {expect}, got {status} {body}")


def denial_latency(pg, store: str, n: int, concurrency: int) -> None:
    """The HTTP round trip of denied messages through a real Synapse."""
    tag = f"{store}_{os.getpid()}"
    data_dir = tempfile.mkdtemp(prefix=f"ssp-bench-denials-{store}-")
    # Every denial a 403 with its own record, as this bench times: the flood
    # limit (audit.flood) would answer most of a pupil's 400 with 429s.
    module_config = {"service_users": ["@sync:school.test"], "data_dir": data_dir,
                     "schools": {"gym-nord": {"messenger": True}},
                     "audit": {"flood": {"burst": 1000000}}}
    module_db = None
    if store == "postgres":
        module_db = f"module_{tag}"
        pg.create_database(module_db)
        module_config["database"] = pg.dsn(module_db)
    server = SynapseServer(tempfile.mkdtemp(prefix=f"ssp-bench-synapse-{store}-"), module_config=module_config,
                           database=pg.create_database(f"synapse_{tag}"))
    server.start()
    try:
        sync = register_user(server, "sync", "pw-sync")
        teacher = register_user(server, "teacher", "pw-teacher")
        pupils = [register_user(server, f"pupil{i}", f"pw-{i}") for i in range(concurrency)]
        roster = {"users": [{"user_id": teacher.user_id, "schools": [{"school": "gym-nord", "role": "teacher"}]}] +
                  [{"user_id": p.user_id, "schools": [{"school": "gym-nord", "role": "student"}]} for p in pupils]}
        status, body = request(server.base_url, "POST", ADMIN_API + "/roster", roster, token=sync.token)
        assert status == 200, body
        status, body = sync.create_room(
            preset="private_chat", invite=[teacher.user_id] + [p.user_id for p in pupils],
            power_level_content_override={"users": {teacher.user_id: 50}, "events_default": 50},
            initial_state=[{"type": POLICY_TYPE, "state_key": "",
                            "content": {"school": "gym-nord", "kind": "course", "two_way": False}}])
        assert status == 200, body
        room_id = body["room_id"]
        for client in [teacher] + pupils:
            status, body = client.join(room_id)
            assert status == 200, body
        warm: list[float] = []
        timed_sends(pupils[0], room_id, 20, 403, warm)
        timed_sends(teacher, room_id, 5, 200, warm)

        sequential: list[float] = []
        timed_sends(pupils[0], room_id, n, 403, sequential)

        concurrent: list[list[float]] = [[] for _ in pupils]
        commits_before = module_commits(pg, module_db) if module_db else 0
        threads = [threading.Thread(target=timed_sends, args=(p, room_id, n // concurrency, 403, concurrent[i]))
                   for i, p in enumerate(pupils)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - started
        flat = [x for xs in concurrent for x in xs]
        if len(flat) != (n // concurrency) * concurrency:
            raise RuntimeError("a client thread failed")
        commits = None
        if module_db:
            time.sleep(1.5)  # backends report their counters when idle
            commits = module_commits(pg, module_db) - commits_before

        allowed: list[float] = []
        timed_sends(teacher, room_id, max(10, n // 8), 200, allowed)
        ms = 1000.0
        print(f"denials [{store}] sequential: {len(sequential)} x 403, p50 {percentile(sequential, 50) * ms:.2f} ms, "
              f"p99 {percentile(sequential, 99) * ms:.2f} ms")
        print(f"denials [{store}] {concurrency} clients at once: {len(flat)} x 403 in {took:.2f} s "
              f"({len(flat) / took:,.0f} denials/s), p50 {percentile(flat, 50) * ms:.2f} ms, "
              f"p99 {percentile(flat, 99) * ms:.2f} ms"
              + (f"; {commits} commits in the module's database meanwhile" if commits is not None else ""))
        print(f"allowed [{store}] teacher's messages, sequential: {len(allowed)} x 200, "
              f"p50 {percentile(allowed, 50) * ms:.2f} ms, p99 {percentile(allowed, 99) * ms:.2f} ms")
    finally:
        server.stop()


def group_commit(pg, store: str, threads: int, per_thread: int) -> None:
    """Concurrent denials, each waiting for its record: how many writes they share."""
    data_dir = tempfile.mkdtemp(prefix=f"ssp-bench-group-{store}-")
    config = {"data_dir": data_dir, "schools": {"gym-nord": {"messenger": True}}}
    dbname = None
    if store == "postgres":
        dbname = f"group_{os.getpid()}"
        pg.create_database(dbname)
        config["database"] = pg.dsn(dbname)
    engine = _core.Engine(json.dumps(config), "school.test", "main")
    engine.open()
    cb, no = _core.CB_CHECK_LOGIN_FOR_SPAM, _core.FACT_NO
    waits: list[list[float]] = [[] for _ in range(threads)]
    not_durable = []

    def worker(k: int) -> None:
        for j in range(per_thread):
            outcome = engine.decide(cb, f"@nobody{k}x{j}:school.test", None, None, None, None, None, None,
                                    no, None, None, None, None)
            t0 = time.perf_counter()
            if not engine.wait_durable(outcome.audit_id, 5000):
                not_durable.append(outcome.audit_id)
            waits[k].append(time.perf_counter() - t0)

    tracer, trace_file = None, None
    if store == "embedded" and shutil.which("strace"):
        trace_file = os.path.join(data_dir, "strace.txt")
        tracer = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fdatasync", "-o", trace_file,
                                   "-p", str(os.getpid())], stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached to every thread
    commits_before = module_commits(pg, dbname) if dbname else 0
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    took = time.perf_counter() - started
    writes = ""
    if tracer is not None:
        tracer.send_signal(signal.SIGINT)
        tracer.wait()
        with open(trace_file) as f:
            calls = [line.split() for line in f if line.rstrip().endswith("fdatasync")]
        writes = f"; {calls[0][3] if calls else 0} fdatasync calls (strace attached: slower)"
    elif dbname:
        time.sleep(1.5)
        writes = f"; {module_commits(pg, dbname) - commits_before} commits in the module's database"
    flat = [x for xs in waits for x in xs]
    print(f"group commit [{store}] {threads} threads x {per_thread} denials, each waiting for its record: "
          f"{len(flat)} in {took:.2f} s ({len(flat) / took:,.0f} denials/s), wait p50 "
          f"{percentile(flat, 50) * 1000:.2f} ms, p99 {percentile(flat, 99) * 1000:.2f} ms, "
          f"{len(not_durable)} not durable within 5 s{writes}")
    del engine
    shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200000)
    parser.add_argument("--roster", type=int, default=0, help="roster rows to load at start-up")
    parser.add_argument("--denials", type=int, default=0,
                        help="denied messages through a real Synapse, sequential and concurrent")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--store", choices=("embedded", "postgres", "both"), default="both")
    parser.add_argument("--waiters", type=int, default=0,
                        help="threads deciding denials and waiting for each record (group commit)")
    parser.add_argument("--per-thread", type=int, default=200)
    args = parser.parse_args()
    pg = PostgresCluster().start()
    try:
        stores = ("embedded", "postgres") if args.store == "both" else (args.store,)
        if args.denials:
            for store in stores:
                denial_latency(pg, store, args.denials, args.concurrency)
        if args.waiters:
            for store in stores:
                group_commit(pg, store, args.waiters, args.per_thread)
        if not args.records and not args.roster:
            return
        pg.create_database("bench")
        # 1,000 actors denied again and again, a record each: past any flood limit.
        config = json.dumps({"database": pg.dsn("bench"), "data_dir": tempfile.mkdtemp(),
                             "schools": {"gym-nord": {"messenger": True}},
                             "audit": {"flood": {"burst": 1000000}}})
        engine = _core.Engine(config, "school.test", "main")
        engine.open()
        if args.roster:
            conn = pg.connect("bench")
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO school_policy.roster SELECT '@u' || g || ':school.test', "
                    "'school-' || (g %% 3000), CASE WHEN g %% 20 = 0 THEN 'teacher' ELSE 'student' END "
                    "FROM generate_series(1, %s) g", (args.roster,))
            conn.close()
            del engine
            before = rss_mb()
            started = time.monotonic()
            engine = _core.Engine(config, "school.test", "main")
            engine.open()
            took = time.monotonic() - started
            print(f"roster: {engine.roster_size()} entries loaded at start-up in {took:.2f} s, "
                  f"resident memory +{rss_mb() - before:.0f} MB "
                  f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
        if not args.records:
            return
        decide = engine.decide
        cb = _core.CB_CHECK_LOGIN_FOR_SPAM
        no = _core.FACT_NO
        actors = [f"@nobody{i % 1000}:school.test" for i in range(1000)]
        timings = []
        perf = time.perf_counter
        started = time.monotonic()
        for i in range(args.records):
            t0 = perf()
            decide(cb, actors[i % 1000], None, None, None, None, None, None, no, None, None, None, None)
            if i % 100 == 0:
                timings.append(perf() - t0)
        decided = time.monotonic() - started
        engine.audit_flush()
        total = time.monotonic() - started
        timings.sort()
        conn = pg.connect("bench")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM school_policy.audit")
            stored = cur.fetchone()[0]
        conn.close()
        print(f"audit: {args.records} denials decided in {decided:.2f} s, all committed to "
              f"PostgreSQL after {total:.2f} s: {args.records / total:,.0f} records/s "
              f"({stored} rows in school_policy.audit)")
        print(f"decide() during the run: p50 {timings[len(timings) // 2] * 1e6:.1f} us, "
              f"p99 {timings[int(len(timings) * 0.99)] * 1e6:.1f} us")
        del engine
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
