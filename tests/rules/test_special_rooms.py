"""Rules 4-6 on a real Synapse: the teachers' room and the announcement room,
kept in line with the roster by the two-stage reconciler.

One school of 1 admin, 3 teachers and 20 pupils is imported through the
admin API; everything after that is the module's own doing, observed the way
a client (or a server admin) sees it."""
import json
import os
import subprocess
import sys
import uuid

import pytest

from harness.client import CS, q, request, wait_for
from support import (
    School,
    assert_audited,
    assert_denied,
    base_config,
    direct_chat_request,
    members,
    membership,
    uid,
)

pytestmark = pytest.mark.integration

OWNER = uid("school-policy")
STAFF = ["admin1", "teacher1", "teacher2", "teacher3"]
PUPILS = [f"pupil{i:02d}" for i in range(1, 21)]
TEACHERS_ROOM_NAME = "Teachers' room (gym-nord)"
ANNOUNCEMENT_ROOM_NAME = "Announcements (gym-nord)"


def school_config(store_dir, announcement_room=False, rate=200, **overrides):
    config = base_config(store_dir, **overrides)
    config["schools"]["gym-nord"]["announcement_room"] = announcement_room
    config["reconciler"] = {"actions_per_second": rate}
    return config


def roster_body():
    users = [{"user_id": uid("admin1"), "schools": [membership("gym-nord", "admin")]}]
    users += [{"user_id": uid(t), "schools": [membership("gym-nord", "teacher")]} for t in STAFF[1:]]
    users += [{"user_id": uid(p), "schools": [membership("gym-nord", "student")]} for p in PUPILS]
    return {"users": users}


def populate(world: School):
    world.register("sync")
    world.register("root", admin=True)
    for name in STAFF + PUPILS:
        world.register(name)
    status, body = world.admin_api("POST", "/roster", roster_body())
    assert status == 200 and body == {"upserted": 24, "groups": 0}, body


def school_status(world: School) -> dict:
    status, body = world.admin_api("GET", "/status")
    assert status == 200, body
    return body["schools"]["gym-nord"]


def wait_reconciled(world: School, timeout=90) -> dict:
    """Waits until nothing is pending for gym-nord; returns its status."""
    def check():
        status = school_status(world)
        return status if status["pending"] == 0 and status["teachers_room"] else None

    return wait_for(check, timeout=timeout, what="the reconciler to finish gym-nord")


def rooms_named(world: School, name: str) -> list[str]:
    status, body = request(
        world.server.base_url, "GET", "/_synapse/admin/v1/rooms",
        token=world.users["root"].token, query={"search_term": name, "limit": "100"},
    )
    assert status == 200, body
    return [room["room_id"] for room in body["rooms"] if room["name"] == name]


def wait_members(world: School, room_id: str, expected: set[str], timeout=60):
    return wait_for(lambda: members(world, room_id) == expected or None, timeout=timeout,
                    what=f"members of {room_id} to be {sorted(expected)}")


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    world = School(module_synapse_factory(school_config(tmp_path_factory.mktemp("policy") / "store")))
    populate(world)
    world.status = wait_reconciled(world)
    return world


def test_teachers_room_holds_exactly_the_staff_and_no_announcement_room_exists(school):
    status = school.status
    assert status["messenger"] is True and status["last_error"] is None
    assert status["announcement_room"] is None
    room_id = status["teachers_room"]
    wait_members(school, room_id, {uid(n) for n in STAFF} | {OWNER})
    assert rooms_named(school, TEACHERS_ROOM_NAME) == [room_id]
    assert rooms_named(school, ANNOUNCEMENT_ROOM_NAME) == []
    # Two-way and managed: the staff talk there.
    assert school.users["teacher2"].send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Konferenz"})[0] == 200
    policy = school.users["teacher1"].get_state(room_id, "org.synapse_school_policy.room")[1]
    assert policy == {"school": "gym-nord", "kind": "teachers", "two_way": True}


def test_pupil_cannot_be_invited_to_the_teachers_room(school):
    room_id = school.status["teachers_room"]
    assert_denied(school.users["teacher1"].invite(room_id, uid("pupil01")), "staff_only")
    record = assert_audited(school, "staff_only", uid("teacher1"), callback="user_may_invite", target=uid("pupil01"))
    assert record["school"] == "gym-nord" and record["room_id"] == room_id


def test_pupil_cannot_join_the_teachers_room_even_when_invited(school):
    room_id = school.status["teachers_room"]
    root = school.users["root"]
    assert_denied(school.users["pupil02"].join(room_id), "join_forbidden")
    assert_audited(school, "join_forbidden", uid("pupil02"), callback="user_may_join_room", room_id=room_id)
    # A server admin is exempt from the rules, so they can get a pupil an
    # invite; the pupil still cannot join.
    status, body = request(
        school.server.base_url, "POST", f"/_synapse/admin/v1/rooms/{q(room_id)}/make_room_admin",
        body={"user_id": root.user_id}, token=root.token,
    )
    assert status == 200, body
    assert root.join(room_id)[0] == 200
    assert root.invite(room_id, uid("pupil02"))[0] == 200
    assert_denied(school.users["pupil02"].join(room_id), "staff_only")
    record = assert_audited(school, "staff_only", uid("pupil02"), callback="user_may_join_room")
    assert record["room_id"] == room_id and record["school"] == "gym-nord"
    assert uid("pupil02") not in members(school, room_id)
    # The root admin is not on the roster: the next sweep would not touch
    # them (only roster marks do); leave so the member checks stay exact.
    assert root.leave(room_id)[0] == 200


def test_pupils_do_not_reach_pupils_they_share_no_course_with_while_announcements_are_off(school):
    assert_denied(direct_chat_request(school.users["pupil03"], uid("pupil04")), "no_shared_room")
    assert_audited(school, "no_shared_room", uid("pupil03"), target=uid("pupil04"))


def test_cli_status_matches_the_admin_api(school):
    venv_bin = os.path.dirname(sys.executable)
    result = subprocess.run(
        [os.path.join(venv_bin, "synapse-school-policy"), "--config", school.server.config_path, "status", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status, body = school.admin_api("GET", "/status")
    assert json.loads(result.stdout) == body
    table = subprocess.run(
        [os.path.join(venv_bin, "synapse-school-policy"), "--config", school.server.config_path, "status"],
        capture_output=True, text=True, timeout=60,
    )
    assert table.returncode == 0 and school.status["teachers_room"] in table.stdout, table


def test_removing_a_teacher_from_the_roster_removes_them_from_the_teachers_room(school):
    room_id = school.status["teachers_room"]
    status, _ = school.admin_api("DELETE", f"/users/{uid('teacher3')}")
    assert status == 200
    wait_members(school, room_id, {uid(n) for n in ("admin1", "teacher1", "teacher2")} | {OWNER})
    # Back on the roster: back in the room.
    school.put_roster("teacher3", membership("gym-nord", "teacher"))
    wait_members(school, room_id, {uid(n) for n in STAFF} | {OWNER})


def test_announcement_room_on_then_off_across_restarts(school, tmp_path):
    everyone = {uid(n) for n in STAFF + PUPILS} | {OWNER}
    store_dir = school.server.module_config["data_dir"]

    school.server.restart(school_config(store_dir, announcement_room=True))
    status = wait_for(lambda: (s := school_status(school))["pending"] == 0 and s["announcement_room"] and s,
                      timeout=90, what="the announcement room")
    room_id = status["announcement_room"]
    wait_members(school, room_id, everyone)
    assert rooms_named(school, ANNOUNCEMENT_ROOM_NAME) == [room_id]
    # Only staff post; the composer follows (events_default is the moderator level).
    assert school.users["teacher1"].send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Hitzefrei!"})[0] == 200
    assert_denied(school.users["pupil05"].send(room_id, "m.room.message", {"msgtype": "m.text", "body": "yay"}), "one_way")
    # The schoolyard: pupils who share no course now reach each other.
    status_code, body = direct_chat_request(school.users["pupil03"], uid("pupil04"))
    assert status_code == 200, body
    assert school.users["pupil04"].join(body["room_id"])[0] == 200

    school.server.restart(school_config(store_dir, announcement_room=False))
    # Reachability through it ends at once, before the room is emptied.
    assert_denied(direct_chat_request(school.users["pupil03"], uid("pupil06")), "no_shared_room")
    wait_members(school, room_id, {OWNER}, timeout=90)
    assert school_status(school)["announcement_room"] == room_id  # kept, empty, for next time
    assert_denied(direct_chat_request(school.users["pupil03"], uid("pupil04")), "no_shared_room")


def test_killed_in_the_middle_of_a_reconciliation_it_completes_without_duplicates(synapse_factory, postgres, tmp_path):
    # On the PostgreSQL store, so that the shared ledger is covered too.
    db = f"policy_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    config = school_config(tmp_path / "store", announcement_room=True, rate=10, database=postgres.dsn(db))
    world = School(synapse_factory(config))
    populate(world)
    # Wait until the reconciler is well under way, then crash.
    def half_way():
        room_id = school_status(world)["announcement_room"]
        return room_id is not None and 6 <= len(members(world, room_id)) <= 15

    wait_for(half_way, timeout=90, interval=0.05, what="the reconciler to be half-way")
    assert school_status(world)["pending"] > 0
    world.server.kill()
    world.server.start()
    status = wait_reconciled(world, timeout=120)
    assert status["last_error"] is None
    everyone = {uid(n) for n in STAFF + PUPILS} | {OWNER}
    wait_members(world, status["announcement_room"], everyone)
    wait_members(world, status["teachers_room"], {uid(n) for n in STAFF} | {OWNER})
    assert rooms_named(world, TEACHERS_ROOM_NAME) == [status["teachers_room"]]
    assert rooms_named(world, ANNOUNCEMENT_ROOM_NAME) == [status["announcement_room"]]
    # No user was joined twice: one join event each in the room's history.
    joins = count_joins(world, status["announcement_room"])
    assert all(n == 1 for n in joins.values()), joins
    assert set(joins) == everyone


def count_joins(world: School, room_id: str) -> dict[str, int]:
    status, body = request(
        world.server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/messages",
        token=world.users["root"].token,
        query={"dir": "f", "limit": "1000", "filter": json.dumps({"types": ["m.room.member"]})},
    )
    assert status == 200, body
    joins: dict[str, int] = {}
    for event in body["chunk"]:
        if event["type"] == "m.room.member" and event["content"].get("membership") == "join":
            joins[event["state_key"]] = joins.get(event["state_key"], 0) + 1
    return joins


def test_a_user_registered_after_the_roster_entry_is_joined_on_registration(synapse_factory, tmp_path):
    world = School(synapse_factory(school_config(tmp_path / "store")))
    world.register("sync")
    world.register("root", admin=True)
    world.register("teacher1")
    world.put_roster("teacher1", membership("gym-nord", "teacher"))
    world.put_roster("latecomer", membership("gym-nord", "teacher"))
    status = wait_reconciled(world)
    wait_members(world, status["teachers_room"], {uid("teacher1"), OWNER})
    world.register("latecomer")
    wait_members(world, status["teachers_room"], {uid("teacher1"), uid("latecomer"), OWNER})
