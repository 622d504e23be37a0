#!/usr/bin/env python3
"""bench: group_rooms -- one school from one message, against a plain script.

Usage (with the virtualenv that has Synapse and the module installed):

    VENV=~/.cache/synapse-school-policy/venv-synapse-1.163.2-py3.11
    $VENV/bin/python bench/group_rooms.py                    # the issue's school, ~5 min
    $VENV/bin/python bench/group_rooms.py --scale 0.2        # smoke run

Options: --scale F (1.0: 1,000 pupils, 60 teachers, 40 courses of 25, 10
teams of 15, one team with 5 pupils of a second school), --rate N
(reconciler.actions_per_second, 1000: high enough not to limit it),
--store embedded|postgres, --script-threads N (8), --leaves N (20),
--time-limit S (1800).

What it does, in one Synapse with the module (tests/harness), one
throwaway PostgreSQL for Synapse:

0. the users go on the roster (the script's members must pass the rules).
1. script: a plain script makes the same rooms and memberships through
   Synapse's own APIs as fast as Synapse allows (the harness lifts
   Synapse's rate limits): a service user creates each room (client API,
   moderators in the power levels) and joins every member through the
   admin API (`POST /_synapse/admin/v1/join/{room}`: invite and join in one
   call), --script-threads rooms side by side. Its rooms carry no policy
   event (the old sync's rooms), under other names.
2. module: one POST /roster with the users and the groups; GET /status and
   GET /groups are polled until every room holds its members. A teacher
   posts into a course every 0.2 s meanwhile (the message latency).
3. one change: --leaves times, a pupil is taken out of a course (PUT
   /groups/{group}, version + 1); the time until their membership is
   `leave`, on an otherwise idle server: p50/p99.

Prints memberships per second of both, their ratio (module / script) and
the latencies. Only loopback traffic; every loop is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from synapse.api.room_versions import KNOWN_ROOM_VERSIONS  # noqa: E402
from synapse.config.server import DEFAULT_ROOM_VERSION  # noqa: E402

from harness.client import q, register_user, request  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.synapse import SynapseServer  # noqa: E402
from benchlib import log, percentile  # noqa: E402
from reconcile_rate import Probe, check  # noqa: E402

SERVER_NAME = SynapseServer.DEFAULT_SERVER_NAME
CREATORS_HAVE_POWER = KNOWN_ROOM_VERSIONS[DEFAULT_ROOM_VERSION].msc4289_creator_power_enabled
ADMIN_API = "/_synapse/client/school_policy/v1"
PASSWORD = "bench password"
OWNER = f"@school-policy:{SERVER_NAME}"


def uid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def school_plan(scale: float):
    """(users, groups): the issue's school, scaled."""
    n_pupils, n_teachers = int(1000 * scale), max(2, int(60 * scale))
    n_courses, n_teams = max(1, int(40 * scale)), max(1, int(10 * scale))
    pupils = [f"p{i:04d}" for i in range(n_pupils)]
    teachers = [f"t{i:03d}" for i in range(n_teachers)]
    guests = [f"b{i}" for i in range(5)]  # pupils of the second school
    users = [{"user_id": uid(t), "schools": [{"school": "gym-nord", "role": "teacher"}]} for t in teachers]
    users += [{"user_id": uid(p), "schools": [{"school": "gym-nord", "role": "student"}]} for p in pupils]
    users += [{"user_id": uid(g), "schools": [{"school": "rs-ost", "role": "student"}]} for g in guests]
    groups = []
    for c in range(n_courses):
        mods = [teachers[c % n_teachers], teachers[(c + 1) % n_teachers]]
        kids = [pupils[(c * 23 + k) % n_pupils] for k in range(23)]
        groups.append({"group": f"course-{c:03d}", "school": "gym-nord", "kind": "course",
                       "name": f"Kurs {c:03d}", "version": 1,
                       "members": [{"user_id": uid(m), "role": "moderator"} for m in mods]
                       + [{"user_id": uid(k), "role": "member"} for k in dict.fromkeys(kids) if k not in mods]})
    for t in range(n_teams):
        admin = teachers[(t * 7) % n_teachers]
        kids = [pupils[(t * 131 + k * 3) % n_pupils] for k in range(14 if t else 9)]
        extra = guests if t == 0 else []
        groups.append({"group": f"team-{t:03d}", "school": "gym-nord", "kind": "team", "two_way": True,
                       "name": f"Team {t:03d}", "version": 1,
                       "members": [{"user_id": uid(admin), "role": "moderator"}]
                       + [{"user_id": uid(k), "role": "member"} for k in dict.fromkeys(kids + extra)]})
    return users, groups


def run_script(server, sync, groups, threads: int) -> float:
    """The plain script: rooms and memberships through Synapse's APIs. Returns seconds."""
    def one(group):
        mods = {m["user_id"]: 50 for m in group["members"] if m["role"] == "moderator"}
        if not CREATORS_HAVE_POWER:  # room version 12 refuses the creator in users
            mods[sync.user_id] = 100
        room = check(sync.create_room(preset="private_chat", name="script " + group["name"],
                                      power_level_content_override={"users": mods}),
                     "script create")["room_id"]
        for member in group["members"]:
            check(request(server.base_url, "POST", f"/_synapse/admin/v1/join/{q(room)}",
                          {"user_id": member["user_id"]}, sync.token), f"script join {member['user_id']}")

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, groups))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--store", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--script-threads", type=int, default=8)
    parser.add_argument("--leaves", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=1800)
    args = parser.parse_args()
    deadline = time.monotonic() + args.time_limit

    work = tempfile.mkdtemp(prefix="ssp-bench-groups-")
    pg = PostgresCluster().start()
    server = None
    try:
        synapse_db = pg.create_database("synapse")
        config = {
            "service_users": [uid("sync")],
            "data_dir": os.path.join(work, "store"),
            "schools": {"gym-nord": {"messenger": True, "teachers_room": False},
                        "rs-ost": {"messenger": True, "teachers_room": False}},
            "reconciler": {"actions_per_second": args.rate, "batch_size": 200},
        }
        if args.store == "postgres":
            pg.create_database("policy")
            config["database"] = pg.dsn("policy")
        server = SynapseServer(os.path.join(work, "synapse"), module_config=config, database=synapse_db)
        server.start()
        sync = register_user(server, "sync", PASSWORD, admin=True)
        teacher = register_user(server, "probe_teacher", PASSWORD)
        users, groups = school_plan(args.scale)
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda u: check(
                request(server.base_url, "PUT", f"/_synapse/admin/v2/users/{q(u['user_id'])}", {}, sync.token),
                "create user", ok=(200, 201)), users))
        log(f"created {len(users)} accounts in {time.monotonic() - t0:.1f} s")
        memberships = sum(len(g["members"]) for g in groups)

        def status() -> dict:
            return check(request(server.base_url, "GET", f"{ADMIN_API}/status", token=sync.token),
                         "status")["schools"]["gym-nord"]

        # The probe's course, made by the module before the measurements.
        probe_group = {"group": "probe", "school": "gym-nord", "kind": "course", "name": "Probe",
                       "members": [{"user_id": teacher.user_id, "role": "moderator"}]}
        check(request(server.base_url, "POST", f"{ADMIN_API}/roster",
                      {"users": [{"user_id": teacher.user_id, "schools": [{"school": "gym-nord", "role": "teacher"}]}],
                       "groups": [probe_group]}, sync.token), "probe group")
        while (status()["pending"] or not group_room(server, sync, "probe")) and time.monotonic() < deadline:
            time.sleep(0.3)
        probe_room = group_room(server, sync, "probe")
        check(teacher.send(probe_room, "m.room.message", {"msgtype": "m.text", "body": "warm"}), "probe warm")

        # The users on the roster first: the script's members must pass the
        # module's rules too. The module's message repeats them unchanged.
        check(request(server.base_url, "POST", f"{ADMIN_API}/roster", {"users": users}, sync.token), "users")
        while status()["pending"] and time.monotonic() < deadline:
            time.sleep(0.3)
        log(f"script: {len(groups)} rooms, {memberships} memberships ...")
        script_s = run_script(server, sync, groups, args.script_threads)
        log(f"script: {script_s:.1f} s")

        probe = Probe(teacher, probe_room, 0.2)
        probe.start()
        time.sleep(5)
        probe.phase = "reconciling"
        started = time.monotonic()
        answer = check(request(server.base_url, "POST", f"{ADMIN_API}/roster", {"users": users, "groups": groups},
                               sync.token), "module import")
        imported = time.monotonic() - started
        log(f"module: POST /roster {answer} in {imported * 1000:.0f} ms")
        expected = {g["group"]: {m["user_id"] for m in g["members"]} | {OWNER} for g in groups}
        pending_rooms = dict(expected)
        while pending_rooms:
            if time.monotonic() > deadline:
                raise RuntimeError(f"time limit reached with {len(pending_rooms)} rooms not in shape")
            # Every group's mark is durable before the answer: nothing
            # pending means every room was brought in line (checked below).
            if status()["pending"]:
                time.sleep(0.2)
                continue
            for group_id in list(pending_rooms):
                room = group_room(server, sync, group_id)
                if room and joined(server, sync, room) == pending_rooms[group_id]:
                    del pending_rooms[group_id]
            if pending_rooms:
                time.sleep(0.5)
        module_s = time.monotonic() - started
        probe.phase = "idle"
        time.sleep(3)
        probe.stop_event.set()
        probe.join()
        s = status()

        # One change at a time on an idle server.
        leave_s = []
        course_groups = [g for g in groups if g["kind"] == "course"]
        for i in range(args.leaves):
            g = course_groups[i % len(course_groups)]
            leaver = g["members"][-1]["user_id"]
            g["members"] = g["members"][:-1]
            g["version"] += 1
            room = group_room(server, sync, g["group"])
            t = time.monotonic()
            check(request(server.base_url, "PUT", f"{ADMIN_API}/groups/{q(g['group'])}",
                          {k: v for k, v in g.items() if k != "group"}, sync.token), "leave")
            while membership(server, sync, room, leaver) != "leave":
                if time.monotonic() - t > 60:
                    raise RuntimeError(f"{leaver} still in {room} after 60 s")
                time.sleep(0.02)
            leave_s.append(time.monotonic() - t)

        base, during = probe.latencies["baseline"], probe.latencies["reconciling"]
        script_rate, module_rate = memberships / script_s, memberships / module_s
        print(f"== group_rooms: {len(users)} users, {len(groups)} groups, {memberships} memberships, "
              f"store {args.store}, reconciler.actions_per_second {args.rate} ==")
        print(f"script (Synapse's own APIs, {args.script_threads} rooms side by side): {script_s:.1f} s, "
              f"{script_rate:.1f} memberships/s")
        print(f"module (one POST /roster, {imported * 1000:.0f} ms): every room in shape after {module_s:.1f} s, "
              f"{module_rate:.1f} memberships/s; ratio module/script {module_rate / script_rate:.2f}; "
              f"last_error {s['last_error']}")
        print(f"teacher's message latency: idle n={len(base)} p50 {percentile(base, 50) * 1000:.0f} ms "
              f"p99 {percentile(base, 99) * 1000:.0f} ms; during the module's reconciliation n={len(during)} "
              f"p50 {percentile(during, 50) * 1000:.0f} ms p99 {percentile(during, 99) * 1000:.0f} ms; "
              f"failed sends {probe.errors}")
        print(f"a pupil leaving a course, out of the room after (n={len(leave_s)}): "
              f"p50 {percentile(leave_s, 50) * 1000:.0f} ms, p99 {percentile(leave_s, 99) * 1000:.0f} ms, "
              f"max {max(leave_s) * 1000:.0f} ms")
    finally:
        if server is not None:
            server.stop()
        pg.stop()


def group_room(server, sync, group_id):
    status, body = request(server.base_url, "GET", f"{ADMIN_API}/groups/{q(group_id)}", token=sync.token)
    return body.get("room_id") if status == 200 else None


def joined(server, sync, room_id) -> set[str]:
    body = check(request(server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/members",
                         token=sync.token), "members")
    return set(body["members"])


def membership(server, sync, room_id, user_id):
    status, body = request(server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/state",
                           token=sync.token)
    for event in body.get("state", []) if status == 200 else []:
        if event["type"] == "m.room.member" and event["state_key"] == user_id:
            return event["content"]["membership"]
    return None


if __name__ == "__main__":
    main()
