#!/usr/bin/env python3
"""bench: hot_path -- which callback should enforce the per-event rules?

Usage (with the virtualenv that has Synapse and the module installed):

    VENV=~/.cache/synapse-school-policy/venv-synapse-1.163.2-py3.11
    $VENV/bin/python bench/hot_path.py            # ~4.5 min with the cached world;
                                                  # the first run builds it (+~6 min)
    $VENV/bin/python bench/hot_path.py --quick    # smoke run: 100 members, ~1 min

Options: --members N (2000), --messages N (30 sequential, then 30 at
--concurrency 4, per variant and round), --rounds N (6), --order rotate|fixed
(rotate: round r starts with variant r mod 3, so that each variant runs in
each position equally often; with a fixed a b c order the variant right
after vanilla came out ~10% slower in wall-clock throughput in 2 of 3 runs,
with unchanged CPU per message), --warmup N (15, after each restart),
--rebuild (ignore the cached world), --no-cache, --time-limit SECONDS (1200:
hard bound on the whole run), --keep (keep the logs), --quick.

Building the 2,000-member room takes Synapse ~6 minutes on 2 cores (each
invite + join costs ~0.17 s on average and grows with the room), so the built world (a
pg_dump of the database, the module's store, the signing key and the access
tokens) is kept in ~/.cache/synapse-school-policy/bench/ and restored into a
fresh throwaway PostgreSQL on later runs; a stale cache falls back to a build.

What it does: starts one throwaway PostgreSQL and one Synapse (tests/harness),
builds a 2,000-member managed announcement room (policy event
org.synapse_school_policy.room {"school": "gym-nord", "kind": "announcement",
"two_way": false}, created by the service user @sync, a teacher at power
level 50), puts every member on the module's roster, and then restarts the
SAME server (same database) in three variants, interleaved round by round
(a b c, b c a, c a b, ...):

  (a) vanilla   Synapse without any module
  (b) module    the module as shipped (per-event rules in check_event_for_spam)
  (c) +cea      the module plus bench/check_event_allowed_variant.py, which also
                registers a third-party-rules check_event_allowed callback
                (Synapse loads the room's full state for it) running the same
                engine decision and returning (True, None)

After each restart a pupil's message is checked to be refused (by the module,
rule one_way, in b and c; by Synapse's own auth, events_default 50, in a) and
--warmup messages fill Synapse's caches. Then the teacher sends --messages
messages one after another, then --messages messages from --concurrency
threads. Printed: messages/s and p50/p99 latency per variant, the per-round
ratios module/vanilla and +cea/module, and, from variant c's probes, the time
per event inside each hook: Synapse's dispatcher (for check_event_allowed
including loading the room's full state) and the module's own callback.

Every variant runs with the same homeserver config: the harness's, plus the
settings the module's start-up self-check requires (also for vanilla), plus
update_user_directory_from_worker naming a worker that does not exist (see
BASE_EXTRA_CONFIG: indexing a 2,000-member private room is O(n^2) background
work that would otherwise still run during the measurements).

Only loopback traffic; every loop is bounded in count and time. Ratios are
only meaningful within one run (2 noisy cores).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
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

try:  # the settings the module's start-up self-check requires (newer harness)
    from harness.synapse import MODULE_SAFE_SETTINGS  # noqa: E402
except ImportError:  # pragma: no cover
    MODULE_SAFE_SETTINGS = {}

SERVER_NAME = "school.test"
POLICY_EVENT_TYPE = "org.synapse_school_policy.room"
POLICY = {"school": "gym-nord", "kind": "announcement", "two_way": False}
ADMIN_API = "/_synapse/client/school_policy/v1"
TIMINGS_PATH = "/_synapse/client/ssp_bench/timings"
VARIANT_MODULE = "check_event_allowed_variant.CheckEventAllowedPolicy"
PASSWORD = "bench password"
VARIANTS = ("vanilla", "module", "+cea")
CACHE_ROOT = os.path.expanduser("~/.cache/synapse-school-policy/bench")
CACHE_FORMAT = 1
PROBE_LABELS = (
    "synapse: check_event_for_spam",
    "module: check_event_for_spam",
    "module: check_event_for_spam > get_room_state",
    "synapse: check_event_allowed",
    "module: check_event_allowed",
)


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise TimeoutError(f"time limit reached during {what}")



def uid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"



def module_config(data_dir: str) -> dict:
    return {
        "service_users": [uid("sync")],
        "data_dir": data_dir,
        "schools": {"gym-nord": {"messenger": True}},
    }


# Every variant (and the build) runs with these on top of the harness's config,
# vanilla included, so that the variants differ only in the modules loaded:
# the harness adds MODULE_SAFE_SETTINGS only when the module is loaded.
# The user directory's updater is switched off by naming a worker that does
# not exist: indexing a 2,000-member *private* room is O(members^2) background
# work (~4M user pairs) that would still be running long after the room is
# built and would slow whichever variants run first; for message events it
# does nothing.
BASE_EXTRA_CONFIG = {**MODULE_SAFE_SETTINGS, "bcrypt_rounds": 4,
                     "update_user_directory_from_worker": "bench_nobody"}


def configure(server: SynapseServer, variant: str, config: dict) -> None:
    base_extra = dict(BASE_EXTRA_CONFIG)
    if variant == "vanilla":
        server.module_config = None
        server.extra_config = dict(base_extra)
        server.env = {}
    elif variant == "module":
        server.module_config = config
        server.extra_config = dict(base_extra)
        server.env = {}
    else:
        # extra_config is applied last, so this replaces the harness's modules list.
        server.module_config = config
        server.extra_config = {**base_extra, "modules": [{"module": VARIANT_MODULE, "config": config}]}
        pythonpath = os.environ.get("PYTHONPATH")
        server.env = {"PYTHONPATH": HERE + (os.pathsep + pythonpath if pythonpath else "")}


def check(status_body, what: str, ok=(200,)):
    status, body = status_body
    if status not in ok:
        raise RuntimeError(f"{what}: {status} {body}")
    return body


def admin_create_user(server: SynapseServer, admin: Client, localpart: str) -> None:
    check(
        request(server.base_url, "PUT", f"/_synapse/admin/v2/users/{q(uid(localpart))}", {}, admin.token),
        f"create {localpart}", ok=(200, 201),
    )


def admin_join(server: SynapseServer, admin: Client, room_id: str, user_id: str) -> None:
    check(
        request(server.base_url, "POST", f"/_synapse/admin/v1/join/{q(room_id)}", {"user_id": user_id}, admin.token),
        f"join {user_id}",
    )


def setup_world(server: SynapseServer, members: int, deadline: Deadline) -> dict:
    """Registers the cast, loads the roster and fills the room; returns the
    world (room id and access tokens)."""
    t0 = time.monotonic()
    sync = register_user(server, "sync", PASSWORD, admin=True)  # service user and server admin
    teacher = register_user(server, "teacher", PASSWORD)
    roster = [{"user_id": teacher.user_id, "schools": [{"school": "gym-nord", "role": "teacher"}]}]
    roster += [
        {"user_id": uid(f"u{i}"), "schools": [{"school": "gym-nord", "role": "student"}]}
        for i in range(members)
    ]
    body = check(request(server.base_url, "POST", ADMIN_API + "/roster", {"users": roster}, sync.token), "roster")
    log(f"roster: {body['upserted']} users")
    room_id = check(
        sync.create_room(
            preset="private_chat",
            power_level_content_override={"users": {teacher.user_id: 50}},
            initial_state=[{"type": POLICY_EVENT_TYPE, "state_key": "", "content": POLICY}],
        ),
        "createRoom",
    )["room_id"]
    admin_join(server, sync, room_id, teacher.user_id)
    log(f"room {room_id} created; creating {members} users")
    with ThreadPoolExecutor(4) as pool:
        for _ in pool.map(lambda i: admin_create_user(server, sync, f"u{i}"), range(members)):
            deadline.check("user creation")
    log(f"users created after {time.monotonic() - t0:.0f}s; joining them (invite + join each)")
    # Joins into one room are serialised by Synapse anyway; two threads only
    # overlap the HTTP round trips.
    done = 0
    lock = threading.Lock()

    def join(i: int) -> None:
        nonlocal done
        deadline.check("joins")
        admin_join(server, sync, room_id, uid(f"u{i}"))
        with lock:
            done += 1
            if done % 500 == 0:
                log(f"  {done} joined ({time.monotonic() - t0:.0f}s)")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(join, range(members)))
    student_token = check(
        request(server.base_url, "POST", f"/_synapse/admin/v1/users/{q(uid('u0'))}/login", {}, sync.token),
        "student token",
    )["access_token"]
    log(f"world built in {time.monotonic() - t0:.0f}s")
    return {"format": CACHE_FORMAT, "members": members, "room_id": room_id, "sync_token": sync.token,
            "teacher_token": teacher.token, "student_token": student_token}


def describe_world(server: SynapseServer, world: dict) -> tuple[Client, Client, int]:
    """Checks the world on a running server; returns (teacher, student, joined members)."""
    teacher = Client(server.base_url, uid("teacher"), world["teacher_token"])
    student = Client(server.base_url, uid("u0"), world["student_token"])
    room_id = world["room_id"]
    joined = check(request(server.base_url, "GET", f"{CS}/rooms/{q(room_id)}/joined_members",
                           token=world["sync_token"]), "joined_members")["joined"]
    pl = check(teacher.get_state(room_id, "m.room.power_levels"), "power levels")
    policy = check(teacher.get_state(room_id, POLICY_EVENT_TYPE), "policy event")
    if policy != POLICY or len(joined) != world["members"] + 2:
        raise RuntimeError(f"unexpected world: policy {policy}, {len(joined)} members")
    log(f"room {room_id}: {len(joined)} joined members, policy {json.dumps(policy)}, "
        f"events_default={pl.get('events_default')}, teacher level={pl.get('users', {}).get(teacher.user_id)}")
    return teacher, student, len(joined)


# ---- the built world, cached across runs -----------------------------------

def cache_dir_for(members: int) -> str:
    import synapse

    return os.path.join(CACHE_ROOT, f"hot_path-{members}-members-synapse-{synapse.__version__}")


def pg_tool(pg: PostgresCluster, tool: str, *args: str, timeout: float = 300) -> None:
    cmd = [os.path.join(pg.bindir, tool), "-h", pg.host, "-p", str(pg.port), "-U", pg.user, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr[-2000:]}")


def wait_background_work(pg: PostgresCluster, dbname: str, deadline: Deadline, limit: float = 120) -> None:
    """Waits (bounded) until no background database update of Synapse's is
    pending, so that none runs during the measurements."""
    end = min(time.monotonic() + limit, deadline.end)
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT update_name FROM background_updates")
                pending = [row[0] for row in cur.fetchall()]
                if not pending:
                    return
                if time.monotonic() > end:
                    log(f"warning: background updates still pending: {pending}; measuring anyway")
                    return
                time.sleep(1)
    finally:
        conn.close()


def save_world(pg: PostgresCluster, dbname: str, server: SynapseServer, store_dir: str, world: dict,
               cache_dir: str) -> None:
    tmp = cache_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    pg_tool(pg, "pg_dump", "-Fc", "-f", os.path.join(tmp, "db.dump"), dbname)
    shutil.copytree(store_dir, os.path.join(tmp, "store"))
    shutil.copy(os.path.join(server.workdir, "signing.key"), os.path.join(tmp, "signing.key"))
    with open(os.path.join(tmp, "world.json"), "w") as f:
        json.dump(world, f)
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.rename(tmp, cache_dir)
    log(f"world cached in {cache_dir}")


def restore_world(pg: PostgresCluster, dbname: str, synapse_dir: str, store_dir: str, cache_dir: str) -> dict:
    with open(os.path.join(cache_dir, "world.json")) as f:
        world = json.load(f)
    if world.get("format") != CACHE_FORMAT:
        raise RuntimeError("cache format changed")
    pg_tool(pg, "pg_restore", "--no-owner", "-j", "2", "-d", dbname, os.path.join(cache_dir, "db.dump"))
    shutil.copytree(os.path.join(cache_dir, "store"), store_dir)
    os.makedirs(synapse_dir, exist_ok=True)
    shutil.copy(os.path.join(cache_dir, "signing.key"), os.path.join(synapse_dir, "signing.key"))
    return world


def prepare(pg: PostgresCluster, workdir: str, args, deadline: Deadline):
    """A running server (module loaded) holding the world, restored from the
    cache when possible, else built (and cached)."""
    cache_dir = cache_dir_for(args.members)
    attempts = [] if args.rebuild or not os.path.exists(os.path.join(cache_dir, "world.json")) else ["restore"]
    attempts.append("build")
    for n, how in enumerate(attempts):
        dbname = f"bench_hot_path_{n}"
        database = pg.create_database(dbname)
        store_dir = os.path.join(workdir, f"store{n}")
        synapse_dir = os.path.join(workdir, f"synapse{n}")
        config = module_config(store_dir)
        server = SynapseServer(synapse_dir, server_name=SERVER_NAME, module_config=config,
                               database=database, extra_config=dict(BASE_EXTRA_CONFIG))
        try:
            t0 = time.monotonic()
            if how == "restore":
                log(f"restoring the world from {cache_dir}")
                world = restore_world(pg, dbname, synapse_dir, store_dir, cache_dir)
                server.start()
            else:
                server.start()
                world = setup_world(server, args.members, deadline)
            teacher, student, members = describe_world(server, world)
            wait_background_work(pg, dbname, deadline)
            if how == "build" and not args.no_cache:
                save_world(pg, dbname, server, store_dir, world, cache_dir)
            log(f"world ready ({how}) in {time.monotonic() - t0:.0f}s")
            return server, config, world, teacher, student, members
        except Exception as exc:  # noqa: BLE001 - a stale cache falls back to a build
            server.stop()
            if how != "restore":
                raise
            log(f"restoring failed ({str(exc).splitlines()[0][:200]}); building instead")
    raise AssertionError("unreachable")


def send_sequential(teacher: Client, room_id: str, n: int, phase: str, deadline: Deadline) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        deadline.check(phase)
        t = time.perf_counter()
        check(teacher.send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"{phase} {i}",
                                                       "bench_phase": phase}), phase)
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - start, latencies


def send_concurrent(teacher: Client, room_id: str, n: int, concurrency: int, phase: str,
                    deadline: Deadline) -> tuple[float, list[float]]:
    per_worker = [n // concurrency + (1 if w < n % concurrency else 0) for w in range(concurrency)]

    def worker(w: int) -> list[float]:
        out = []
        for i in range(per_worker[w]):
            deadline.check(phase)
            t = time.perf_counter()
            check(teacher.send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"{phase} {w}.{i}",
                                                           "bench_phase": phase}), phase)
            out.append(time.perf_counter() - t)
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, range(concurrency)))
    return time.perf_counter() - start, [x for r in results for x in r]


def sanity(variant: str, student: Client, room_id: str) -> str:
    """A student's message is refused: by the module (rule id) in b and c, by
    Synapse's own auth (events_default 50) in vanilla."""
    status, body = student.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "x", "bench_phase": "sanity"})
    rule = body.get("school_policy", {}).get("rule") if isinstance(body, dict) else None
    expected = None if variant == "vanilla" else "one_way"
    if status != 403 or rule != expected:
        raise RuntimeError(f"{variant}: student send gave {status} {body}; expected 403 rule={expected}")
    return f"403 {'rule ' + rule if rule else 'by Synapse auth'}"


class CpuMeter:
    """CPU time over a phase: this Synapse process, this PostgreSQL's server
    processes, and everything else on the machine that is not this bench
    (other sessions sharing the 2 cores), from /proc. Server CPU per message
    is the noise-robust cost measure: other load slows a message down but
    hardly changes the CPU time Synapse and PostgreSQL spend on it."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, server: SynapseServer, pg: PostgresCluster):
        self.server, self.pg = server, pg

    @staticmethod
    def _busy() -> int:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields) - fields[3] - fields[4]  # minus idle and iowait

    @staticmethod
    def _stat(pid: int) -> tuple[int, int]:
        """(ppid, utime + stime) of a process, (0, 0) if it is gone."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            return int(rest[1]), int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            return 0, 0

    def _ours(self) -> dict[str, int]:
        synapse_pid = self.server.proc.pid if self.server.proc is not None else -1
        try:
            with open(os.path.join(self.pg.datadir, "postmaster.pid")) as f:
                postmaster = int(f.readline())
        except (OSError, ValueError):
            postmaster = -1
        ticks = {"bench": 0, "synapse": 0, "postgres": 0}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            ppid, t = self._stat(pid)
            if pid == os.getpid():
                ticks["bench"] += t
            elif pid == synapse_pid:
                ticks["synapse"] += t
            elif postmaster in (pid, ppid):
                ticks["postgres"] += t
        return ticks

    def start(self) -> None:
        self._t, self._busy0, self._ours0 = time.monotonic(), self._busy(), self._ours()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t
        ours = {k: v - self._ours0[k] for k, v in self._ours().items()}
        foreign = (self._busy() - self._busy0) - sum(ours.values())
        return {
            "other_cores": max(0.0, foreign / self.HZ / wall) if wall > 0 else 0.0,
            "synapse_s": ours["synapse"] / self.HZ,
            "postgres_s": ours["postgres"] / self.HZ,
        }


def run_variant(server, variant, config, teacher, student, room_id, args, deadline, meter):
    configure(server, variant, config)
    server.stop()
    t = time.monotonic()
    server.start(timeout=max(30.0, min(120.0, deadline.left())))
    startup = time.monotonic() - t
    note = sanity(variant, student, room_id)
    send_sequential(teacher, room_id, args.warmup, "warmup", deadline)
    if variant == "+cea":
        request(server.base_url, "GET", TIMINGS_PATH)  # reset
    meter.start()
    seq_wall, seq_lat = send_sequential(teacher, room_id, args.messages, "seq", deadline)
    conc_wall, conc_lat = send_concurrent(teacher, room_id, args.messages, args.concurrency, "conc", deadline)
    cpu = meter.stop()
    timings = None
    if variant == "+cea":
        timings = check(request(server.base_url, "GET", TIMINGS_PATH), "timings")
        if not timings["samples_ns"].get("module: check_event_allowed"):
            raise RuntimeError("variant c: check_event_allowed was never called")
    return {
        "startup_s": startup, "sanity": note,
        "seq_rate": len(seq_lat) / seq_wall, "seq_lat": seq_lat,
        "conc_rate": len(conc_lat) / conc_wall, "conc_lat": conc_lat,
        "timings": timings, "other_cores": cpu["other_cores"],
        # server CPU (Synapse + PostgreSQL) per message, over both phases
        "cpu_ms": (cpu["synapse_s"] + cpu["postgres_s"]) * 1000 / (len(seq_lat) + len(conc_lat)),
        "synapse_cpu_ms": cpu["synapse_s"] * 1000 / (len(seq_lat) + len(conc_lat)),
    }


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def report(results: dict, args, members: int) -> None:
    print()
    print(f"== hot path: teacher -> {members}-member managed announcement room, "
          f"{args.rounds} rounds interleaved ({' '.join(VARIANTS)}, order {args.order}), "
          f"{args.messages} sequential + {args.messages} at concurrency {args.concurrency} per variant and round ==")
    print()
    print("per round ('other load': CPU cores used meanwhile by processes that are not this bench's,")
    print(" i.e. other sessions on the machine; rounds with much of it are noisy):")
    print(f"{'round':>5} {'variant':<8} {'seq msg/s':>10} {'seq p50 ms':>10} {'c' + str(args.concurrency) + ' msg/s':>10} "
          f"{'c' + str(args.concurrency) + ' p50 ms':>10} {'cpu ms/msg':>10} {'startup s':>9} {'other load':>10}")
    for r in range(len(results["vanilla"])):
        for v in VARIANTS:
            x = results[v][r]
            print(f"{r + 1:>5} {v:<8} {x['seq_rate']:10.1f} {fmt_ms(statistics.median(x['seq_lat'])):>10} "
                  f"{x['conc_rate']:10.1f} {fmt_ms(statistics.median(x['conc_lat'])):>10} {x['cpu_ms']:10.1f} "
                  f"{x['startup_s']:9.1f} "
                  f"{x['other_cores']:10.2f}")
    print()
    print("summary (msg/s and CPU: median over rounds; latency: pooled over rounds; cpu ms/msg = Synapse +")
    print(" PostgreSQL CPU time per message, both phases; 'synapse' = Synapse's part of it):")
    print(f"{'variant':<8} {'seq msg/s':>10} {'seq p50 ms':>10} {'seq p99 ms':>10} "
          f"{'c' + str(args.concurrency) + ' msg/s':>10} {'c' + str(args.concurrency) + ' p50 ms':>10} "
          f"{'c' + str(args.concurrency) + ' p99 ms':>10} {'cpu ms/msg':>10} {'synapse':>8}")
    for v in VARIANTS:
        rs = results[v]
        seq = [x for r in rs for x in r["seq_lat"]]
        conc = [x for r in rs for x in r["conc_lat"]]
        print(f"{v:<8} {statistics.median(r['seq_rate'] for r in rs):10.1f} {fmt_ms(percentile(seq, 50)):>10} "
              f"{fmt_ms(percentile(seq, 99)):>10} {statistics.median(r['conc_rate'] for r in rs):10.1f} "
              f"{fmt_ms(percentile(conc, 50)):>10} {fmt_ms(percentile(conc, 99)):>10} "
              f"{statistics.median(r['cpu_ms'] for r in rs):10.1f} {statistics.median(r['synapse_cpu_ms'] for r in rs):8.1f}")
    print()
    print("ratios (per round, then median; msg/cpu-s = messages per CPU second of Synapse + PostgreSQL,")
    print(" the throughput the server can reach when the CPU is the limit, and the least noisy ratio):")
    for name, num, den in (("module/vanilla", "module", "vanilla"), ("+cea/module", "+cea", "module"),
                           ("+cea/vanilla", "+cea", "vanilla")):
        for key, label in (("seq_rate", "seq msg/s"), ("conc_rate", f"c{args.concurrency} msg/s")):
            per = [a[key] / b[key] for a, b in zip(results[num], results[den])]
            print(f"  {name:<15} {label:<10} " + " ".join(f"{p:6.3f}" for p in per)
                  + f"   median {statistics.median(per):6.3f}")
        per = [statistics.median(a["seq_lat"]) / statistics.median(b["seq_lat"])
               for a, b in zip(results[num], results[den])]
        print(f"  {name:<15} {'seq p50':<10} " + " ".join(f"{p:6.3f}" for p in per)
              + f"   median {statistics.median(per):6.3f}")
        # capacity: messages per CPU second, i.e. the inverse ratio of CPU per message
        per = [b["cpu_ms"] / a["cpu_ms"] for a, b in zip(results[num], results[den])]
        print(f"  {name:<15} {'msg/cpu-s':<10} " + " ".join(f"{p:6.3f}" for p in per)
              + f"   median {statistics.median(per):6.3f}")
    print()
    print("time per message event inside the hooks (variant c's probes, wall clock, pooled over rounds):")
    pooled: dict[tuple[str, str], list[int]] = {}
    sizes: list[int] = []
    for r in results["+cea"]:
        t = r["timings"] or {}
        sizes += t.get("state_sizes", [])
        for cb, phases in t.get("samples_ns", {}).items():
            for phase, samples in phases.items():
                pooled.setdefault((cb, phase), []).extend(samples)
    print(f"  {'hook':<46} {'phase':<6} {'n':>6} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}")
    for phase in ("seq", "conc"):
        for label in PROBE_LABELS:
            us = [x / 1000 for x in pooled.get((label, phase), [])]
            if us:
                print(f"  {label:<46} {phase:<6} {len(us):6d} {percentile(us, 50):8.1f} {percentile(us, 99):8.1f} "
                      f"{statistics.fmean(us):8.1f}")
    if sizes:
        print(f"  state_events handed to check_event_allowed: {min(sizes)}..{max(sizes)} entries")
    vanilla_ms = percentile([x for r in results["vanilla"] for x in r["seq_lat"]], 50) * 1000
    for label, what in (("synapse: check_event_for_spam", "module/vanilla"),
                        ("synapse: check_event_allowed", "+cea/module")):
        us = pooled.get((label, "seq"))
        if us and vanilla_ms > 0:
            mean_ms = statistics.fmean(us) / 1e6
            print(f"  predicted {what:<15} seq msg/s from the probe alone: {label} adds {mean_ms:.2f} ms "
                  f"to a {vanilla_ms:.0f} ms message -> {vanilla_ms / (vanilla_ms + mean_ms):.3f}")
    print("  ('synapse: X' = Synapse's dispatcher for hook X around all registered callbacks; for")
    print("   check_event_allowed it includes loading the room's full state. 'module: X' = the module's")
    print("   callback body; its get_room_state line is the part of it spent awaiting Synapse.)")
    print()
    print("sanity (a student's message): " + "; ".join(f"{v}: {results[v][0]['sanity']}" for v in VARIANTS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--time-limit", type=float, default=1200.0)
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached world and build it anew")
    parser.add_argument("--no-cache", action="store_true", help="do not write the built world to the cache")
    parser.add_argument("--order", choices=("fixed", "rotate"), default="rotate",
                        help="fixed: a b c in every round; rotate: round r starts with the r-th variant")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    parser.add_argument("--quick", action="store_true", help="members 100, messages 30, rounds 2")
    args = parser.parse_args()
    if args.quick:
        args.members, args.messages, args.rounds, args.warmup = 100, 30, 2, 10
    for name in ("members", "messages", "concurrency", "rounds", "warmup"):
        if not 1 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name} out of range")
    deadline = Deadline(args.time_limit)
    t_start = time.monotonic()

    pg = PostgresCluster()
    workdir = tempfile.mkdtemp(prefix="ssp-bench-hot-path-")
    server = None
    try:
        log(f"starting PostgreSQL + Synapse ({sys.executable}); workdir {workdir}")
        pg.start()
        server, config, world, teacher, student, members = prepare(pg, workdir, args, deadline)
        room_id = world["room_id"]
        results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            shift = r % len(VARIANTS) if args.order == "rotate" else 0
            for v in VARIANTS[shift:] + VARIANTS[:shift]:
                res = run_variant(server, v, config, teacher, student, room_id, args, deadline,
                                  CpuMeter(server, pg))
                results[v].append(res)
                log(f"round {r + 1} {v:<8} seq {res['seq_rate']:6.1f} msg/s "
                    f"(p50 {statistics.median(res['seq_lat']) * 1000:.1f} ms), "
                    f"c{args.concurrency} {res['conc_rate']:6.1f} msg/s, startup {res['startup_s']:.1f}s, "
                    f"other load {res['other_cores']:.2f} cores")
        report(results, args, members)
        print(f"\ntotal runtime {time.monotonic() - t_start:.0f}s")
        return 0
    finally:
        if server is not None:
            server.stop()
        pg.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
