"""The binding's group methods (csrc/py/engine_groups.c) on the embedded
store: put and the version rule, get, delete, list, a user's groups, the
plan, the {"users", "groups"} batch, and the groups after a restart. No
Synapse needed."""
import json
import sys

import pytest

from synapse_school_policy import _core

SERVER = "school.test"
BERG = "@berg:school.test"
ALI = "@ali:school.test"
CEM = "@cem:school.test"


def _config(tmp_path):
    return json.dumps({
        "data_dir": str(tmp_path / "store"),
        "service_users": ["@sync:school.test"],
        "moderator_level": 60,
        "groups": {"encrypted": True, "archive_retention_days": 10},
        "schools": {"gym-nord": {"messenger": True}, "gs-sued": {}},
    })


def _open(tmp_path):
    engine = _core.Engine(_config(tmp_path), SERVER, "main")
    engine.open()
    return engine


@pytest.fixture
def engine(tmp_path):
    engine = _open(tmp_path)
    counts = engine.roster_upsert(json.dumps({"users": [
        {"user_id": BERG, "schools": [{"school": "gym-nord", "role": "teacher"}]},
        {"user_id": ALI, "schools": [{"school": "gym-nord", "role": "student"}]},
        {"user_id": CEM, "schools": [{"school": "gs-sued", "role": "student"}]},
    ]}))
    assert counts == {"upserted": 3, "groups": 0}
    return engine


def course(version=None, **fields):
    body = {"school": "gym-nord", "kind": "course", "name": "Mathe 7b",
            "members": [{"user_id": BERG, "role": "moderator"},
                        {"user_id": ALI, "role": "member"},
                        {"user_id": CEM, "role": "member"}]}
    if version is not None:
        body["version"] = version
    body.update(fields)
    return json.dumps(body)


def test_group_put_returns_the_stored_group_and_get_adds_its_room(engine):
    stored = engine.group_put("course-1", course(3, topic="Bruchrechnung"))
    assert stored["group"] == "course-1" and stored["version"] == 3
    assert "ignored" not in stored
    assert [m["user_id"] for m in stored["members"]] == sorted([BERG, ALI, CEM])
    got = engine.group_get("course-1")
    assert got["room_id"] is None and got["topic"] == "Bruchrechnung"
    engine.reconcile_set_room("gym-nord", "group:course-1", "!room:school.test")
    assert engine.group_get("course-1")["room_id"] == "!room:school.test"
    assert engine.group_get("course-2") is None


def test_snapshot_not_newer_than_the_stored_one_is_ignored(engine):
    engine.group_put("course-1", course(5, name="Neu"))
    answer = engine.group_put("course-1", course(4, name="Alt"))
    assert answer["ignored"] is True
    assert answer["name"] == "Neu" and answer["version"] == 5
    assert engine.group_put("course-1", course(5, name="Gleich"))["ignored"] is True
    assert engine.group_put("course-1", course(6, name="Neuer"))["name"] == "Neuer"


def test_bad_group_is_refused_naming_the_key_path(engine):
    with pytest.raises(_core.InputError, match=r"^members\[0\]\.role: expected moderator or member$"):
        engine.group_put("g", json.dumps({"school": "gym-nord", "kind": "team", "name": "T",
                                          "members": [{"user_id": ALI, "role": "boss"}]}))
    with pytest.raises(_core.InputError, match=r"^school: nowhere is not a school of the config"):
        engine.group_put("g", course(school="nowhere"))
    with pytest.raises(_core.InputError, match=r"^group: does not match the group g of the path"):
        engine.group_put("g", course(group="h"))
    with pytest.raises(_core.JsonSyntaxError):
        engine.group_put("g", b"{")
    assert engine.groups_list("gym-nord") == {"groups": [], "next": None}


def test_batch_takes_users_and_groups_and_names_the_bad_groups_path(engine):
    good = json.loads(course(1))
    good["group"] = "course-1"
    bad = dict(good, group="course-2", members=[{"user_id": ALI, "role": "member"}] * 2)
    counts = engine.roster_upsert(json.dumps({"groups": [good]}))
    assert counts == {"upserted": 0, "groups": 1}
    assert engine.roster_upsert(json.dumps({"groups": [good]})) == {"upserted": 0, "groups": 0}
    with pytest.raises(_core.InputError,
                       match=r"^groups\[1\]\.members\[1\]\.user_id: @ali:school\.test is listed twice"):
        engine.roster_upsert(json.dumps({"users": [], "groups": [good, bad]}))
    with pytest.raises(_core.InputError, match=r"^body: expected a users list, a groups list or both$"):
        engine.roster_upsert("{}")


def test_delete_keeps_the_group_as_deleted_so_a_late_message_cannot_revive_it(engine):
    engine.group_put("course-1", course(8))
    assert engine.group_delete("course-1") is True
    got = engine.group_get("course-1")
    assert got["state"] == "deleted" and got["version"] == 9
    assert engine.group_put("course-1", course(9))["ignored"] is True
    assert engine.group_delete("never-was") is False


def test_groups_list_pages_by_group_id(engine):
    for gid in ["d", "b", "a", "c"]:
        engine.group_put(gid, course(1))
    page = engine.groups_list("gym-nord", None, 3)
    assert [g["group"] for g in page["groups"]] == ["a", "b", "c"] and page["next"] == "c"
    page = engine.groups_list("gym-nord", from_=page["next"], limit=3)
    assert [g["group"] for g in page["groups"]] == ["d"] and page["next"] is None
    assert engine.groups_list("gs-sued") == {"groups": [], "next": None}
    with pytest.raises(_core.InputError, match="limit"):
        engine.groups_list("gym-nord", limit=0)


def test_groups_of_a_user_lists_every_group_naming_them(engine):
    engine.group_put("b", course(1))
    engine.group_put("a", course(1, members=[{"user_id": ALI, "role": "member"}]))
    assert engine.groups_of(ALI) == ["a", "b"]
    assert engine.groups_of(BERG) == ["b"]
    assert engine.groups_of("@nobody:school.test") == []


def test_plan_admits_opted_in_members_and_says_why_not_for_the_others(engine):
    engine.group_put("course-1", course(1, two_way=True))
    plan = engine.group_plan("course-1")
    assert plan["policy"] == {"school": "gym-nord", "kind": "course", "two_way": True,
                              "group": "course-1"}
    assert plan["state"] == "active" and plan["remove_members_now"] is False
    assert plan["encrypted"] is True
    members = {m["user_id"]: m for m in plan["members"]}
    assert members[BERG] == {"user_id": BERG, "role": "moderator", "member": True,
                             "power_level": 60, "why": None}
    assert members[ALI]["member"] is True and members[ALI]["power_level"] is None
    assert members[CEM]["member"] is False
    assert members[CEM]["why"] == "no school of theirs has opted in"
    assert engine.group_plan("nothing") is None


def test_plan_empties_the_room_after_the_archive_retention(engine):
    day = 86_400_000
    engine.group_put("course-1", course(1, archive_at_ms=1_000))
    assert engine.group_plan("course-1", now_ms=1_000 + 9 * day)["remove_members_now"] is False
    plan = engine.group_plan("course-1", now_ms=1_000 + 10 * day)
    assert plan["state"] == "archived" and plan["remove_members_now"] is True


def test_group_write_marks_the_groups_room_for_the_reconciler(engine):
    engine.group_put("course-1", course(1))
    due = engine.reconcile_due(2**53, 100)
    mark = next(m for m in due if m["user_id"] == "group:course-1")
    assert mark["school"] == "gym-nord"
    engine.reconcile_done("gym-nord", "group:course-1", mark["generation"])
    assert all(m["user_id"] != "group:course-1" for m in engine.reconcile_due(2**53, 100))


def test_groups_are_the_same_after_a_restart_and_stale_versions_stay_ignored(tmp_path):
    engine = _open(tmp_path)
    engine.group_put("course-1", course(7))
    engine.group_put("team-1", course(1, kind="team"))
    engine.group_delete("team-1")
    before = [engine.group_get("course-1"), engine.group_get("team-1")]
    del engine
    engine = _open(tmp_path)
    assert [engine.group_get("course-1"), engine.group_get("team-1")] == before
    assert engine.group_put("course-1", course(7))["ignored"] is True
    assert engine.group_put("team-1", course(2, kind="team"))["ignored"] is True


def test_group_methods_leak_no_references(engine):
    body = course(1)
    engine.group_put("course-1", body)
    before = sys.getrefcount(body)
    for _ in range(1000):
        engine.group_put("course-1", body)
        engine.group_get("course-1")
        engine.group_plan("course-1")
        engine.groups_of(ALI)
        engine.groups_list("gym-nord")
    assert sys.getrefcount(body) == before
