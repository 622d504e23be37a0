"""Audit throughput and roster load of the PostgreSQL store.

Starts a throwaway PostgreSQL cluster (tests/harness), opens an engine on
it and measures:
- audit: N denials decided as fast as possible; records/s from the first
  decision until the last record is committed in PostgreSQL, and the p50/p99
  of the decision call itself while the store thread writes;
- roster (--roster N): N roster rows loaded at engine start-up (COPY), the
  time and the process's resident memory growth.

    VENV/bin/python bench/audit_throughput.py --records 200000 --roster 1000000
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from harness.postgres import PostgresCluster  # noqa: E402

from synapse_school_policy import _core  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200000)
    parser.add_argument("--roster", type=int, default=0, help="roster rows to load at start-up")
    args = parser.parse_args()
    pg = PostgresCluster().start()
    try:
        pg.create_database("bench")
        config = json.dumps({"database": pg.dsn("bench"), "data_dir": tempfile.mkdtemp(),
                             "schools": {"gym-nord": {"messenger": True}}})
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
