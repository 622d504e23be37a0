"""The audit page with 1,000,000 audit records in the store.

PostgreSQL store: starts a throwaway PostgreSQL cluster and a real Synapse
with the module (tests/harness), COPYs N records (default 1,000,000) spread
over 50 schools, every rule and the last --days days (default 365) into
school_policy.audit (whose triggers keep the chart's counts), then measures
in Debian's chromium (Playwright) the page's load for a school admin and
for a data-protection officer: from the click on "Sign in" until the status
table, the first page of records and the chart are drawn (--skip-page
leaves this out). Then the single API calls the page makes, each timed over
a few runs (median): pages, and the chart over 7, 30 and 365 days for one
school and for all of them; then 12 clients asking for the 365-day chart of
all schools at once while another times GET /status.

Embedded store: writes N records as data_dir/audit.jsonl, times the
engine's open (which counts them for the chart) and its memory, and the
same engine calls on it.

    VENV/bin/python bench/audit_page.py --records 1000000
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)

from benchlib import log  # noqa: E402
from harness.client import register_user, request  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.synapse import SynapseServer  # noqa: E402

from synapse_school_policy import _core  # noqa: E402

ADMIN_API = "/_synapse/client/school_policy/v1"
PAGE = "/_synapse/client/school_policy/audit/"
PASSWORD = "correct horse battery staple"
SCHOOLS = [f"school-{i:02d}" for i in range(50)]
RULES = list(_core.RULE_IDS)
DAY = 86_400_000


def records(n: int, now_ms: int, days: int = 30):
    """(id, ts_ms, rule, school, actor, event_type), oldest first, over `days` days."""
    span = days * DAY
    for i in range(1, n + 1):
        ts = now_ms - span + (span * i) // n
        yield (i, ts, RULES[i % len(RULES)], SCHOOLS[(i * 7) % len(SCHOOLS)],
               f"@u{i % 20000}:school.test", "m.room.message")


def copy_records(pg, dbname: str, n: int, now_ms: int, days: int) -> float:
    buf = io.StringIO()
    for i, ts, rule, school, actor, event_type in records(n, now_ms, days):
        buf.write(f"{ts}\t{rule}\tcheck_event_for_spam\tt\t{actor}\t\\N\t!room{i % 5000}:school.test\t"
                  f"{event_type}\t{school}\tmain\tbench\t{i}\n")
    buf.seek(0)
    conn = pg.connect(dbname)
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE staging (ts bigint, rule text, callback text, enforced boolean,"
                    " actor text, target text, room_id text, event_type text, school text, worker text,"
                    " origin text, origin_seq bigint)")
        cur.copy_from(buf, "staging")
        cur.execute("INSERT INTO school_policy.audit (ts, rule, callback, enforced, actor, target, room_id,"
                    " event_type, school, worker, origin, origin_seq)"
                    " SELECT timestamptz 'epoch' + ts * interval '1 ms', rule, callback, enforced, actor,"
                    " target, room_id, event_type, school, worker, origin, origin_seq FROM staging"
                    " ORDER BY origin_seq")
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE school_policy.audit")
        cur.execute("VACUUM ANALYZE school_policy.audit_counts")
        cur.execute("SELECT count(*) FROM school_policy.audit_counts")
        log(f"school_policy.audit_counts: {cur.fetchone()[0]:,} rows")
    conn.close()
    return time.monotonic() - started


def chart_calls(call, now: int) -> list:
    """The chart over 7, 30 and 365 days, as the page asks for them (6 h,
    day and week buckets, ending at a whole minute), one school and all."""
    until = -(-now // 60_000) * 60_000
    calls = []
    for days, bucket, label in [(7, DAY // 4, "6 h"), (30, DAY, "days"), (365, 7 * DAY, "weeks")]:
        for school, who in [(SCHOOLS[3], "one school"), (None, "all schools")]:
            query = {"since": until - days * DAY, "until": until, "bucket": bucket}
            if school:
                query["school"] = school
            calls.append((f"chart, {who}, {days} days in {label}",
                          lambda query=query: call(query)))
    return calls


def concurrent_charts(api, now: int, clients: int = 12) -> None:
    """clients threads ask for the 365-day chart of all schools at once,
    three times each, while the main thread times GET /status."""
    import threading

    until = -(-now // 60_000) * 60_000
    times, status_times = [], []

    def client():
        for _ in range(3):
            started = time.monotonic()
            api("/audit/chart", since=until - 365 * DAY, until=until, bucket=7 * DAY)
            times.append((time.monotonic() - started) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        started = time.monotonic()
        api("/status")
        status_times.append((time.monotonic() - started) * 1000)
        time.sleep(0.05)
    for t in threads:
        t.join()
    log(f"PostgreSQL  {clients} clients x 3 charts of 365 days, all schools, at once: "
        f"p50 {statistics.median(times):.0f} ms, max {max(times):.0f} ms; GET /status meanwhile: "
        f"p50 {statistics.median(status_times):.0f} ms, max {max(status_times):.0f} ms")


def timed(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        fn()
        times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


def page_load(browser, base_url: str, who: str) -> float:
    context = browser.new_context()
    page = context.new_page()
    page.goto(base_url + PAGE)
    page.fill("#username", who)
    page.fill("#password", PASSWORD)
    started = time.monotonic()
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#audit-table tbody tr[data-rule]", timeout=120000)
    page.wait_for_selector("#chart svg rect", timeout=120000)
    page.wait_for_selector("#reads-table tbody tr", timeout=120000)
    elapsed = (time.monotonic() - started) * 1000
    context.close()
    return elapsed


def page_loads(server, n: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page_load(browser, server.base_url, "head")  # warm-up: caches, JIT
        for who, label in [("head", f"school admin ({n // len(SCHOOLS):,} records of their school)"),
                           ("dpo", f"data-protection officer (all {n:,} records)")]:
            loads = [page_load(browser, server.base_url, who) for _ in range(3)]
            log(f"page load, {label}: median {statistics.median(loads):.0f} ms "
                f"(runs: {', '.join(f'{x:.0f}' for x in loads)})")
        browser.close()


def bench_postgres(n: int, days: int, skip_page: bool) -> None:
    pg = PostgresCluster().start()
    server = None
    try:
        module_db = pg.create_database("school_policy")
        conninfo = (f"host={module_db['host']} port={module_db['port']} user={module_db['user']}"
                    f" dbname={module_db['dbname']}")
        workdir = tempfile.mkdtemp(prefix="ssp-bench-page-")
        config = {"service_users": ["@sync:school.test"], "database": conninfo,
                  "data_dir": os.path.join(workdir, "store"), "audit": {"readers": ["@dpo:school.test"]},
                  "schools": {s: {"messenger": True} for s in SCHOOLS}}
        server = SynapseServer(os.path.join(workdir, "synapse"), module_config=config,
                               database=pg.create_database("synapse")).start()
        sync = register_user(server, "sync", PASSWORD)
        for who, school, role in [("head", SCHOOLS[3], "admin"), ("dpo", SCHOOLS[0], "teacher")]:
            register_user(server, who, PASSWORD)
            status, body = request(server.base_url, "PUT", f"{ADMIN_API}/users/@{who}:school.test",
                                   {"schools": [{"school": school, "role": role}]}, token=sync.token)
            assert status == 200, body
        now = int(time.time() * 1000)
        log(f"COPY of {n:,} audit records ...")
        copy_s = copy_records(pg, "school_policy", n, now, days)
        log(f"{n:,} records over {days} days in school_policy.audit in {copy_s:.1f} s (COPY, "
            f"INSERT with the counts' trigger, VACUUM ANALYZE)")

        if not skip_page:
            page_loads(server, n)

        _, login_body = request(server.base_url, "POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "dpo"},
            "password": PASSWORD})
        token = login_body["access_token"]

        def api(path, **query):
            status, body = request(server.base_url, "GET", ADMIN_API + path, token=token, query=query)
            assert status == 200, body
            return body

        last_page = {}

        def deep():
            # 200 pages back: the cursor keeps each page an index range scan
            from_id = n - 200 * 50
            last_page["n"] = len(api("/audit", limit=50, **{"from": from_id})["records"])

        calls = [
            ("GET /audit, newest 50", lambda: api("/audit", limit=50)),
            ("GET /audit, one school, newest 50", lambda: api("/audit", limit=50, school=SCHOOLS[3])),
            ("GET /audit, one school and rule", lambda: api("/audit", limit=50, school=SCHOOLS[3], rule="one_way")),
            ("GET /audit, from = 200 pages back", deep),
            *((f"GET /audit/{label}", fn)
              for label, fn in chart_calls(lambda q: api("/audit/chart", **q), now)),
            ("GET /status", lambda: api("/status")),
        ]
        for label, fn in calls:
            log(f"PostgreSQL  {label}: median {timed(fn, 7):.1f} ms")
        concurrent_charts(api, now)
    finally:
        if server is not None:
            server.stop()
        pg.stop()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def bench_embedded(n: int, days: int) -> None:
    data_dir = tempfile.mkdtemp(prefix="ssp-bench-embedded-")
    now = int(time.time() * 1000)
    started = time.monotonic()
    with open(os.path.join(data_dir, "audit.jsonl"), "w") as f:
        for i, ts, rule, school, actor, event_type in records(n, now, days):
            f.write(json.dumps({"id": i, "ts": ts, "rule": rule, "callback": "check_event_for_spam",
                                "enforced": True, "actor": actor, "target": None,
                                "room_id": f"!room{i % 5000}:school.test", "event_type": event_type,
                                "school": school, "worker": "main"}, separators=(",", ":")) + "\n")
    size = os.path.getsize(os.path.join(data_dir, "audit.jsonl"))
    log(f"embedded store: {n:,} records, {size / 1e6:.0f} MB audit.jsonl written in "
        f"{time.monotonic() - started:.1f} s")
    config = json.dumps({"data_dir": data_dir, "audit": {"readers": ["@dpo:school.test"]},
                         "schools": {s: {"messenger": True} for s in SCHOOLS}})
    engine = _core.Engine(config, "school.test", "main")
    rss_before = rss_mb()
    started = time.monotonic()
    engine.open()
    log(f"embedded    open, counting {n:,} records for the chart: {time.monotonic() - started:.2f} s, "
        f"resident memory {rss_mb() - rss_before:+.0f} MB")

    def view(op, **query):
        answer = (engine.audit_view(json.dumps(
            {"op": op, "reader": "@dpo:school.test", "server_admin": False, "query": query})))
        assert answer["status"] == 200, answer
        return answer["body"]

    calls = [
        ("audit, newest 50", lambda: view("audit", limit=50)),
        ("audit, one school, newest 50", lambda: view("audit", limit=50, school=SCHOOLS[3])),
        ("audit, one school and rule", lambda: view("audit", limit=50, school=SCHOOLS[3], rule="one_way")),
        ("audit, from = 200 pages back", lambda: view("audit", limit=50, **{"from": n - 200 * 50})),
        *chart_calls(lambda q: view("chart", **q), now),
    ]
    for label, fn in calls:
        log(f"embedded    {label}: median {timed(fn, 7):.1f} ms")
    del engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="the records' time span")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-page", action="store_true", help="no browser: the API calls only")
    args = parser.parse_args()
    bench_postgres(args.records, args.days, args.skip_page)
    if not args.skip_embedded:
        bench_embedded(args.records, args.days)


if __name__ == "__main__":
    main()
