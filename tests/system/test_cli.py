"""The synapse-school-policy CLI, a client of the engine's offline open.

PostgreSQL store: roster import (CSV and JSON, 10,000 rows, idempotent,
seen by a running engine and a running Synapse through the engine's own
push), roster show, audit queries (recorded in the read log) and purge.
Beside a running Synapse, on either store. The embedded store beside a
running engine, without Synapse, is in tests/unit/test_cli.py."""
import json
import time

import pytest

from support import SERVER_NAME as SERVER
from support import deny_login, run_cli
from synapse_school_policy import _core

pytestmark = pytest.mark.integration


@pytest.fixture
def store(postgres, tmp_path):
    name = f"cli_{time.monotonic_ns()}"
    postgres.create_database(name)
    config = {
        "database": postgres.dsn(name),
        "data_dir": str(tmp_path / "store"),
        "schools": {"gym-nord": {"messenger": True}, "gs-sued": {"messenger": False}},
    }
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()  # creates the schema
    hs = tmp_path / "homeserver.yaml"
    hs.write_text(json.dumps({"server_name": SERVER,
                              "modules": [{"module": "synapse_school_policy.SchoolPolicy",
                                           "config": config}]}))
    yield engine, hs, tmp_path
    del engine


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_roster_import_of_10000_csv_rows_is_fast_idempotent_and_reaches_a_running_engine(store):
    engine, hs, tmp = store
    csv_path = tmp / "roster.csv"
    lines = ["user_id,school,role"] + [
        f"@pupil{i}:{SERVER},{'gym-nord' if i % 2 else 'gs-sued'},student" for i in range(10000)
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    res = run_cli(hs, "roster", "import", str(csv_path))
    elapsed = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert "imported 10000 users (10000 changed)" in res.stdout
    print(f"\nroster import of 10,000 CSV rows: {elapsed:.2f} s including interpreter start")
    assert elapsed < 10
    wait_until(lambda: engine.roster_size() == 10000)
    again = run_cli(hs, "roster", "import", str(csv_path))
    assert again.returncode == 0 and "(0 changed)" in again.stdout, again.stdout + again.stderr


def test_roster_import_json_and_show(store):
    engine, hs, tmp = store
    path = tmp / "roster.json"
    path.write_text(json.dumps({"users": [
        {"user_id": f"@anna:{SERVER}", "schools": [{"school": "gym-nord", "role": "teacher"},
                                                    {"school": "gs-sued", "role": "admin"}]},
    ]}))
    assert run_cli(hs, "roster", "import", str(path)).returncode == 0
    shown = run_cli(hs, "roster", "show", f"@anna:{SERVER}")
    assert json.loads(shown.stdout)["schools"] == [
        {"school": "gs-sued", "role": "admin"}, {"school": "gym-nord", "role": "teacher"}]
    wait_until(lambda: engine.roster_get(f"@anna:{SERVER}") is not None)
    missing = run_cli(hs, "roster", "show", f"@nobody:{SERVER}")
    assert missing.returncode == 1


def test_roster_import_names_the_bad_line(store):
    _, hs, tmp = store
    path = tmp / "bad.csv"
    path.write_text(f"@a:{SERVER},gym-nord,pupil\n")
    res = run_cli(hs, "roster", "import", str(path))
    assert res.returncode == 2
    assert "line 1.role: expected one of teacher, student, admin" in res.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (f"@a:{SERVER},gym\tnord,student\n", "line 1.school: contains a control character"),
        (f"@a:{SERVER},gym-nord,student\n@b:{SERVER},gym nord,student\n", "line 2.school: contains a space"),
        # A (user, school) pair on two lines is the engine's "listed twice",
        # whichever role each line gives: no line silently wins.
        (f"@a:{SERVER},gym-nord,student\n@c:{SERVER},gym-nord,student\n@a:{SERVER},gym-nord,teacher\n",
         "line 3.school: gym-nord is listed twice; give one role per school"),
        ("@eve:evil.example,gym-nord,student\n",
         f"line 1: user_id: @eve:evil.example is a user of another server; the roster holds users of {SERVER} only"),
        (f"@caf\u00e9:{SERVER},gym-nord,student\n", "line 1: user_id: expected a Matrix user id (@user:server)"),
        (json.dumps({"users": [{"user_id": f"@a:{SERVER}", "schools": []},
                               {"user_id": f"@b:{SERVER}", "schools": []},
                               {"user_id": f"@a:{SERVER}", "schools": []}]}),
         "users[2].user_id: duplicate of users[0]"),
        (json.dumps({"users": [{"user_id": f"@a:{SERVER}",
                                "schools": [{"school": "gym\u0000", "role": "student"}]}]}),
         "users[0].schools[0].school: contains a control character"),
        (json.dumps({"users": [{"user_id": f"@a\u0000:{SERVER}", "schools": []}]}),
         "users[0].user_id: contains a NUL character"),
    ],
)
def test_roster_import_applies_the_engines_rules_and_writes_nothing_on_error(store, content, message):
    engine, hs, tmp = store
    path = tmp / "bad.txt"
    path.write_text(content)
    res = run_cli(hs, "roster", "import", str(path))
    assert res.returncode == 2, res.stdout
    assert message in res.stderr
    shown = run_cli(hs, "roster", "show", f"@a:{SERVER}")
    assert shown.returncode == 1, "nothing was imported"


def test_roster_import_needs_the_server_name(store):
    _, hs, tmp = store
    config = json.loads(hs.read_text())
    del config["server_name"]
    hs.write_text(json.dumps(config))
    path = tmp / "ok.csv"
    path.write_text(f"@a:{SERVER},gym-nord,student\n")
    res = run_cli(hs, "roster", "import", str(path))
    assert res.returncode == 2 and "server_name: missing" in res.stderr


def test_audit_filters_json_and_table_output_and_purge(store):
    engine, hs, _ = store
    for actor in ("@x:school.test", "@y:school.test"):
        engine.decide(_core.CB_CHECK_LOGIN_FOR_SPAM, actor, None, None, None, None, None,
                      None, _core.FACT_NO, None, None, None, None)
    engine.audit_flush()
    res = run_cli(hs, "audit", "--since", "1h", "--rule", "not_on_roster", "--user", "@x:school.test", "--json")
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["actor"] for r in records] == ["@x:school.test"]
    assert records[0]["worker"] == "main" and records[0]["enforced"] is True
    table = run_cli(hs, "audit")
    assert "not_on_roster" in table.stdout and table.stdout.splitlines()[0].startswith("id")
    bad = run_cli(hs, "audit", "--rule", "nope")
    assert bad.returncode == 2 and '--rule: unknown rule id "nope"' in bad.stderr, bad.stderr
    kept = run_cli(hs, "audit", "purge", "--older-than", "1d")
    assert "deleted 0 audit records" in kept.stdout
    time.sleep(0.01)
    purged = run_cli(hs, "audit", "purge", "--older-than", "0s")
    assert "deleted 2 audit records" in purged.stdout, purged.stdout + purged.stderr
    assert engine.audit_purge(before_ms=int(time.time() * 1000)) == 0


def test_rows_written_by_hand_that_break_the_input_rules_are_skipped_at_load(store):
    """The roster table may hold rows from before the input rules, or from
    SQL: the engine still starts, leaves them out and counts them."""
    import psycopg2

    engine, hs, tmp = store
    config = json.loads(hs.read_text())["modules"][0]["config"]
    conn = psycopg2.connect(config["database"])
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO school_policy.roster (user_id, school, role) VALUES (%s, %s, %s)",
            [("@eve:evil.example", "gym-nord", "student"),
             (f"@ok:{SERVER}", "gym\nnord", "student"),
             (f"@ok:{SERVER}", "gs-sued", "teacher"),
             (f"@caf\u00e9:{SERVER}", "gym-nord", "student")],
        )
    conn.close()
    fresh = _core.Engine(json.dumps(dict(config, data_dir=str(tmp / "fresh"))), SERVER, "fresh")
    fresh.open()
    assert fresh.roster_get(f"@ok:{SERVER}")["schools"] == [{"school": "gs-sued", "role": "teacher"}]
    assert fresh.roster_get("@eve:evil.example") is None
    assert fresh.roster_get(f"@caf\u00e9:{SERVER}") is None
    assert fresh.roster_size() == 1
    assert fresh.store_status()["roster_skipped"] == 3
    del fresh


def test_audit_purge_older_than_removes_exactly_the_older_records(store):
    """--older-than is a duration back from now; the engine gets the point
    in time and deletes the records before it, no more, no less."""
    import psycopg2

    engine, hs, _ = store
    ages = {"@d10:school.test": "10 days", "@d2:school.test": "2 days",
            "@h23:school.test": "23 hours", "@now:school.test": "0 seconds"}
    deny_login(engine, *ages)
    conn = psycopg2.connect(json.loads(hs.read_text())["modules"][0]["config"]["database"])
    with conn, conn.cursor() as cur:
        for actor, age in ages.items():
            cur.execute("UPDATE school_policy.audit SET ts = now() - %s::interval WHERE actor = %s",
                        (age, actor))
    purged = run_cli(hs, "audit", "purge", "--older-than", "1d")
    assert purged.returncode == 0, purged.stderr
    assert "deleted 2 audit records older than 1d" in purged.stdout
    with conn.cursor() as cur:
        cur.execute("SELECT actor FROM school_policy.audit ORDER BY actor")
        assert [r[0] for r in cur.fetchall()] == ["@h23:school.test", "@now:school.test"]
    conn.close()


def test_cli_reads_of_the_audit_are_in_the_read_log(store):
    engine, hs, _ = store
    deny_login(engine, "@x:school.test")
    res = run_cli(hs, "audit", "--rule", "not_on_roster", "--json")
    assert res.returncode == 0, res.stderr
    reads = engine.audit_view(json.dumps(
        {"op": "reads", "reader": "@root:school.test", "server_admin": True, "query": {}}))
    cli_reads = [r for r in reads["body"]["records"] if r["worker"] == "cli"]
    assert len(cli_reads) == 1, reads
    assert cli_reads[0]["op"] == "audit" and cli_reads[0]["access"] == "operator"
    assert cli_reads[0]["reader"] == f"@school-policy:{SERVER}"
    assert cli_reads[0]["query"] == {"rule": "not_on_roster", "limit": 100}
    # A refused query reads nothing, so it is not in the log.
    assert run_cli(hs, "audit", "--rule", "nope").returncode == 2
    again = engine.audit_view(json.dumps(
        {"op": "reads", "reader": "@root:school.test", "server_admin": True, "query": {}}))
    assert len([r for r in again["body"]["records"] if r["worker"] == "cli" and r["op"] == "audit"]) == 1


def test_audit_limit_past_one_page_reads_page_by_page(store):
    engine, hs, _ = store
    deny_login(engine, *(f"@p{i}:school.test" for i in range(1005)))
    res = run_cli(hs, "audit", "--limit", "1003", "--json")
    assert res.returncode == 0, res.stderr
    ids = [json.loads(line)["id"] for line in res.stdout.splitlines()]
    assert len(ids) == 1003 and len(set(ids)) == 1003 and ids == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    "user_id, message",
    [
        ("@" + "a" * 250 + f":{SERVER}", "users[0].user_id: "),
        (f"@a b:{SERVER}", "users[0].user_id: "),
        (f"@a:{SERVER}:x", "users[0].user_id: "),
    ],
)
def test_a_user_id_the_engine_rejects_is_refused_naming_the_entry_not_skipped_at_load(
        store, user_id, message):
    """The CLI writes through the engine's POST /roster path: what the engine
    would skip at load never gets into the table."""
    engine, hs, tmp = store
    path = tmp / "bad.json"
    path.write_text(json.dumps({"users": [{"user_id": user_id, "schools": [
        {"school": "gym-nord", "role": "student"}]}]}))
    res = run_cli(hs, "roster", "import", str(path))
    assert res.returncode == 2, res.stdout
    assert f"{path}: {message}" in res.stderr, res.stderr
    config = json.loads(hs.read_text())["modules"][0]["config"]
    fresh = _core.Engine(json.dumps(dict(config, data_dir=str(tmp / "fresh"))), SERVER, "fresh")
    fresh.open()
    assert fresh.store_status()["roster_skipped"] == 0 and fresh.roster_size() == 0
    del fresh


def test_a_second_command_at_the_same_time_is_told_so(store):
    """The PostgreSQL store's files of worker "cli" in data_dir are locked
    while a command runs."""
    _, hs, _ = store
    config = json.loads(hs.read_text())["modules"][0]["config"]
    holder = _core.Engine(json.dumps(config), SERVER, "cli")
    holder.open(offline=True)
    res = run_cli(hs, "roster", "show", f"@a:{SERVER}")
    assert res.returncode == 2 and "another synapse-school-policy command is using the store" in res.stderr
    del holder


def test_an_unreachable_database_fails_the_command_instead_of_using_the_cache(store, tmp_path):
    _, hs, _ = store
    doc = json.loads(hs.read_text())
    doc["modules"][0]["config"]["database"] = "postgresql://nobody@127.0.0.1:1/none"
    hs.write_text(json.dumps(doc))
    res = run_cli(hs, "roster", "show", f"@a:{SERVER}")
    assert res.returncode == 2 and "database" in res.stderr, res.stderr


# ---- beside a running Synapse ------------------------------------------------

def test_import_while_synapse_runs_on_postgresql_is_seen_by_synapse(synapse_factory, postgres, tmp_path):
    from support import School, base_config, uid

    name = f"cli_live_{time.monotonic_ns()}"
    postgres.create_database(name)
    server = synapse_factory(base_config(tmp_path / "store", database=postgres.dsn(name)))
    world = School(server)
    world.register("sync")
    path = tmp_path / "roster.csv"
    path.write_text(f"{uid('anna')},gym-nord,teacher\n{uid('ben')},gs-sued,student\n")
    res = run_cli(server.config_path, "roster", "import", str(path))
    assert res.returncode == 0, res.stderr
    assert "imported 2 users (2 changed)" in res.stdout

    def seen():
        status, body = world.admin_api("GET", f"/users/{uid('anna')}")
        return status == 200 and body["schools"] == [{"school": "gym-nord", "role": "teacher"}]

    wait_until(seen, timeout=15)
    # and the other way round: what Synapse writes, the CLI shows
    world.put_roster("cleo", {"school": "gs-sued", "role": "admin"})
    shown = run_cli(server.config_path, "roster", "show", uid("cleo"))
    assert shown.returncode == 0 and json.loads(shown.stdout)["schools"] == [
        {"school": "gs-sued", "role": "admin"}]


def test_reads_beside_a_running_synapse_on_the_embedded_store(synapse_factory, tmp_path):
    """Synapse holds data_dir; the CLI reads it and Synapse goes on writing
    where it left off."""
    from support import School, base_config, uid

    server = synapse_factory(base_config(tmp_path / "store"))
    world = School(server)
    world.register("sync")
    world.put_roster("anna", {"school": "gym-nord", "role": "teacher"})
    shown = run_cli(server.config_path, "roster", "show", uid("anna"))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["schools"] == [{"school": "gym-nord", "role": "teacher"}]
    audit = run_cli(server.config_path, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    path = tmp_path / "r.csv"
    path.write_text(f"{uid('ben')},gym-nord,student\n")
    refused = run_cli(server.config_path, "roster", "import", str(path))
    assert refused.returncode == 2 and "POST the users to its admin API" in refused.stderr
    world.put_roster("ben", {"school": "gs-sued", "role": "student"})
    assert world.admin_api("GET", f"/users/{uid('ben')}")[0] == 200
    status, body = world.admin_api("GET", "/audit/reads")
    assert status == 200, body
    assert any(r["worker"] == "cli" and r["op"] == "audit" for r in body["records"]), body
    again = run_cli(server.config_path, "roster", "show", uid("ben"))
    assert json.loads(again.stdout)["schools"] == [{"school": "gs-sued", "role": "student"}]
