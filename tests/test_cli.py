"""The synapse-school-policy CLI on the PostgreSQL store: roster import
(CSV and JSON, 10,000 rows, idempotent, seen by a running engine through
NOTIFY), roster show, audit queries and purge."""
import json
import subprocess
import sys
import time

import pytest

from synapse_school_policy import _core

pytestmark = pytest.mark.integration

SERVER = "school.test"


def run_cli(config_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "synapse_school_policy.cli", "--config", str(config_path), *args],
        capture_output=True, text=True, timeout=120,
    )


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
    assert "imported 10000 users (10000 rows changed)" in res.stdout
    print(f"\nroster import of 10,000 CSV rows: {elapsed:.2f} s including interpreter start")
    assert elapsed < 10
    wait_until(lambda: engine.roster_size() == 10000)
    again = run_cli(hs, "roster", "import", str(csv_path))
    assert again.returncode == 0 and "(0 rows changed)" in again.stdout, again.stdout + again.stderr


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
    assert run_cli(hs, "audit", "--rule", "nope").returncode == 2
    kept = run_cli(hs, "audit", "purge", "--older-than", "1d")
    assert "deleted 0 audit records" in kept.stdout
    time.sleep(0.01)
    purged = run_cli(hs, "audit", "purge", "--older-than", "0s")
    assert "deleted 2 audit records" in purged.stdout, purged.stdout + purged.stderr
    assert engine.audit_purge(int(time.time() * 1000)) == 0


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
