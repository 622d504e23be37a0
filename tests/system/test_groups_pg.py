"""Groups in the PostgreSQL store (migration 6) through the binding, on a
throwaway PostgreSQL: a group written through one process reaches the other
processes' group index (the trigger's NOTIFY), is loaded again at a restart
(COPY), and the version rule holds across processes, also when the writer
has not yet seen the newer snapshot. Two engines with their own worker names
stand for Synapse's main process and a worker. The group index and its rules
are tested in C (tests/c/test_groups*.c); the cache read at an outage start
in tests/c/test_pgstore.c."""
import gc
import os
import json
import time
import uuid

import pytest

from synapse_school_policy import _core

pytestmark = pytest.mark.integration

SERVER = "school.test"
BERG = "@berg:school.test"
ANNA = "@anna:school.test"
BEN = "@ben:school.test"
SCHOOLS = {"gym-nord": {"messenger": True}, "rs-ost": {"messenger": True}}
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

    def row(self, group_id):
        rows = self.sql("SELECT version, state, moderators, members FROM school_policy.groups"
                        " WHERE group_id = %s", (group_id,))
        return rows[0] if rows else None

    def changes(self):
        return self.sql("SELECT count(*) FROM school_policy.group_changes")[0][0]


@pytest.fixture
def db(postgres):
    name = f"groups_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    return Database(postgres, name)


@pytest.fixture
def config(db, tmp_path):
    return {"data_dir": str(tmp_path / "store"), "database": db.postgres.dsn(db.name),
            "schools": SCHOOLS}


def open_engine(config, worker="main"):
    engine = _core.Engine(json.dumps(config), SERVER, worker)
    engine.open()
    return engine


@pytest.fixture
def main(config):
    return open_engine(config, "main")


@pytest.fixture
def worker(config, main):
    return open_engine(config, "worker1")


def body(version=None, moderators=(BERG,), members=(ANNA, BEN), **fields):
    group = {"school": "gym-nord", "kind": "course", "name": "Mathe 7b",
             "members": [{"user_id": u, "role": "moderator"} for u in moderators]
             + [{"user_id": u, "role": "member"} for u in members]}
    if version is not None:
        group["version"] = version
    group.update(fields)
    return json.dumps(group)


def roles(group):
    return sorted((m["user_id"], m["role"]) for m in group["members"])


def wait_for(probe, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


def version_of(engine, group_id):
    group = engine.group_get(group_id)
    return None if group is None else group.get("version")


def due_groups(engine):
    return sorted((m["school"], m["user_id"]) for m in engine.reconcile_due(FAR_FUTURE, 1000)
                  if m["user_id"].startswith("group:"))


def test_a_group_put_through_one_process_reaches_the_other(main, worker, db):
    stored = main.group_put("course-1", body(version=3))
    assert stored["version"] == 3 and not stored.get("ignored")
    # durable on return: the row is committed before the call returns
    assert db.row("course-1") == (3, "active", [BERG], [ANNA, BEN])
    seen = wait_for(lambda: worker.group_get("course-1"), "the worker sees the new group")
    assert roles(seen) == [(ANNA, "member"), (BEN, "member"), (BERG, "moderator")]
    assert seen["name"] == "Mathe 7b" and seen["school"] == "gym-nord"
    assert worker.groups_of(BEN) == ["course-1"]
    # a change: Ben leaves the course, Anna becomes a moderator
    main.group_put("course-1", body(version=4, moderators=(BERG, ANNA), members=()))
    wait_for(lambda: version_of(worker, "course-1") == 4, "the worker sees version 4")
    assert roles(worker.group_get("course-1")) == [(ANNA, "moderator"), (BERG, "moderator")]
    assert worker.groups_of(BEN) == []
    # both processes marked the group for the reconciler, in the shared ledger
    assert due_groups(worker) == [("gym-nord", "group:course-1")]


def test_groups_survive_a_restart(config, db):
    engine = open_engine(config)
    engine.group_put("course-1", body(version=3, topic="Mathematik, Frau Berg", two_way=True))
    engine.group_put("team-2", body(kind="team", school="rs-ost", closed=False, members=(ANNA,)))
    engine.group_put("class-3", body(version=1, kind="class"))
    assert engine.group_delete("class-3") is True
    before = {g: engine.group_get(g) for g in ("course-1", "team-2", "class-3")}
    del engine
    gc.collect()
    engine = open_engine(config)
    for group_id, group in before.items():
        assert engine.group_get(group_id) == group, group_id
    assert engine.group_get("class-3")["state"] == "deleted"
    assert [g["group"] for g in engine.groups_list("gym-nord", None, 10)["groups"]] == [
        "class-3", "course-1"]
    assert engine.groups_of(ANNA) == ["class-3", "course-1", "team-2"]


def test_a_stale_version_is_ignored_across_processes(main, worker, db):
    main.group_put("course-1", body(version=7, members=(ANNA,)))
    wait_for(lambda: version_of(worker, "course-1") == 7, "the worker sees version 7")
    changes = db.changes()
    stale = worker.group_put("course-1", body(version=6, members=(BEN,)))
    assert stale["ignored"] is True and stale["version"] == 7
    assert db.row("course-1") == (7, "active", [BERG], [ANNA])
    assert db.changes() == changes
    for engine in (main, worker):
        assert roles(engine.group_get("course-1")) == [(ANNA, "member"), (BERG, "moderator")]


def test_a_newer_version_the_writer_has_not_seen_keeps_the_row_and_the_writer_catches_up(main, db):
    main.group_put("course-1", body(version=5))
    # Another process's version 7 that this one has not heard of: written
    # with the triggers off, so no change is logged and nobody is notified.
    db.sql("SET session_replication_role = replica;"
           " UPDATE school_policy.groups SET version = 7, members = %s WHERE group_id = 'course-1'",
           ([ANNA],))
    main.group_put("course-1", body(version=6, members=(BEN,)))  # 6 > 5 for this process
    assert db.row("course-1") == (7, "active", [BERG], [ANNA])
    # the write told the store thread which row won: the index takes it
    wait_for(lambda: version_of(main, "course-1") == 7, "the writer catches up with version 7")
    assert roles(main.group_get("course-1")) == [(ANNA, "member"), (BERG, "moderator")]


def test_a_group_written_with_sql_reaches_every_process_and_is_marked(main, worker, db):
    db.sql("INSERT INTO school_policy.groups (group_id, school, kind, name, version, moderators,"
           " members) VALUES ('team-9', 'rs-ost', 'team', 'Robotik', 2, %s, %s)", ([BERG], [ANNA]))
    for engine in (main, worker):
        seen = wait_for(lambda: engine.group_get("team-9"), "the SQL write reaches the index")
        assert seen["version"] == 2 and seen["kind"] == "team"
        assert roles(seen) == [(ANNA, "member"), (BERG, "moderator")]
    # the trigger marked it for the reconciler, as the module's own writes are
    assert due_groups(main) == [("rs-ost", "group:team-9")]
    # moved to another school with SQL: both schools are marked
    for m in main.reconcile_due(FAR_FUTURE, 1000):
        main.reconcile_done(m["school"], m["user_id"], m["generation"])
    db.sql("UPDATE school_policy.groups SET school = 'gym-nord', version = 3 WHERE group_id = 'team-9'")
    assert due_groups(main) == [("gym-nord", "group:team-9"), ("rs-ost", "group:team-9")]
    wait_for(lambda: (worker.group_get("team-9") or {}).get("school") == "gym-nord",
             "the worker sees the new school")


def test_a_repeated_put_changes_no_row_and_notifies_nobody(main, db):
    main.group_put("course-1", body(version=3))
    changes = db.changes()
    again = main.group_put("course-1", body(version=3))
    assert again["ignored"] is True
    # without a version the engine writes it, and the unchanged row is left alone
    main.group_put("course-2", body())
    changes = db.changes()
    main.group_put("course-2", body())
    assert db.changes() == changes
    assert db.row("course-2") == (None, "active", [BERG], [ANNA, BEN])


def test_a_deleted_row_leaves_every_index(main, worker, db):
    main.group_put("course-1", body(version=1))
    main.group_put("course-2", body(version=1))
    wait_for(lambda: worker.group_get("course-2"), "the worker sees course-2")
    db.sql("DELETE FROM school_policy.groups WHERE group_id = 'course-1'")
    for engine in (main, worker):
        wait_for(lambda: engine.group_get("course-1") is None, "the deleted row leaves the index")
        assert engine.group_get("course-2")["version"] == 1
    db.sql("TRUNCATE school_policy.groups")
    for engine in (main, worker):
        wait_for(lambda: engine.group_get("course-2") is None, "a TRUNCATE empties the index")
        assert engine.groups_of(ANNA) == []


def test_member_ids_and_names_that_need_quoting_survive_every_path(config, main, worker, db):
    # printable ASCII localparts that PostgreSQL's array text form quotes
    odd = ['@a"b:school.test', "@c,d:school.test", "@e\\f:school.test", "@{g}:school.test",
           "@NULL:school.test", "@h\\\"i:school.test"]
    main.group_put("course-1", body(version=1, members=odd, name='Mathe\t7b "A" \\ {1,2}',
                                    topic="Zeile 1\nZeile 2 \u00e4\u00df"))
    assert sorted(db.row("course-1")[3]) == sorted(odd)
    # the worker reads the row with a query, a process that starts with COPY
    seen = wait_for(lambda: worker.group_get("course-1"), "the worker sees the group")
    assert sorted(m["user_id"] for m in seen["members"]) == sorted(odd + [BERG])
    assert seen["name"] == 'Mathe\t7b "A" \\ {1,2}' and seen["topic"] == "Zeile 1\nZeile 2 \u00e4\u00df"
    started = open_engine(config, "worker2")
    assert started.group_get("course-1") == seen
    assert started.store_status()["roster_skipped"] == 0


def test_a_batch_larger_than_one_pass_reaches_the_other_process(main, worker):
    n = 5000  # the store thread reads 2,000 changes a pass
    groups = [{"group": f"course-{i:05d}", "school": "gym-nord", "kind": "course",
               "name": f"Kurs {i}", "version": 1,
               "members": [{"user_id": BERG, "role": "moderator"},
                           {"user_id": f"@p{i}:school.test", "role": "member"}]}
              for i in range(n)]
    main.roster_upsert(json.dumps({"groups": groups}))
    wait_for(lambda: worker.group_get(f"course-{n - 1:05d}"), "the last group reaches the worker")
    assert len(worker.groups_of(BERG)) == n
    page = worker.groups_list("gym-nord", None, 1000)
    assert len(page["groups"]) == 1000 and page["next"] == "course-00999"


def test_a_group_written_while_a_process_reconnects_reaches_it(main, worker, db):
    main.group_put("course-1", body(version=1))
    wait_for(lambda: worker.group_get("course-1"), "the worker sees course-1")
    # Every connection of the module's processes is cut: their store threads
    # reconnect (a second later) and load every group again, so a change
    # made meanwhile, whose notification they missed, reaches them.
    db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
           " WHERE datname = current_database() AND application_name = 'synapse_school_policy'")
    main.group_put("course-1", body(version=2, members=(ANNA,)))  # the session reconnects
    wait_for(lambda: version_of(worker, "course-1") == 2, "the worker sees version 2")
    assert roles(worker.group_get("course-1")) == [(ANNA, "member"), (BERG, "moderator")]
    wait_for(lambda: worker.store_status()["connected"], "the worker is connected again")


def test_a_process_starts_from_its_groups_cache_while_the_database_is_away(config):
    engine = open_engine(config, "worker3")
    engine.group_put("course-1", body(version=3, topic="Thema", members=('@q"x,{y}:school.test',)))
    engine.group_put("team-2", body(kind="team", state="archived", archive_at_ms=1785542400000))
    del engine
    gc.collect()
    # the last full load (the open above) left data_dir/worker3.groups-cache;
    # the writes after it come again with the next load, not from the cache
    engine = open_engine(config, "worker3")
    expected = {s: engine.groups_list(s, None, 10) for s in ("gym-nord", "rs-ost")}
    assert [g["group"] for g in expected["gym-nord"]["groups"]] == ["course-1", "team-2"]
    del engine
    gc.collect()
    away = dict(config, database="host=127.0.0.1 port=1 dbname=x user=x")  # nothing listens there
    engine = open_engine(away, "worker3")
    assert engine.store_status()["connected"] is False
    # reads of the index go on (a group's room id needs the database)
    for school, page in expected.items():
        assert engine.groups_list(school, None, 10) == page, school
    assert engine.groups_of('@q"x,{y}:school.test') == ["course-1"]


def test_a_group_room_is_recorded_in_the_shared_ledger_and_survives_a_restart(config, db):
    engine = open_engine(config)
    engine.group_put("course-1", body(version=1))
    assert engine.reconcile_get_room("gym-nord", "group:course-1") is None
    engine.reconcile_set_room("gym-nord", "group:course-1", "!course:school.test")
    engine.reconcile_set_room("gym-nord", "teachers", "!teachers:school.test")
    other = open_engine(config, "worker1")  # another process reads the same ledger
    assert other.reconcile_get_room("gym-nord", "group:course-1") == "!course:school.test"
    assert other.group_get("course-1")["room_id"] == "!course:school.test"
    del engine, other
    gc.collect()
    engine = open_engine(config)
    assert engine.group_get("course-1")["room_id"] == "!course:school.test"
    # the group's room is not a special room of the school
    assert engine.reconcile_status()["schools"]["gym-nord"]["teachers_room"] == "!teachers:school.test"
    assert db.sql("SELECT kind, room_id FROM school_policy.special_rooms ORDER BY kind") == [
        ("group:course-1", "!course:school.test"), ("teachers", "!teachers:school.test")]


def test_the_command_lines_open_reads_the_groups_and_writes_no_cache(config, main):
    main.group_put("course-1", body(version=2))
    cli = _core.Engine(json.dumps(config), SERVER, "cli")
    cli.open(offline=True)
    assert cli.group_get("course-1")["version"] == 2
    data_dir = config["data_dir"]
    assert os.path.exists(os.path.join(data_dir, "main.groups-cache"))
    assert not os.path.exists(os.path.join(data_dir, "cli.groups-cache"))
