"""A large roster change and the denials decided meanwhile, on PostgreSQL.

Starts a throwaway PostgreSQL (tests/harness) and opens two engines on it,
as two Synapse processes: `main` and the worker `w1`. Loads a roster of
--roster users through main, then, while a thread on each process keeps
denying a login and waiting for each denial's audit record to be durable
(as a 403 does), writes one change of --big users through main (the roster
feed's and POST /roster's path) and waits until w1 has it. Prints how long
the change took to reach w1 and each process's longest wait for a record:
the time a denial's answer is held up by the store thread's roster work
(pushing main's outbox; reading the changes on w1).

    VENV/bin/python bench/roster_big_change.py --roster 200000 --big 30000
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from benchlib import log  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402

from synapse_school_policy import _core  # noqa: E402

SCHOOLS = {f"s{i}": {"messenger": True} for i in range(20)}


def users(first: int, n: int, prefix: str, school=None, role: str = "student") -> str:
    return json.dumps({"users": [
        {"user_id": f"@{prefix}{i}:s.test",
         "schools": [{"school": school or f"s{i % 20}", "role": role}]}
        for i in range(first, first + n)]})


def deny_and_wait(engine, stop: threading.Event, waits: list) -> None:
    while not stop.is_set():
        started = time.monotonic()
        denial = engine.decide(_core.CB_CHECK_LOGIN_FOR_SPAM, "@stranger:s.test", None, None, None,
                               None, None, None, _core.FACT_NO, None, None, None, None)
        assert engine.wait_durable(denial.audit_id, 60_000)
        waits.append((time.monotonic() - started) * 1000)
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--roster", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=30_000)
    args = parser.parse_args()
    pg = PostgresCluster().start()
    try:
        pg.create_database("school_policy")

        def engine(worker: str):
            config = {"data_dir": tempfile.mkdtemp(prefix=f"ssp-bench-{worker}-"),
                      "database": pg.dsn("school_policy"), "schools": SCHOOLS}
            e = _core.Engine(json.dumps(config), "s.test", worker)
            e.open(worker=True)
            return e

        main_engine = engine("main")
        started = time.monotonic()
        for first in range(0, args.roster, 20_000):
            main_engine.roster_upsert(users(first, min(20_000, args.roster - first), "u"))
        main_engine.store_sync(600_000)
        worker = engine("w1")
        log(f"roster of {args.roster:,} users in {time.monotonic() - started:.1f} s")
        stop, waits = threading.Event(), {"main": [], "w1": []}
        threads = [threading.Thread(target=deny_and_wait, args=(e, stop, waits[name]))
                   for e, name in [(main_engine, "main"), (worker, "w1")]]
        for t in threads:
            t.start()
        time.sleep(1)
        started = time.monotonic()
        main_engine.roster_upsert(users(0, args.big, "big", "s1", "teacher"))
        applied = time.monotonic() - started
        while worker.roster_get(f"@big{args.big - 1}:s.test") is None:
            time.sleep(0.05)
        seen = time.monotonic() - started
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        log(f"{args.big:,}-user change: in effect on main after {applied:.2f} s, on w1 after "
            f"{seen:.2f} s")
        for name, w in waits.items():
            log(f"  {name}: {len(w)} denials waited for their records: p50 "
                f"{statistics.median(w):.1f} ms, max {max(w):.0f} ms")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
