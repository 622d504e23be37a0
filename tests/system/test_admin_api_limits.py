"""No parameter gets a 500, on either store: every integer of every read
endpoint (GET /audit, /audit/chart, /audit/reads, /status) at 0, -1,
2^63-1, 10^19, the year-9999 bound and huge buckets answers 400 naming the
parameter or a correct answer, against a real Synapse on the embedded
store and on PostgreSQL (one Synapse per store for the whole file).

On PostgreSQL also: a reader that runs out of time is a 503 and never
holds the reconciler's ledger (GET /status) or the audit writer, and a
locked audit table makes the writer spill instead of stall."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from harness.client import login
from support import PASSWORD, School, base_config, membership, uid

pytestmark = pytest.mark.integration

MAX_TS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
INT64_MAX = 2**63 - 1
HOUR = 3_600_000
DAY = 24 * HOUR
LIMIT_VALUES = [0, -1, 1, INT64_MAX, 10**19, MAX_TS, MAX_TS + 1, 99_999_999_999_999_999]


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def world(request, module_synapse_factory, postgres, tmp_path_factory):
    overrides = {"audit": {"readers": [uid("dpo")]}}
    dbname = None
    if request.param == "postgres":
        dbname = f"school_policy_limits_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        overrides["database"] = postgres.dsn(dbname)
    world = School(module_synapse_factory(
        base_config(tmp_path_factory.mktemp("limits") / "store", **overrides)))
    world.store = request.param
    world.dbname = dbname
    world.register("sync")
    world.register("dpo")
    world.register("pupil")
    world.put_roster("pupil", membership("gs-sued", "student"))  # gs-sued has not opted in
    for _ in range(3):
        status, body = login(world.server.base_url, "pupil", PASSWORD)
        assert status == 403, body
    return world


def get(world, path, **query):
    return world.admin_api("GET", path, query={k: str(v) for k, v in query.items()},
                           as_user=world.users["dpo"])


def assert_answered(status, body, parameter):
    """A 200, or a 400 that names the parameter: as the one at fault
    ("since: expected an integer from 0 to ..."), or in the rule it broke
    ("until: must be after since")."""
    assert status in (200, 400), (parameter, status, body)
    if status == 400:
        assert body["errcode"] == "M_INVALID_PARAM", body
        assert parameter in body["error"], (parameter, body["error"])


NOW = int(time.time() * 1000)
VALID = {
    "/audit": {},
    "/audit/reads": {},
    "/audit/chart": {"since": NOW - 7 * DAY, "until": NOW, "bucket": 6 * HOUR},
}
INTEGERS = {
    "/audit": ["since", "until", "limit", "from"],
    "/audit/reads": ["since", "until", "limit", "from"],
    "/audit/chart": ["since", "until", "bucket"],
}


@pytest.mark.parametrize("path", list(INTEGERS))
def test_every_integer_at_its_limits_is_answered_never_a_500(world, path):
    for parameter in INTEGERS[path]:
        for value in LIMIT_VALUES:
            status, body = get(world, path, **{**VALID[path], parameter: value})
            assert_answered(status, body, parameter)
    # /status takes no parameter; what it is given is ignored
    status, body = get(world, "/status", since=INT64_MAX, limit=-1, bucket=10**19)
    assert status == 200, body


@pytest.mark.parametrize("query, parameter", [
    # the reports that gave 500s: PostgreSQL's "interval out of range", an
    # int64 overflow of the embedded chart's bucket count (and a MemoryError).
    # A time past the year 9999 is the year 9999: nothing is later.
    ({"since": 99_999_999_999_999_999}, None),
    ({"until": INT64_MAX}, None),
    ({"since": 1, "until": INT64_MAX, "bucket": 4_700_000_000_000_000}, "bucket"),
    ({"since": 1, "until": MAX_TS, "bucket": 60_000}, "bucket"),  # far over 2,000 buckets
    ({"since": 1, "until": MAX_TS, "bucket": 90_000}, "bucket"),  # not whole minutes
    ({"since": INT64_MAX, "until": INT64_MAX, "bucket": 60_000}, "until"),
])
def test_the_reported_500s_are_answered_or_400s_naming_the_parameter(world, query, parameter):
    path = "/audit/chart" if "bucket" in query else "/audit"
    status, body = get(world, path, **query)
    if parameter is None:
        assert status == 200, body
        if "since" in query:
            assert body["records"] == [], body  # nothing after the year 9999
        else:
            assert body["records"], body  # everything until then
    else:
        assert status == 400, body
        assert body["error"].startswith(parameter), body


def test_a_chart_of_all_time_in_one_bucket_counts_every_denial(world):
    bucket = MAX_TS // 60_000 * 60_000
    status, body = get(world, "/audit/chart", since=1, until=MAX_TS, bucket=bucket)
    assert status == 200, body
    assert body["since"] == 60_000 and body["bucket"] == bucket
    assert sum(n for start, rule, n in body["rows"]) >= 3
    assert {start for start, rule, n in body["rows"]} == {60_000}


def test_charts_of_a_week_and_a_year_agree_with_the_records(world):
    records = [r for r in world.audit(limit=1000) if r.get("rule")]
    for days, bucket in [(7, 6 * HOUR), (365, 7 * DAY)]:
        status, body = get(world, "/audit/chart", since=NOW - days * DAY, until=NOW + 60_000,
                           bucket=bucket)
        assert status == 200, body
        in_range = [r for r in records if body["since"] <= r["ts"] < body["until"]]
        assert sum(n for _, _, n in body["rows"]) == sum(r.get("count") or 1 for r in in_range)


def test_a_school_id_with_a_no_break_space_is_refused_by_the_api(world):
    status, body = world.admin_api("PUT", f"/users/{uid('nbsp')}",
                                   {"schools": [membership("gym\u00a0nord", "student")]})
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
    assert body["error"].startswith("schools[0].school: contains a space (U+00A0)"), body
    status, body = world.admin_api("POST", "/roster", {"users": [
        {"user_id": uid("nbsp"), "schools": [membership("gym\u3000nord", "student")]}]})
    assert status == 400, body
    assert body["error"].startswith("users[0].schools[0].school: contains a space (U+3000)")


def test_a_reader_out_of_time_is_a_503_and_holds_up_neither_status_nor_the_writer(
    world, postgres
):
    """A lock on the chart's counts (as a slow or stuck database would
    hold one) makes a chart wait until the readers' statement timeout:
    503, never 500. Meanwhile GET /status (the reconciler's connection)
    answers at once, and a denial is answered with its record durable: the
    audit INSERT, whose trigger needs the same table, gives up after the
    writer's lock timeout and spills to the file, and the record reaches
    the database once the lock is gone."""
    if world.store != "postgres":
        pytest.skip("the embedded store has no database to time out")
    conn = postgres.connect(world.dbname)
    conn.autocommit = False
    results = {}
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE school_policy.audit_counts IN ACCESS EXCLUSIVE MODE")

        def chart():
            started = time.monotonic()
            results["chart"] = get(world, "/audit/chart", since=NOW - 7 * DAY, until=NOW,
                                   bucket=6 * HOUR)
            results["chart_s"] = time.monotonic() - started

        reader = threading.Thread(target=chart)
        reader.start()
        time.sleep(0.5)
        started = time.monotonic()
        status, body = get(world, "/status")
        status_s = time.monotonic() - started
        assert status == 200, body
        started = time.monotonic()
        status, body = login(world.server.base_url, "pupil", PASSWORD)
        denial_s = time.monotonic() - started
        assert status == 403, body
        reader.join(30)
    finally:
        conn.rollback()
        conn.close()
    status, body = results["chart"]
    assert status == 503, body
    assert "statement timeout" in body["error"], body
    assert 4 <= results["chart_s"] < 15, results["chart_s"]
    assert status_s < 2, status_s
    assert denial_s < 4.5, denial_s  # the 5 s wait for durability never runs out
    # the spilled record is in the database once the lock is gone
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        logins = [r for r in world.audit(user=uid("pupil"), limit=100)
                  if r["callback"] == "check_login_for_spam"]
        if len(logins) >= 4:
            break
        time.sleep(0.5)
    assert len(logins) >= 4, logins
