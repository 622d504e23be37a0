"""One pupil floods denials (docs/workers.md, "A flood of denials";
docs/audit.md, "A summary of a flood").

20 parallel loops of one pupil send messages into a one-way course as fast
as the server answers, and never wait for what it says. The server must
stay well for everyone else, the pupil's client must be told to slow down
(Synapse's own 429 M_LIMIT_EXCEEDED), and the audit must count every one
of those denials in a bounded number of records.

- PostgreSQL with the audit INSERTs stalled (a lock on school_policy.audit
  that the test holds through the flood, as a slow or failing database
  would): another user's message and GET /_matrix/client/versions keep
  their idle latency; once the lock goes, the pupil's denials are all
  counted in the audit.
- The database healthy, on both stores: the audit grows by at most the
  documented bound, and its counts add up to the denials the clients saw.

One Synapse per store for the whole file. The flood's config is the
documented default but for summary_seconds (2 instead of 10), so that the
summaries close within the test's seconds, not its minutes."""
import statistics
import threading
import time
import uuid
from collections import Counter

import pytest

from harness.client import wait_for
from support import School, base_config, membership, uid

pytestmark = pytest.mark.integration

LOOPS = 20
FLOOD = {"denials_per_minute": 30, "burst": 10, "summary_seconds": 2}
TEXT = {"msgtype": "m.text", "body": "hallo"}


def world_on(factory, tmp, postgres=None):
    overrides = {"audit": {"flood": FLOOD}}
    dbname = None
    if postgres is not None:
        dbname = f"flood_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        overrides["database"] = postgres.dsn(dbname)
    world = School(factory(base_config(tmp / "store", **overrides)))
    for name in ("sync", "teacher", "pupil", "other"):
        world.register(name)
    status, body = world.admin_api("POST", "/roster", {"users": [
        {"user_id": uid("teacher"), "schools": [membership("gym-nord", "teacher")]},
        {"user_id": uid("pupil"), "schools": [membership("gym-nord", "student")]},
        {"user_id": uid("other"), "schools": [membership("gym-nord", "student")]},
    ]})
    assert status == 200, body
    room = world.managed_room("gym-nord", invite=["teacher", "pupil", "other"], moderators=["teacher"])
    for name in ("teacher", "pupil", "other"):
        assert world.users[name].join(room)[0] == 200
    return world, room, dbname


@pytest.fixture(scope="module")
def postgres_world(module_synapse_factory, postgres, tmp_path_factory):
    world, room, dbname = world_on(module_synapse_factory, tmp_path_factory.mktemp("pg"), postgres)
    return world, room, lambda: postgres.connect(dbname)


@pytest.fixture(scope="module")
def embedded_world(module_synapse_factory, tmp_path_factory):
    world, room, _ = world_on(module_synapse_factory, tmp_path_factory.mktemp("embedded"))
    return world, room, None


class Flood:
    """20 loops of the pupil's denied sends; what each answer was."""

    def __init__(self, world, room, sender="pupil"):
        self.user = world.users[sender]
        self.room = room
        self.answers = Counter()  # 403 / 429 / 503 (every one of them a denial)
        self.unexpected = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop) for _ in range(LOOPS)]

    def _loop(self):
        while not self.stop.is_set():
            status, body = self.user.send(self.room, "m.room.message", TEXT)
            rule = body.get("school_policy", {}).get("rule")
            with self.lock:
                if status in (403, 429, 503) and rule == "one_way":
                    self.answers[status] += 1
                    if status == 429:
                        limited = body.get("school_policy", {}).get("limited")
                        if body.get("errcode") != "M_LIMIT_EXCEEDED" or not limited or not body.get("retry_after_ms"):
                            self.unexpected.append((status, body))
                else:
                    self.unexpected.append((status, body))

    def __enter__(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        self.seconds = time.monotonic() - self.started

    @property
    def denials(self):
        return sum(self.answers.values())


def timed(fn, n):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        status, body = fn()
        times.append(time.perf_counter() - started)
        assert status == 200, body
    return times


def p50(times):
    return statistics.median(times)


def teacher_sends(world, room):
    return lambda: world.users["teacher"].send(room, "m.room.message", TEXT)


def versions(world):
    return lambda: world.users["other"].request("GET", "/_matrix/client/versions")


def audit_counts(world):
    """(records, sum of count) of the pupil's one_way denials."""
    records = world.audit(user=uid("pupil"), rule="one_way", limit=1000)
    return len(records), sum(r["count"] for r in records)


def wait_for_every_denial_counted(world, flood, timeout=30):
    # The summaries close within summary_seconds of their span (plus the
    # one-second sweep), then reach the store.
    wait_for(lambda: audit_counts(world)[1] >= flood.denials, timeout=timeout,
             what=f"{flood.denials} denials counted in the audit")
    return audit_counts(world)


def bound(seconds):
    """The documented bound on a flooding key's records over `seconds`:
    the burst, then denials_per_minute a minute of their own, and a summary
    per summary_seconds (one more for the span the flood ends in)."""
    minutes = seconds / 60
    return (FLOOD["burst"] + int(FLOOD["denials_per_minute"] * minutes) + 1
            + int(seconds / FLOOD["summary_seconds"]) + 2)


def stall_audit_inserts(connect):
    conn = connect()
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("LOCK TABLE school_policy.audit IN SHARE MODE")
    return conn


def test_a_flood_while_the_audit_is_stalled_leaves_other_users_and_the_server_unharmed(postgres_world):
    world, room, connect = postgres_world
    teacher_idle = p50(timed(teacher_sends(world, room), 20))
    versions_idle = p50(timed(versions(world), 20))

    stall = stall_audit_inserts(connect)
    try:
        with Flood(world, room) as flood:
            time.sleep(6)  # past the burst's 5 s wait and into the limited phase
            teacher_flood = timed(teacher_sends(world, room), 20)
            versions_flood = timed(versions(world), 40)
        assert not flood.unexpected, flood.unexpected[:3]
    finally:
        stall.rollback()
        stall.close()
    records, counted = wait_for_every_denial_counted(world, flood)

    print(f"\nstalled audit, {LOOPS} loops for {flood.seconds:.1f} s: answers {dict(flood.answers)}; "
          f"teacher's send p50 idle {teacher_idle * 1000:.1f} ms, flood {p50(teacher_flood) * 1000:.1f} ms "
          f"(max {max(teacher_flood) * 1000:.1f}); /versions p50 idle {versions_idle * 1000:.1f} ms, "
          f"flood {p50(versions_flood) * 1000:.1f} ms (max {max(versions_flood) * 1000:.1f}); "
          f"{records} records count {counted} denials")
    assert p50(teacher_flood) < 2 * teacher_idle
    assert p50(versions_flood) < 0.050 and sorted(versions_flood)[int(len(versions_flood) * 0.9)] < 0.050
    # The pupil was told to slow down. The burst's denials waited for their
    # records: the writer spills a locked table after its lock_timeout, so
    # they are 403s once in the spill file (durable), or 503s if even that
    # took too long; never a 403 without a record (counted below).
    assert flood.answers[429] > flood.answers[403] + flood.answers[503] > 0
    assert counted == flood.denials
    assert records <= bound(flood.seconds)


@pytest.mark.parametrize("store", ["embedded", "postgres"])
def test_a_flood_grows_the_audit_by_the_documented_bound_and_counts_every_denial(store, request):
    world, room, _ = request.getfixturevalue(f"{store}_world")
    before_records, before_counted = audit_counts(world)
    with Flood(world, room) as flood:
        time.sleep(8)
    assert not flood.unexpected, flood.unexpected[:3]
    wait_for(lambda: audit_counts(world)[1] - before_counted >= flood.denials, timeout=30,
             what="every denial counted")
    records, counted = audit_counts(world)
    records -= before_records
    counted -= before_counted
    print(f"\n{store}, {LOOPS} loops for {flood.seconds:.1f} s: answers {dict(flood.answers)}; "
          f"{records} records count {counted} denials (bound {bound(flood.seconds)})")
    assert counted == flood.denials
    assert flood.answers[429] > 0 and flood.answers[503] == 0
    # Every 403 had its own record; the rest are in summaries.
    assert flood.answers[403] <= FLOOD["burst"] + FLOOD["denials_per_minute"] * flood.seconds / 60 + 1
    assert records <= bound(flood.seconds)
