"""A denial is durable before its 403 (docs/workers.md, "Crash guarantee").

Many clients send denied messages at once; the moment the last of the
wanted number of 403s has arrived, the thread that received it SIGKILLs
Synapse, with other denied messages still in flight. After a restart every
403 that a client saw has its audit record, on the embedded store and on
PostgreSQL.

On a fast disk the writer usually wins the race against the 403 anyway, so
the third case makes the race visible: a transaction of the test holds a
lock on school_policy.audit that stalls the store's INSERTs for 2 s while
the burst starts. The 403s must wait until the records are durable: the
INSERT waits for the lock until the store thread's lock timeout (1 s),
then the records go to the spill file (fdatasync) and are inserted once
the lock is gone (a module that answered before either would be killed
with every record of that burst in memory only)."""
import threading
import time
import uuid
from collections import Counter

import pytest

from support import School, base_config, membership, uid

pytestmark = pytest.mark.integration

CLIENTS = 12
DENIALS = 300  # 403s to see before the kill
STALL_DENIALS = 100  # with the commits stalled: fewer than the burst reaches while stalled
STALL_SECONDS = 2.0  # below the adapter's 5 s wait: the denials wait for the commit or the spill
WRITER_LOCK_TIMEOUT_SECONDS = 1.0  # SSP_PG_WRITER_LOCK_TIMEOUT_MS: then the records spill


@pytest.fixture(params=["embedded", "postgres", "postgres-commit-stalled"])
def world(request, synapse_factory, postgres, tmp_path):
    overrides = {}
    if request.param.startswith("postgres"):
        dbname = f"school_policy_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        overrides["database"] = postgres.dsn(dbname)
    world = School(synapse_factory(base_config(tmp_path / "store", **overrides)))
    world.register("sync")
    world.register("teacher")
    pupils = [f"pupil{i}" for i in range(CLIENTS)]
    for name in pupils:
        world.register(name)
    status, body = world.admin_api("POST", "/roster", {"users": [
        {"user_id": uid("teacher"), "schools": [membership("gym-nord", "teacher")]},
        *({"user_id": uid(name), "schools": [membership("gym-nord", "student")]} for name in pupils),
    ]})
    assert status == 200, body
    room = world.managed_room("gym-nord", invite=["teacher", *pupils], moderators=["teacher"])
    for name in ["teacher", *pupils]:
        status, body = world.users[name].join(room)
        assert status == 200, body
    stall = None
    if request.param == "postgres-commit-stalled":
        stall = lambda: postgres.connect(dbname)  # noqa: E731
    return world, room, pupils, stall


def stall_audit_commits(connect, seconds: float, killed: threading.Event) -> threading.Thread:
    """Holds a lock that makes the store's INSERT into school_policy.audit
    wait, until `seconds` have passed or Synapse is killed."""
    conn = connect()
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("LOCK TABLE school_policy.audit IN SHARE MODE")

    def release():
        killed.wait(seconds)
        conn.rollback()
        conn.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_sigkill_right_after_a_burst_of_denials_loses_no_record(world):
    world, room, pupils, stall = world
    target = STALL_DENIALS if stall else DENIALS
    seen = Counter()  # 403s received per pupil, before the kill
    lock = threading.Lock()
    killed = threading.Event()
    failures = []

    def client(name):
        user = world.users[name]
        while not killed.is_set():
            try:
                status, body = user.send(room, "m.room.message", {"msgtype": "m.text", "body": "hallo"})
            except OSError:
                return  # the server is gone: this request was in flight
            with lock:
                if killed.is_set():
                    return  # arrived after the kill: not counted
                if status != 403 or body.get("school_policy", {}).get("rule") != "one_way":
                    failures.append((name, status, body))
                    killed.set()
                    return
                seen[name] += 1
                if sum(seen.values()) == target:
                    # Right after the response: no flush, no pause.
                    world.server.kill()
                    killed.set()

    threads = [threading.Thread(target=client, args=(name,)) for name in pupils]
    releaser = stall_audit_commits(stall, STALL_SECONDS, killed) if stall else None
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    took = time.monotonic() - started
    if releaser is not None:
        releaser.join()
    assert not failures, failures[:3]
    assert killed.is_set() and sum(seen.values()) == target, seen
    assert not world.server.running

    world.server.start()
    for name in pupils:
        records = world.audit(user=uid(name), rule="one_way", limit=1000)
        assert all(r["actor"] == uid(name) and r["room_id"] == room for r in records)
        # Every 403 the client saw has its record; a request in flight at
        # the kill may have left one more (decided, never answered).
        assert len(records) >= seen[name], (name, len(records), seen[name])
        assert len({r["id"] for r in records}) == len(records)
    if stall:
        # No 403 came back while the records were neither committed nor
        # spilled: the first batch waited out the writer's lock timeout.
        assert took >= WRITER_LOCK_TIMEOUT_SECONDS, took
