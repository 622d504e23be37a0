"""The reconciliation ledger through the binding: the PostgreSQL store
(migration 2, the roster trigger, marks shared by every process) and the
embedded store's offline status. The embedded ledger's file handling is
tested in C (tests/c/test_reconcile.c)."""
import json
import time
import uuid

import pytest

from support import now_ms
from synapse_school_policy import _core

pytestmark = pytest.mark.integration

SERVER = "school.test"
ANNA = "@anna:school.test"
BEN = "@ben:school.test"
SCHOOLS = {"gym-nord": {"messenger": True, "announcement_room": True}, "rs-ost": {}}
FAR_FUTURE = 2**62


class Database:
    def __init__(self, postgres, name):
        self.postgres = postgres
        self.name = name

    def sql(self, statement, params=()):
        conn = self.postgres.connect(self.name)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


@pytest.fixture
def db(postgres):
    name = f"ledger_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    return Database(postgres, name)


@pytest.fixture
def config(db, tmp_path):
    return {
        "data_dir": str(tmp_path / "store"),
        "database": db.postgres.dsn(db.name),
        "schools": SCHOOLS,
    }


def open_engine(config, worker="main"):
    engine = _core.Engine(json.dumps(config), SERVER, worker)
    engine.open()
    return engine


@pytest.fixture
def engine(config):
    return open_engine(config)


def due(engine, now=FAR_FUTURE, limit=1000):
    return [
        (m["school"], m["user_id"], m["attempts"]) for m in engine.reconcile_due(now, limit)
    ]


def generation(engine, school, user_id):
    for m in engine.reconcile_due(FAR_FUTURE, 1000):
        if (m["school"], m["user_id"]) == (school, user_id):
            return m["generation"]
    return None


def done_all(engine):
    for m in engine.reconcile_due(FAR_FUTURE, 1000):
        engine.reconcile_done(m["school"], m["user_id"], m["generation"])
    assert due(engine) == []


def test_plain_sql_on_the_roster_is_marked_by_the_trigger(engine, db):
    db.sql("INSERT INTO school_policy.roster (user_id, school, role) VALUES (%s, 'gym-nord', 'student')", (ANNA,))
    assert due(engine) == [("gym-nord", ANNA, 0)]
    done_all(engine)
    db.sql("UPDATE school_policy.roster SET role = 'teacher' WHERE user_id = %s", (ANNA,))
    assert due(engine) == [("gym-nord", ANNA, 0)]
    done_all(engine)
    # moving schools marks the old school (to remove) and the new one (to add)
    db.sql("UPDATE school_policy.roster SET school = 'rs-ost' WHERE user_id = %s", (ANNA,))
    assert sorted(due(engine)) == [("gym-nord", ANNA, 0), ("rs-ost", ANNA, 0)]
    done_all(engine)
    db.sql("DELETE FROM school_policy.roster WHERE user_id = %s", (ANNA,))
    assert due(engine) == [("rs-ost", ANNA, 0)]
    done_all(engine)
    # TRUNCATE has no rows: every school the ledger knows is marked as a whole
    engine.reconcile_set_room("gym-nord", "teachers", "!t:school.test")
    db.sql("INSERT INTO school_policy.roster (user_id, school, role) VALUES (%s, 'rs-ost', 'student')", (BEN,))
    done_all(engine)
    db.sql("TRUNCATE school_policy.roster")
    assert due(engine) == [("gym-nord", "", 0)]


def test_roster_put_through_the_engine_ends_up_marked(engine):
    engine.roster_put(ANNA, json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    # the store thread pushes the outbox; the trigger marks in that transaction
    deadline = time.monotonic() + 10
    while due(engine) != [("gym-nord", ANNA, 0)]:
        assert time.monotonic() < deadline, due(engine)
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while engine.store_status()["reconcile_pending"] != 1:
        assert time.monotonic() < deadline, engine.store_status()
        time.sleep(0.1)


def test_a_remark_while_the_reconciler_works_survives_its_done(engine):
    engine.reconcile_mark("gym-nord", [ANNA, ANNA, ""])
    first = generation(engine, "gym-nord", ANNA)
    engine.reconcile_mark("gym-nord", [ANNA])
    second = generation(engine, "gym-nord", ANNA)
    assert second > first
    engine.reconcile_done("gym-nord", ANNA, first)
    engine.reconcile_failed("gym-nord", ANNA, first, "stale", FAR_FUTURE)
    assert generation(engine, "gym-nord", ANNA) == second
    assert ("gym-nord", ANNA, 0) in due(engine, now_ms())
    engine.reconcile_done("gym-nord", ANNA, second)
    assert due(engine) == [("gym-nord", "", 0)]


def test_failed_marks_back_off_and_a_remark_makes_them_due(engine):
    now = now_ms()
    engine.reconcile_mark("gym-nord", [ANNA])
    engine.reconcile_mark("gym-nord", [BEN])
    engine.reconcile_failed("gym-nord", ANNA, generation(engine, "gym-nord", ANNA), "M_FORBIDDEN", now + 60_000)
    assert due(engine, now) == [("gym-nord", BEN, 0)]
    assert due(engine, now + 60_000) == [("gym-nord", BEN, 0), ("gym-nord", ANNA, 1)]
    assert due(engine, now + 60_000, 1) == [("gym-nord", BEN, 0)]
    engine.reconcile_failed("gym-nord", ANNA, generation(engine, "gym-nord", ANNA), "again", now + 120_000)
    assert due(engine, now + 120_000)[1] == ("gym-nord", ANNA, 2)
    engine.reconcile_mark("gym-nord", [ANNA])
    assert due(engine, now) == [("gym-nord", BEN, 0), ("gym-nord", ANNA, 0)]
    status = engine.reconcile_status()
    assert status["schools"]["gym-nord"]["last_error"] == "again"


def test_sync_config_marks_a_changed_school_and_its_users_once(engine, db, config):
    db.sql(
        "INSERT INTO school_policy.roster (user_id, school, role) VALUES"
        " (%s, 'gym-nord', 'student'), (%s, 'gym-nord', 'teacher'), (%s, 'rs-ost', 'teacher'),"
        " ('@carl:school.test', 'elsewhere', 'student')",
        (ANNA, BEN, BEN),
    )
    done_all(engine)
    assert engine.reconcile_sync_config() == 2
    assert sorted(due(engine)) == [
        ("gym-nord", "", 0), ("gym-nord", ANNA, 0), ("gym-nord", BEN, 0),
        ("rs-ost", "", 0), ("rs-ost", BEN, 0),
    ]
    done_all(engine)
    assert engine.reconcile_sync_config() == 0
    assert due(engine) == []
    assert db.sql("SELECT school, applied FROM school_policy.school_state ORDER BY school") == [
        ("gym-nord", '{"messenger":true,"teachers_room":true,"announcement_room":true}'),
        ("rs-ost", '{"messenger":false,"teachers_room":true,"announcement_room":false}'),
    ]
    # another process with a changed school config marks that school only
    changed = dict(config, schools={"gym-nord": SCHOOLS["gym-nord"], "rs-ost": {"messenger": True}})
    other = open_engine(changed, worker="worker1")
    assert other.reconcile_sync_config() == 1
    assert sorted(due(engine)) == [("rs-ost", "", 0), ("rs-ost", BEN, 0)]


def test_status_online_and_offline_and_the_rooms(engine, config):
    engine.reconcile_mark("gym-nord", [ANNA, BEN])
    engine.reconcile_mark("unlisted", [ANNA])
    engine.reconcile_failed("gym-nord", ANNA, generation(engine, "gym-nord", ANNA), "first", 0)
    time.sleep(0.01)
    engine.reconcile_failed("gym-nord", BEN, generation(engine, "gym-nord", BEN), "second", 0)
    engine.reconcile_set_room("gym-nord", "announcement", "!a:school.test")
    engine.reconcile_set_room("gym-nord", "teachers", "!t:school.test")
    engine.reconcile_set_room("gym-nord", "teachers", None)
    assert engine.reconcile_get_room("gym-nord", "announcement") == "!a:school.test"
    assert engine.reconcile_get_room("gym-nord", "teachers") is None
    expected = {
        "schools": {
            "gym-nord": {"messenger": True, "teachers_room": None, "announcement_room": "!a:school.test",
                         "pending": 2, "last_error": "second"},
            "rs-ost": {"messenger": False, "teachers_room": None, "announcement_room": None,
                       "pending": 0, "last_error": None},
        }
    }
    status = engine.reconcile_status()
    assert status == expected
    assert list(status["schools"]) == ["gym-nord", "rs-ost"]
    assert _core.reconcile_status_offline(json.dumps(config)) == expected
    deadline = time.monotonic() + 10
    while engine.store_status()["reconcile_pending"] != 3:
        assert time.monotonic() < deadline, engine.store_status()
        time.sleep(0.1)


def test_bad_input_raises_input_error(engine):
    with pytest.raises(_core.InputError, match="kind"):
        engine.reconcile_set_room("gym-nord", "course", "!r:school.test")
    with pytest.raises(_core.InputError, match="user_id"):
        engine.reconcile_mark("gym-nord", ["anna"])
    with pytest.raises(TypeError):
        engine.reconcile_mark("gym-nord", ANNA)
    with pytest.raises(_core.InputError):
        engine.reconcile_due(0, -1)


def test_a_version_1_schema_is_migrated(config, db):
    # Bring a database to exactly what version 1 made: open once, then take
    # the objects of migrations 2 to 6 away again.
    del_engine = open_engine(config)
    del del_engine
    db.sql(
        # migration 6: groups, their change log and their trigger
        "DROP TABLE school_policy.groups, school_policy.group_changes;"
        "DROP FUNCTION school_policy.groups_changed();"
        # migration 5: the chart's counts
        "DROP TRIGGER audit_counted_insert ON school_policy.audit;"
        "DROP TRIGGER audit_counted_delete ON school_policy.audit;"
        "DROP TRIGGER audit_counted_update ON school_policy.audit;"
        "DROP TRIGGER audit_counted_truncate ON school_policy.audit;"
        "DROP FUNCTION school_policy.audit_counted(),"
        " school_policy.audit_count_keys(timestamptz, text, text, bigint);"
        "DROP TABLE school_policy.audit_counts;"
        # migration 4: the record's kind, count and span
        "DROP INDEX school_policy.audit_school_ts_count, school_policy.audit_actions;"
        "ALTER TABLE school_policy.audit DROP CONSTRAINT audit_kind, DROP CONSTRAINT audit_count,"
        " DROP CONSTRAINT audit_kind_fields, DROP COLUMN kind, DROP COLUMN count, DROP COLUMN last_ts,"
        " DROP COLUMN action, DROP COLUMN group_id, DROP COLUMN reason,"
        " ALTER COLUMN rule SET NOT NULL, ALTER COLUMN callback SET NOT NULL,"
        " ALTER COLUMN enforced SET NOT NULL;"
        # migration 3: the read log and the audit page's indexes
        "DROP TABLE school_policy.audit_reads;"
        "DROP INDEX school_policy.audit_school_rule, school_policy.audit_rule;"
        # migration 2: the reconcile state
        "DROP TRIGGER roster_reconcile_mark ON school_policy.roster;"
        "DROP TRIGGER roster_reconcile_truncated ON school_policy.roster;"
        "DROP FUNCTION school_policy.roster_reconcile_mark();"
        "DROP FUNCTION school_policy.reconcile_mark(text, text);"
        "DROP TABLE school_policy.reconcile_marks, school_policy.special_rooms,"
        " school_policy.school_state;"
        "DROP SEQUENCE school_policy.reconcile_generation;"
        "DELETE FROM school_policy.schema_version WHERE version >= 2"
    )
    db.sql("INSERT INTO school_policy.roster (user_id, school, role) VALUES (%s, 'gym-nord', 'student')", (ANNA,))
    # denials recorded by version 1: migration 5 counts them for the chart
    db.sql("INSERT INTO school_policy.audit (ts, rule, callback, enforced, school, worker, origin,"
           " origin_seq) VALUES (now(), 'one_way', 'check_event_for_spam', true, 'gym-nord', 'main',"
           " 'old', 1), (now(), 'one_way', 'check_event_for_spam', true, NULL, 'main', 'old', 2)")
    # and one of a user: after migration 4 it reads as the single denial it was
    db.sql("INSERT INTO school_policy.audit (ts, rule, callback, enforced, actor, worker, origin, origin_seq)"
           " VALUES (now(), 'not_on_roster', 'check_login_for_spam', true, %s, 'main', 'main/old', 1)", (BEN,))
    with pytest.raises(_core.StoreError, match="version 2"):
        _core.reconcile_status_offline(json.dumps(config))
    engine = open_engine(config)
    assert db.sql("SELECT max(version) FROM school_policy.schema_version") == [(6,)]
    assert db.sql("SELECT count(*) FROM school_policy.groups") == [(0,)]
    assert db.sql("SELECT school, grain, sum(n)::int FROM school_policy.audit_counts"
                  " GROUP BY school, grain ORDER BY 1, 2") == [
        ("", 3600000, 3), ("", 86400000, 3), ("gym-nord", 3600000, 1), ("gym-nord", 86400000, 1)]
    assert engine.roster_get(ANNA) is not None
    # a record from before migration 4 reads as the single denial it was
    old = engine.audit_query(user=BEN)["records"]
    assert [(r["kind"], r["count"], r["rule"]) for r in old] == [("denial", 1, "not_on_roster")]
    assert due(engine) == []  # rows from before the ledger are not marked...
    assert engine.reconcile_sync_config() == 2  # ...sync_config covers them
    assert ("gym-nord", ANNA, 0) in due(engine)


def test_embedded_store_status_offline_reads_the_file(tmp_path):
    config = {"data_dir": str(tmp_path / "store"), "schools": SCHOOLS}
    assert _core.reconcile_status_offline(json.dumps(config))["schools"]["gym-nord"]["pending"] == 0
    engine = open_engine(config)
    engine.roster_put(ANNA, json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    assert engine.store_status()["reconcile_pending"] == 1
    status = _core.reconcile_status_offline(json.dumps(config))
    assert status == engine.reconcile_status()
    assert status["schools"]["gym-nord"]["pending"] == 1
