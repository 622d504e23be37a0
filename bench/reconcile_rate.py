#!/usr/bin/env python3
"""bench: reconcile_rate -- how fast the reconciler fills the special rooms
after a bulk import, and what that costs normal traffic.

Usage (with the virtualenv that has Synapse and the module installed):

    VENV=~/.cache/synapse-school-policy/venv-synapse-1.163.2-py3.11
    $VENV/bin/python bench/reconcile_rate.py                 # 2,000 users, ~10 min
    $VENV/bin/python bench/reconcile_rate.py --users 200     # smoke run

Options: --users N (2000: 5% teachers, the rest pupils, one school with the
teachers' room and the announcement room on), --rate N (the module's
reconciler.actions_per_second, default 5 as shipped), --store embedded|postgres
(embedded), --probe-interval S (0.2), --baseline-seconds S (20),
--time-limit S (1800).

What it does: starts one throwaway PostgreSQL (Synapse's database) and one
Synapse with the module (tests/harness); creates the accounts through
Synapse's admin API (no password, so no bcrypt cost) and a small two-way
course room with one teacher and one pupil. Then:

1. baseline: the teacher posts into the course every --probe-interval
   seconds for --baseline-seconds; the send latencies are recorded;
2. import: POST /roster with every user at once; the probe keeps posting;
   GET /status is polled until gym-nord has nothing pending;
3. prints the reconciliation time, users/s and membership actions/s (an
   invite and a join per member and room), and the probe's p50/p99 send
   latency before and during the reconciliation, side by side in one run.

Only loopback traffic; every loop is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness.client import CS, Client, q, register_user, request  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.synapse import SynapseServer  # noqa: E402
from benchlib import log, percentile  # noqa: E402

SERVER_NAME = SynapseServer.DEFAULT_SERVER_NAME
ADMIN_API = "/_synapse/client/school_policy/v1"
PASSWORD = "bench password"


def uid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"




def check(response, what: str, ok=(200,)):
    status, body = response
    if status not in ok:
        raise RuntimeError(f"{what}: {status} {body}")
    return body


class Probe(threading.Thread):
    """Posts into the course at a fixed cadence; records send latencies
    under the current phase."""

    def __init__(self, client: Client, room_id: str, interval: float):
        super().__init__(daemon=True)
        self.client, self.room_id, self.interval = client, room_id, interval
        self.phase = "baseline"
        self.latencies: dict[str, list[float]] = {"baseline": [], "reconciling": []}
        self.errors = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            started = time.monotonic()
            status, _ = self.client.send(self.room_id, "m.room.message", {"msgtype": "m.text", "body": f"probe {n}"})
            elapsed = time.monotonic() - started
            if status == 200:
                self.latencies.setdefault(self.phase, []).append(elapsed)
            else:
                self.errors += 1
            n += 1
            self.stop_event.wait(max(0.0, self.interval - elapsed))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=5)
    parser.add_argument("--store", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--probe-interval", type=float, default=0.2)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--time-limit", type=float, default=1800)
    args = parser.parse_args()
    deadline = time.monotonic() + args.time_limit

    work = tempfile.mkdtemp(prefix="ssp-bench-reconcile-")
    pg = PostgresCluster().start()
    server = None
    try:
        synapse_db = pg.create_database("synapse")
        config = {
            "service_users": [uid("sync")],
            "data_dir": os.path.join(work, "store"),
            "schools": {"gym-nord": {"messenger": True, "teachers_room": True, "announcement_room": True,
                                     "room_creation": "service_users"}},
            "reconciler": {"actions_per_second": args.rate},
        }
        if args.store == "postgres":
            pg.create_database("policy")
            config["database"] = pg.dsn("policy")
        server = SynapseServer(os.path.join(work, "synapse"), module_config=config, database=synapse_db)
        server.start()
        sync = register_user(server, "sync", PASSWORD, admin=True)
        teacher = register_user(server, "probe_teacher", PASSWORD)
        pupil = register_user(server, "probe_pupil", PASSWORD)
        n_staff = max(1, args.users // 20)
        names = [f"t{i:05d}" for i in range(n_staff)] + [f"p{i:05d}" for i in range(args.users - n_staff)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda name: check(
                request(server.base_url, "PUT", f"/_synapse/admin/v2/users/{q(uid(name))}", {}, sync.token),
                f"create {name}", ok=(200, 201)), names))
        log(f"created {len(names)} accounts in {time.monotonic() - t0:.1f} s")
        # The probe's course, set up (and its two users reconciled) before the
        # import, so that only the import is measured.
        check(request(server.base_url, "PUT", f"{ADMIN_API}/users/{q(teacher.user_id)}",
                      {"schools": [{"school": "gym-nord", "role": "teacher"}]}, sync.token), "roster teacher")
        check(request(server.base_url, "PUT", f"{ADMIN_API}/users/{q(pupil.user_id)}",
                      {"schools": [{"school": "gym-nord", "role": "student"}]}, sync.token), "roster pupil")
        course = check(sync.create_room(
            preset="private_chat", invite=[teacher.user_id, pupil.user_id],
            initial_state=[{"type": "org.synapse_school_policy.room", "state_key": "",
                            "content": {"school": "gym-nord", "kind": "course", "two_way": True}}],
        ), "create course")["room_id"]
        check(teacher.join(course), "teacher joins")
        check(pupil.join(course), "pupil joins")

        def status() -> dict:
            return check(request(server.base_url, "GET", f"{ADMIN_API}/status", token=sync.token), "status")["schools"]["gym-nord"]

        # Let the start-up reconciliation (rooms, the two probe users) settle.
        while status()["pending"] and time.monotonic() < deadline:
            time.sleep(0.5)

        probe = Probe(teacher, course, args.probe_interval)
        probe.start()
        time.sleep(args.baseline_seconds)
        probe.phase = "reconciling"
        roster = [{"user_id": uid(n), "schools": [{"school": "gym-nord", "role": "teacher" if n.startswith("t") else "student"}]}
                  for n in names]
        started = time.monotonic()
        check(request(server.base_url, "POST", f"{ADMIN_API}/roster", {"users": roster}, sync.token), "import")
        imported = time.monotonic() - started
        last_report = started
        while True:
            s = status()
            if s["pending"] == 0 and time.monotonic() - started > 2:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"time limit reached with {s['pending']} marks pending")
            if time.monotonic() - last_report > 30:
                log(f"{s['pending']} pending after {time.monotonic() - started:.0f} s (last_error {s['last_error']})")
                last_report = time.monotonic()
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        probe.stop_event.set()
        probe.join()
        s = status()
        members = check(request(server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(s['announcement_room'])}/members",
                                token=sync.token), "members")["total"]
        staff_members = check(request(server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(s['teachers_room'])}/members",
                                      token=sync.token), "members")["total"]
        actions = 2 * args.users + 2 * n_staff
        base, during = probe.latencies["baseline"], probe.latencies["reconciling"]
        print(f"== reconcile_rate: {args.users} users ({n_staff} staff), store {args.store}, "
              f"reconciler.actions_per_second {args.rate} ==")
        print(f"import request (POST /roster, {args.users} users): {imported * 1000:.0f} ms")
        print(f"reconciled in {elapsed:.1f} s: {args.users / elapsed:.1f} users/s, "
              f"{actions / elapsed:.1f} memberships/s ({actions} invites and joins, one of each per member and room; "
              f"power-levels events come on top)")
        print(f"announcement room members {members} (expected {args.users + 3}), teachers' room members "
              f"{staff_members} (expected {n_staff + 2}), last_error {s['last_error']}")
        print(f"probe sends: baseline n={len(base)} p50 {percentile(base, 50) * 1000:.1f} ms p99 "
              f"{percentile(base, 99) * 1000:.1f} ms; during reconciliation n={len(during)} p50 "
              f"{percentile(during, 50) * 1000:.1f} ms p99 {percentile(during, 99) * 1000:.1f} ms; "
              f"p50 ratio {percentile(during, 50) / percentile(base, 50):.2f}, p99 ratio "
              f"{percentile(during, 99) / percentile(base, 99):.2f}; failed sends {probe.errors}")
    finally:
        if server is not None:
            server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
