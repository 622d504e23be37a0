"""The synapse-school-policy CLI on the embedded store, beside a running
engine (no Synapse, no PostgreSQL): reads leave the store's files alone;
the writing commands refuse. The PostgreSQL store and the commands beside a
running Synapse are in tests/system/test_cli.py."""
import json

import pytest

from support import SERVER_NAME as SERVER
from support import deny_login, run_cli
from synapse_school_policy import _core


@pytest.fixture
def embedded(tmp_path):
    """An engine on the embedded store, open as Synapse holds it while it runs."""
    config = {"data_dir": str(tmp_path / "store"),
              "schools": {"gym-nord": {"messenger": True}, "gs-sued": {"messenger": False}}}
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    hs = tmp_path / "homeserver.yaml"
    hs.write_text(json.dumps({"server_name": SERVER,
                              "modules": [{"module": "synapse_school_policy.SchoolPolicy",
                                           "config": config}]}))
    yield engine, hs, tmp_path
    del engine


def _store_files(data_dir):
    return {p.name: p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file()}


def test_embedded_store_reads_beside_a_running_engine_change_none_of_its_files(embedded):
    engine, hs, tmp = embedded
    data_dir = tmp / "store"
    engine.roster_put(f"@anna:{SERVER}", json.dumps({"schools": [
        {"school": "gym-nord", "role": "teacher"}, {"school": "gs-sued", "role": "admin"}]}))
    deny_login(engine, "@x:school.test", "@y:school.test")
    # A line Synapse is in the middle of appending: not whole, so not read,
    # and left exactly where it is.
    with open(data_dir / "roster.jsonl", "ab") as f:
        f.write(b'{"user_id": "@half')
    before = _store_files(data_dir)

    shown = run_cli(hs, "roster", "show", f"@anna:{SERVER}")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["schools"] == [
        {"school": "gs-sued", "role": "admin"}, {"school": "gym-nord", "role": "teacher"}]
    res = run_cli(hs, "audit", "--user", "@x:school.test", "--json")
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["actor"] for line in res.stdout.splitlines()] == ["@x:school.test"]
    assert run_cli(hs, "status", "--json").returncode == 0

    after = _store_files(data_dir)
    reads = after.pop("audit-reads.jsonl")
    assert after == before, "the store's files are as the running engine left them"
    record = json.loads(reads.splitlines()[-1])
    assert (record["worker"], record["op"], record["access"]) == ("cli", "audit", "operator")
    assert record["query"] == {"user": "@x:school.test", "limit": 100}
    # the running engine still appends where it left off
    (data_dir / "roster.jsonl").write_bytes(before["roster.jsonl"][: -len(b'{"user_id": "@half')])
    engine.roster_put(f"@ben:{SERVER}", json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    assert run_cli(hs, "roster", "show", f"@ben:{SERVER}").returncode == 0


def test_embedded_store_writing_commands_refuse_with_the_reason(embedded):
    engine, hs, tmp = embedded
    path = tmp / "ok.csv"
    path.write_text(f"@a:{SERVER},gym-nord,student\n")
    res = run_cli(hs, "roster", "import", str(path))
    assert res.returncode == 2 and "admin API" in res.stderr, res.stderr
    assert engine.roster_get(f"@a:{SERVER}") is None
    purge = run_cli(hs, "audit", "purge", "--older-than", "1d")
    assert purge.returncode == 2 and "audit purge needs the PostgreSQL store" in purge.stderr


def test_an_offline_engine_on_the_embedded_store_refuses_roster_writes(embedded):
    _, hs, tmp = embedded
    config = json.loads(hs.read_text())["modules"][0]["config"]
    offline = _core.Engine(json.dumps(config), SERVER, "cli")
    offline.open(offline=True)
    with pytest.raises(_core.StoreError):
        offline.roster_put(f"@a:{SERVER}", json.dumps({"schools": []}))
    del offline


def test_audit_kind_shows_denials_or_the_modules_actions_with_their_fields(embedded):
    engine, hs, _tmp = embedded
    deny_login(engine, "@x:school.test")
    action_id = engine.audit_action({"action": "member_removed", "target": "@x:school.test",
                                     "group": "course-1", "reason": "not listed in version 2"})
    assert engine.wait_durable(action_id, 5000)
    actions = run_cli(hs, "audit", "--kind", "action", "--json")
    assert actions.returncode == 0, actions.stderr
    assert [json.loads(line)["action"] for line in actions.stdout.splitlines()] == ["member_removed"]
    denials = run_cli(hs, "audit", "--kind", "denial", "--json")
    assert [json.loads(line)["kind"] for line in denials.stdout.splitlines()] == ["denial"]
    table = run_cli(hs, "audit")
    header, action_row, denial_row = table.stdout.splitlines()
    assert header.split()[:5] == ["id", "time", "kind", "rule/action", "count"]
    assert "member_removed" in action_row and "course-1" in action_row and "not listed" in action_row
    assert "not_on_roster" in denial_row
    bad = run_cli(hs, "audit", "--kind", "actions")
    assert bad.returncode == 2 and "--kind" in bad.stderr


def test_groups_show_beside_a_running_engine_and_groups_import_refused_on_the_embedded_store(embedded):
    engine, hs, tmp = embedded
    engine.roster_put(f"@anna:{SERVER}", json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    engine.group_put("course-1", json.dumps({
        "school": "gym-nord", "kind": "course", "name": "Mathe 7b",
        "members": [{"user_id": f"@anna:{SERVER}", "role": "member"},
                    {"user_id": f"@otto:{SERVER}", "role": "member"}]}))
    shown = run_cli(hs, "groups", "show", "course-1")
    assert shown.returncode == 0, shown.stderr
    group = json.loads(shown.stdout)
    assert group["name"] == "Mathe 7b" and group["room_id"] is None
    by_user = {m["user_id"]: m for m in group["members"]}
    assert by_user[f"@anna:{SERVER}"]["should_be_in_room"] is True
    assert by_user[f"@otto:{SERVER}"] == {"user_id": f"@otto:{SERVER}", "role": "member",
                                          "should_be_in_room": False, "why": "not on the roster"}
    unknown = run_cli(hs, "groups", "show", "course-x")
    assert unknown.returncode == 1 and "group course-x is unknown" in unknown.stderr
    status = json.loads(run_cli(hs, "status", "--json").stdout)
    assert status["schools"]["gym-nord"]["groups"] == {"count": 1, "rooms_pending": 1}
    body = tmp / "groups.json"
    body.write_text(json.dumps({"groups": [{"group": "course-2", "school": "gym-nord", "kind": "course",
                                            "name": "Bio", "members": []}]}))
    refused = run_cli(hs, "groups", "import", str(body))
    assert refused.returncode == 2 and refused.stderr.startswith("synapse-school-policy: ")
    assert engine.group_get("course-2") is None
    body.write_text(json.dumps({"groups": [{"group": "course-2", "school": "gym-nord", "kind": "lesson",
                                            "name": "Bio", "members": []}]}))
    bad = run_cli(hs, "groups", "import", str(body))
    assert bad.returncode == 2 and f"{body}: groups[0].kind" in bad.stderr, bad.stderr
