"""One pupil floods denials: what it costs everyone else, and the audit.

Starts a throwaway PostgreSQL and a Synapse with the module on it
(tests/harness), a one-way course with a teacher, a pupil and another
user, then:

- stalled (--stall-seconds S): holds a lock on school_policy.audit (as a
  slow or failing database would), starts --loops loops of the pupil's
  denied messages (each sends again as soon as it has an answer), and after
  --warmup seconds times the teacher's allowed messages and another user's
  GET /_matrix/client/versions, against the same measured idle; then
  releases the lock and waits until the audit counts every denial the loops
  were answered;
- healthy (--flood-seconds F): the same loops for F seconds with the
  database healthy; how many audit records they left against how many
  denials they were answered.

It passes the module no audit.flood keys, so it runs the same against a
version without the flood limit (the "before" of docs/benchmarks.md).

    VENV/bin/python bench/denial_flood.py --loops 20
    VENV/bin/python bench/denial_flood.py --loops 20 --flood-seconds 60 --stall-seconds 0
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from benchlib import log, percentile  # noqa: E402
from harness.client import register_user, request  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.synapse import SynapseServer  # noqa: E402

ADMIN_API = "/_synapse/client/school_policy/v1"
POLICY_TYPE = "org.synapse_school_policy.room"
TEXT = {"msgtype": "m.text", "body": "hallo"}


class Flood:
    def __init__(self, pupil, room_id, loops):
        self.pupil, self.room_id = pupil, room_id
        self.answers = Counter()
        self.latencies = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop) for _ in range(loops)]

    def _loop(self):
        while not self.stop.is_set():
            started = time.perf_counter()
            status, body = self.pupil.send(self.room_id, "m.room.message", TEXT)
            took = time.perf_counter() - started
            with self.lock:
                self.answers[(status, body.get("errcode"))] += 1
                self.latencies.append(took)

    def start(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        self.seconds = time.monotonic() - self.started

    @property
    def denials(self):
        return sum(n for (status, _), n in self.answers.items() if status in (403, 429, 503))


def timed(fn, n):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        status, body = fn()
        times.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"expected 200, got {status} {body}")
    return times


def summary(times):
    ms = 1000.0
    return (f"p50 {percentile(times, 50) * ms:.1f} ms, p95 {percentile(times, 95) * ms:.1f} ms, "
            f"max {max(times) * ms:.1f} ms")


def audit_of(pg, dbname, actor):
    """(records, denials they count) of the actor: without the count
    column (a version before the flood limit) every record is one."""
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = 'school_policy'"
                        " AND table_name = 'audit' AND column_name = 'count'")
            counted = "sum(coalesce(count, 1))" if cur.fetchone() else "count(*)"
            cur.execute(f"SELECT count(*), coalesce({counted}, 0) FROM school_policy.audit WHERE actor = %s",
                        (actor,))
            return tuple(int(v) for v in cur.fetchone())
    finally:
        conn.close()


def wait_counted(pg, dbname, actor, want, before, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        records, counted = audit_of(pg, dbname, actor)
        if counted - before[1] >= want or time.monotonic() > deadline:
            return records - before[0], counted - before[1]
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--stall-seconds", type=float, default=12.0,
                        help="how long the audit stays locked under the flood (0: skip)")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds of flood before measuring")
    parser.add_argument("--flood-seconds", type=float, default=0.0,
                        help="the flood with the database healthy, for this long (0: skip)")
    parser.add_argument("--samples", type=int, default=20,
                        help="the teacher's messages timed (twice as many /versions)")
    args = parser.parse_args()

    pg = PostgresCluster().start()
    server = None
    try:
        module_db = f"module_flood_{os.getpid()}"
        pg.create_database(module_db)
        module_config = {"service_users": ["@sync:school.test"], "database": pg.dsn(module_db),
                         "data_dir": tempfile.mkdtemp(prefix="ssp-bench-flood-"),
                         "schools": {"gym-nord": {"messenger": True}}}
        server = SynapseServer(tempfile.mkdtemp(prefix="ssp-bench-flood-synapse-"), module_config=module_config,
                               database=pg.create_database(f"synapse_flood_{os.getpid()}"))
        server.start()
        sync = register_user(server, "sync", "pw-sync")
        teacher = register_user(server, "teacher", "pw-teacher")
        pupil = register_user(server, "pupil", "pw-pupil")
        other = register_user(server, "other", "pw-other")
        roster = {"users": [{"user_id": teacher.user_id, "schools": [{"school": "gym-nord", "role": "teacher"}]},
                            {"user_id": pupil.user_id, "schools": [{"school": "gym-nord", "role": "student"}]},
                            {"user_id": other.user_id, "schools": [{"school": "gym-nord", "role": "student"}]}]}
        status, body = request(server.base_url, "POST", ADMIN_API + "/roster", roster, token=sync.token)
        assert status == 200, body
        status, body = sync.create_room(
            preset="private_chat", invite=[teacher.user_id, pupil.user_id, other.user_id],
            power_level_content_override={"users": {teacher.user_id: 50}, "events_default": 50},
            initial_state=[{"type": POLICY_TYPE, "state_key": "",
                            "content": {"school": "gym-nord", "kind": "course", "two_way": False}}])
        assert status == 200, body
        room_id = body["room_id"]
        for client in (teacher, pupil, other):
            assert client.join(room_id)[0] == 200
        send = lambda: teacher.send(room_id, "m.room.message", TEXT)  # noqa: E731
        versions = lambda: other.request("GET", "/_matrix/client/versions")  # noqa: E731
        timed(send, 5)
        teacher_idle, versions_idle = timed(send, 20), timed(versions, 40)
        log(f"idle: teacher's send {summary(teacher_idle)}; /versions {summary(versions_idle)}")

        if args.stall_seconds > 0:
            before = audit_of(pg, module_db, pupil.user_id)
            conn = pg.connect(module_db)
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("LOCK TABLE school_policy.audit IN SHARE MODE")
            flood = Flood(pupil, room_id, args.loops)
            flood.start()
            time.sleep(args.warmup)
            teacher_flood, versions_flood = timed(send, args.samples), timed(versions, 2 * args.samples)
            time.sleep(max(0.0, args.stall_seconds - (time.monotonic() - flood.started)))
            flood.finish()
            conn.rollback()
            conn.close()
            log(f"stalled audit, {args.loops} loops for {flood.seconds:.1f} s: teacher's send "
                f"{summary(teacher_flood)}; /versions {summary(versions_flood)}")
            log(f"  the pupil's answers: {dict(flood.answers)}, {summary(flood.latencies)}")
            records, counted = wait_counted(pg, module_db, pupil.user_id, flood.denials, before)
            log(f"  after the lock: {records} audit records count {counted} of {flood.denials} denials")

        if args.flood_seconds > 0:
            before = audit_of(pg, module_db, pupil.user_id)
            flood = Flood(pupil, room_id, args.loops)
            flood.start()
            time.sleep(args.flood_seconds)
            flood.finish()
            records, counted = wait_counted(pg, module_db, pupil.user_id, flood.denials, before)
            per_minute = 60.0 / flood.seconds
            log(f"healthy database, {args.loops} loops for {flood.seconds:.1f} s: answers {dict(flood.answers)} "
                f"({flood.denials / flood.seconds:.0f} denials/s), {summary(flood.latencies)}")
            log(f"  {records} audit records ({records * per_minute:.0f} a minute) count {counted} of "
                f"{flood.denials} denials")
    finally:
        if server is not None:
            server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
