"""Loading the store: 1,000,000 users and 150,000 groups (6,000,000
memberships) at start-up, on both stores.

The same roster and groups are written into each store, then a fresh
engine is opened on it in a child process (--runs times per store) and the
child's open is timed:
- embedded: data_dir/roster.jsonl and data_dir/groups.jsonl, written by this
  script in the journals' line format, replayed at open;
- postgres: school_policy.roster and school_policy.groups of a throwaway
  PostgreSQL (tests/harness), filled with SQL (triggers off: the fill is
  not what is measured), read with COPY at open.

Per run: the wall time of Engine.open() in the child, the child's CPU time
(user + system, from wait4) and its peak resident set (ru_maxrss from
wait4), beside a child that imports the module and opens nothing (the
interpreter's own share). The child checks what it loaded: the number of
users, and one group's members read back through the binding when it has
group_get. The targets are < 10 s and < 1 GB per store.

Group i (0-based) belongs to school "school-(i % 3000)"; its members are the
users (40 i + S j) mod U for j = 0..M-1 (j < 2: moderators), S the largest
stride below U / M prime to 40: every user is in about 6 groups (M groups x
M members / U), as in a school cloud where each pupil has a few courses.

    VENV/bin/python bench/groups_load.py                        # both stores, ~4 min
    VENV/bin/python bench/groups_load.py --store postgres --runs 3

--propagation N (PostgreSQL only, instead of the load): two engines on one
database (main and worker1, as two Synapse processes would have), N group
writes alternating between them, each timed from the write's call until the
other engine's index shows it (groups_list, polling every 0.5 ms): the write's commit,
the trigger's NOTIFY, the other process's read of the row. p50/p99/max.

    VENV/bin/python bench/groups_load.py --propagation 200
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from benchlib import log  # noqa: E402

SERVER = "school.test"
SCHOOLS = 3000
MODERATORS = 2

# The child: opens an engine on the store given in argv[1] (a config as
# JSON), prints what it measured as JSON. argv[2]: "open" or "baseline".
CHILD = r"""
import json, sys, time
from synapse_school_policy import _core
config, what, probe = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
out = {}
if what == "open":
    engine = _core.Engine(json.dumps(config), "%s", "main")
    t = time.perf_counter()
    engine.open()
    out["open_s"] = time.perf_counter() - t
    out["users"] = engine.roster_size()
    if hasattr(engine, "group_get"):
        group = engine.group_get(probe["group"])
        out["probe_members"] = None if group is None else len(group["members"])
print(json.dumps(out), flush=True)
""" % SERVER


def user_id(n: int) -> str:
    return f"@u{n}:{SERVER}"


def group_id(i: int) -> str:
    return f"course-{i:08d}"


def stride(users: int, members: int) -> int:
    s = max(1, users // members)
    while math.gcd(s, 40) != 1:
        s -= 1
    return s


def group_members(i: int, users: int, members: int) -> list[int]:
    s = stride(users, members)
    return [(40 * i + s * j) % users for j in range(members)]


def write_embedded(data_dir: str, users: int, groups: int, members: int) -> None:
    """The journals as the embedded store writes them: one JSON object a line."""
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "roster.jsonl"), "w") as f:
        for n in range(users):
            f.write('{"user_id":"%s","schools":[{"school":"school-%d","role":"student"}]}\n'
                    % (user_id(n), n % SCHOOLS))
    with open(os.path.join(data_dir, "groups.jsonl"), "w") as f:
        # the stored form (ssp_group_to_stored_json): member ids in two lists
        for i in range(groups):
            ids = [user_id(u) for u in group_members(i, users, members)]
            f.write('{"group":"%s","school":"school-%d","kind":"course","name":"Mathe %d",'
                    '"topic":"Topic %d","two_way":false,"closed":true,"state":"active",'
                    '"version":1,"moderators":%s,"members":%s}\n'
                    % (group_id(i), i % SCHOOLS, i, i, json.dumps(ids[:MODERATORS]),
                       json.dumps(ids[MODERATORS:])))


def fill_postgres(pg, dbname: str, users: int, groups: int, members: int) -> None:
    """The same rows, written by the server itself (generate_series)."""
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")  # no triggers: a fill, not a write
            cur.execute("INSERT INTO school_policy.roster SELECT '@u' || n || ':" + SERVER + "',"
                        " 'school-' || (n %% %s), 'student' FROM generate_series(0, %s) n",
                        (SCHOOLS, users - 1))
            cur.execute(
                "INSERT INTO school_policy.groups (group_id, school, kind, name, topic, version,"
                " moderators, members)"
                " SELECT 'course-' || lpad(i::text, 8, '0'), 'school-' || (i %% %(schools)s), 'course',"
                "  'Mathe ' || i, 'Topic ' || i, 1,"
                "  ARRAY(SELECT '@u' || ((40 * i + %(stride)s * j) %% %(users)s) || ':" + SERVER + "'"
                "   FROM generate_series(0, %(mods)s - 1) j),"
                "  ARRAY(SELECT '@u' || ((40 * i + %(stride)s * j) %% %(users)s) || ':" + SERVER + "'"
                "   FROM generate_series(%(mods)s, %(members)s - 1) j)"
                " FROM generate_series(0, %(groups)s - 1) i",
                {"schools": SCHOOLS, "users": users, "mods": MODERATORS, "members": members,
                 "groups": groups, "stride": stride(users, members)})
            # What a database that has been running looks like: hint bits set, statistics.
            cur.execute("VACUUM ANALYZE school_policy.roster")
            cur.execute("VACUUM ANALYZE school_policy.groups")
            cur.execute("CHECKPOINT")
    finally:
        conn.close()


def run_child(python: str, config: dict, what: str, probe: dict) -> dict:
    proc = subprocess.Popen([python, "-c", CHILD, json.dumps(config), what, json.dumps(probe)],
                            stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    proc.stdout.close()
    if status != 0:
        raise RuntimeError(f"the child failed ({status}): {out}")
    result = json.loads(out)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["maxrss_mb"] = usage.ru_maxrss / 1024
    return result


def timed_writes(engines: list, n: int) -> list[float]:
    """n group writes alternating between the engines; ms until the other one shows each."""
    latencies = []
    for i in range(n):
        writer, reader = engines[i % 2], engines[1 - i % 2]
        body = {"school": "gym-nord", "kind": "course", "name": f"Kurs {i}", "version": i + 1,
                "members": [{"user_id": user_id(j), "role": "member"} for j in range(i % 40 + 1)]}
        t = time.perf_counter()
        writer.group_put("course-p", json.dumps(body))
        # groups_list reads the index only (group_get also asks the store for the room)
        while [g.get("version") for g in reader.groups_list("gym-nord", None, 1)["groups"]] != [i + 1]:
            if time.perf_counter() - t > 5:
                raise RuntimeError(f"write {i} not seen by the other engine within 5 s")
            time.sleep(0.0005)
        latencies.append((time.perf_counter() - t) * 1000)
    return latencies


def propagation(n: int) -> None:
    from benchlib import percentile
    from harness.postgres import PostgresCluster

    from synapse_school_policy import _core

    pg = PostgresCluster().start()
    data_dirs: list[str] = []
    engines: list = []
    try:
        pg.create_database("groups_propagation")
        base = {"database": pg.dsn("groups_propagation"), "schools": {"gym-nord": {"messenger": True}}}
        for name in ("main", "worker1"):
            data_dirs.append(tempfile.mkdtemp(prefix=f"ssp-bench-{name}-"))
            engines.append(_core.Engine(json.dumps(dict(base, data_dir=data_dirs[-1])), SERVER, name))
            engines[-1].open()
        latencies = timed_writes(engines, n)
        print(f"{n} group writes, alternating between two engines: p50 {percentile(latencies, 50):.1f} ms,"
              f" p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")
    finally:
        engines.clear()  # closed before their database stops
        pg.stop()
        for data_dir in data_dirs:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=150_000)
    parser.add_argument("--members", type=int, default=40, help="members per group")
    parser.add_argument("--store", choices=("embedded", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--propagation", type=int, default=0,
                        help="time N group writes reaching the other engine instead (PostgreSQL)")
    args = parser.parse_args()
    if args.propagation:
        propagation(args.propagation)
        return
    if not MODERATORS <= args.members <= args.users:
        parser.error("--members: at least 2, at most --users")
    python = sys.executable
    probe_index = args.groups // 2
    probe = {"group": group_id(probe_index)}
    expected_members = len(set(group_members(probe_index, args.users, args.members)))
    stores = ("embedded", "postgres") if args.store == "both" else (args.store,)
    base = run_child(python, {}, "baseline", probe)
    log(f"baseline child (interpreter and module, no store): {base['maxrss_mb']:.0f} MB")
    results: dict[str, list[dict]] = {}
    pg = None
    data_dirs: list[str] = []
    try:
        for store in stores:
            data_dir = tempfile.mkdtemp(prefix=f"ssp-bench-groups-{store}-")
            data_dirs.append(data_dir)
            config = {"data_dir": data_dir, "schools": {"school-0": {"messenger": True}}}
            t = time.perf_counter()
            if store == "embedded":
                write_embedded(data_dir, args.users, args.groups, args.members)
            else:
                from harness.postgres import PostgresCluster

                pg = PostgresCluster().start()
                pg.create_database("groups_load")
                config["database"] = pg.dsn("groups_load")
                run_child(python, config, "open", probe)  # creates the schema (migrations)
                fill_postgres(pg, "groups_load", args.users, args.groups, args.members)
            log(f"{store}: {args.users:,} users and {args.groups:,} groups of {args.members} written "
                f"in {time.perf_counter() - t:.1f} s")
            results[store] = []
            for run in range(args.runs):
                with open("/proc/loadavg") as f:
                    load = float(f.read().split()[0])
                r = run_child(python, config, "open", probe)
                r["load"] = load
                if r["users"] != args.users:
                    raise RuntimeError(f"{store}: {r['users']} users loaded, not {args.users}")
                if r.get("probe_members") not in (None, expected_members):
                    raise RuntimeError(f"{store}: {probe['group']} has {r['probe_members']} members, "
                                       f"not {expected_members}")
                log(f"{store} run {run + 1}: open {r['open_s']:.2f} s, CPU {r['cpu_s']:.2f} s, "
                    f"peak RSS {r['maxrss_mb']:.0f} MB, load average {load:.1f}")
                results[store].append(r)
            if store == "postgres" and pg is not None:
                pg.stop()
                pg = None
    finally:
        if pg is not None:
            pg.stop()
        for data_dir in data_dirs:
            shutil.rmtree(data_dir, ignore_errors=True)
    print()
    print(f"{args.users:,} users, {args.groups:,} groups, {args.groups * args.members:,} memberships;"
          f" baseline child {base['maxrss_mb']:.0f} MB")
    print(f"{'store':<10} {'run':>3} {'open (s)':>9} {'CPU (s)':>8} {'peak RSS (MB)':>14} {'load':>5}"
          f"  target < 10 s, < 1024 MB")
    for store, runs in results.items():
        for i, r in enumerate(runs):
            met = r["open_s"] < 10 and r["maxrss_mb"] < 1024
            print(f"{store:<10} {i + 1:>3} {r['open_s']:>9.2f} {r['cpu_s']:>8.2f} {r['maxrss_mb']:>14.0f}"
                  f" {r['load']:>5.1f}  {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
