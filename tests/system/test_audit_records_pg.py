"""The audit record's kinds on PostgreSQL (schema migration 4): a flood's
summary (count, last_ts), the module's own actions (kind, action, group,
reason), rows written before the migration (NULL: a single denial), the
kind filter and the chart's counts. The same on the embedded store is in
tests/c/test_audit.c and tests/unit/test_binding.py."""
import json
import time

import pytest

from support import SERVER_NAME as SERVER
from synapse_school_policy import _core

pytestmark = pytest.mark.integration


@pytest.fixture
def store(postgres, tmp_path):
    name = f"audit_kinds_{time.monotonic_ns()}"
    postgres.create_database(name)
    config = {
        "database": postgres.dsn(name),
        "data_dir": str(tmp_path / "store"),
        "schools": {"gym-nord": {"messenger": True}, "gs-sued": {"messenger": False}},
    }
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()  # creates the schema
    yield engine, lambda: postgres.connect(name)
    del engine


def deny_login(engine, user):
    return engine.decide(_core.CB_CHECK_LOGIN_FOR_SPAM, user, None, None, None, None, None, None,
                         _core.FACT_NO, None, None, None, None)


def test_schema_4_keeps_denials_as_they_were_and_adds_actions_and_summaries(store):
    engine, connect = store
    denial = deny_login(engine, f"@zoe:{SERVER}")
    action_id = engine.audit_action({"action": "member_removed", "target": f"@zoe:{SERVER}",
                                     "room_id": f"!mathe:{SERVER}", "group": "course-1",
                                     "school": "gym-nord", "reason": "not listed in version 18"})
    assert engine.wait_durable(action_id, 10000)
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT max(version) FROM school_policy.schema_version")
        assert cur.fetchone()[0] >= 4  # migration 4 and any later one
        cur.execute("SELECT kind, count, last_ts, action, group_id, reason, rule, callback, enforced"
                    " FROM school_policy.audit ORDER BY id")
        rows = cur.fetchall()
        # A single denial fills none of the new columns: as before migration 4.
        assert rows[0] == (None, None, None, None, None, None, "not_on_roster",
                           "check_login_for_spam", True)
        assert rows[1] == ("action", None, None, "member_removed", "course-1",
                           "not listed in version 18", None, None, None)
        # A summary as another worker of this version writes it, and a row of
        # an older version (no kind, no count).
        cur.execute(
            "INSERT INTO school_policy.audit (ts, rule, callback, enforced, actor, school, worker,"
            " origin, origin_seq, count, last_ts) VALUES"
            " (now() - interval '10 s', 'one_way', 'check_event_for_spam', true, %s, 'gym-nord',"
            "  'worker1', 'worker1:x', 1, 250, now())", (f"@pupil:{SERVER}",))
        # The checks hold new rows: a count below 1, an action without its id.
        with pytest.raises(Exception, match="audit_count"):
            cur.execute("INSERT INTO school_policy.audit (ts, rule, callback, enforced, worker, origin,"
                        " origin_seq, count) VALUES (now(), 'one_way', 'x', true, 'w', 'o', 2, 0)")
        with pytest.raises(Exception, match="audit_kind_fields"):
            cur.execute("INSERT INTO school_policy.audit (ts, worker, origin, origin_seq, kind)"
                        " VALUES (now(), 'w', 'o', 3, 'action')")
    conn.close()

    records = engine.audit_query()["records"]
    summary, action, single = records
    assert summary["kind"] == "denial" and summary["count"] == 250
    assert 9000 <= summary["last_ts"] - summary["ts"] <= 11000
    assert (summary["rule"], summary["actor"], summary["worker"]) == ("one_way", f"@pupil:{SERVER}", "worker1")
    assert action == {
        "id": action_id, "ts": action["ts"], "kind": "action", "count": 1, "action": "member_removed",
        "actor": f"@school-policy:{SERVER}", "target": f"@zoe:{SERVER}", "room_id": f"!mathe:{SERVER}",
        "event_type": None, "group": "course-1", "school": "gym-nord",
        "reason": "not listed in version 18", "worker": "main",
    }
    assert single["id"] == denial.audit_id
    assert (single["kind"], single["count"], single["rule"]) == ("denial", 1, "not_on_roster")
    assert "last_ts" not in single and "action" not in single and "rule" not in action
    assert [r["id"] for r in engine.audit_query(kind="action")["records"]] == [action_id]
    assert [r["id"] for r in engine.audit_query(kind="denial")["records"]] == [summary["id"], denial.audit_id]
    assert engine.audit_query(kind="action", rule="one_way")["records"] == []

    # The chart counts the denials a summary stands for; actions have no rule.
    now = int(time.time() * 1000)
    view = {"op": "chart", "reader": engine.reconciler_user, "server_admin": False,
            "query": {"since": now - 3_600_000, "until": now + 3_600_000, "bucket": 7_200_000}}
    rows = engine.audit_view(json.dumps(view))["body"]["rows"]
    assert sorted((rule, n) for _, rule, n in rows) == [("not_on_roster", 1), ("one_way", 250)]
