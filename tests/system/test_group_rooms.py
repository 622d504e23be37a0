"""Group rooms on a real Synapse, on both stores: the module creates each
course's and team's room from the school cloud's snapshot and keeps it in
line (members, moderators, removal, archive, delete), adopts an older
sync's room, and records every action in the audit.

One Synapse per store serves the file; each test uses its own groups.
Everything is observed as a client or a server admin sees it."""
from __future__ import annotations

import time
import uuid

import pytest

from harness.client import q, request, wait_for
from support import (
    POLICY_EVENT_TYPE,
    TEXT,
    School,
    assert_denied,
    base_config,
    members,
    membership,
    uid,
)

pytestmark = pytest.mark.integration

OWNER = uid("school-policy")
MODERATOR_LEVEL = 50
TEACHERS = ["berg", "klein"]
PUPILS = [f"p{i}" for i in range(1, 9)]
# sven: a pupil of gs-sued (opted in); otto: of rs-west (not opted in).
OTHERS = ["sven", "otto", "sadmin"]


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def school(request, module_synapse_factory, postgres, tmp_path_factory):
    overrides = {}
    if request.param == "postgres":
        dbname = f"school_policy_groups_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        overrides["database"] = postgres.dsn(dbname)
    config = base_config(tmp_path_factory.mktemp("groups") / "store", **overrides)
    config["schools"] = {"gym-nord": {"messenger": True, "teachers_room": False},
                         "gs-sued": {"messenger": True, "teachers_room": False},
                         "rs-west": {"messenger": False, "teachers_room": False}}
    config["reconciler"] = {"actions_per_second": 500}
    world = School(module_synapse_factory(config))
    world.register("sync")
    world.register("root", admin=True)
    for name in TEACHERS + PUPILS + OTHERS:
        world.register(name)
    users = [{"user_id": uid(t), "schools": [membership("gym-nord", "teacher")]} for t in TEACHERS]
    users += [{"user_id": uid(p), "schools": [membership("gym-nord", "student")]} for p in PUPILS]
    users += [{"user_id": uid("sven"), "schools": [membership("gs-sued", "student")]},
              {"user_id": uid("otto"), "schools": [membership("rs-west", "student")]},
              {"user_id": uid("sadmin"), "schools": [membership("gym-nord", "admin")]}]
    status, body = world.admin_api("POST", "/roster", {"users": users})
    assert status == 200 and body["upserted"] == len(users), body
    world.store = request.param
    return world


def course(group, name, members_, version=1, **fields):
    return {"school": "gym-nord", "kind": "course", "name": name, "version": version,
            "members": [{"user_id": uid(u), "role": role} for u, role in members_], **fields}


def put_group(world, group, body):
    status, answer = world.admin_api("PUT", f"/groups/{group}", body)
    assert status == 200, answer
    return answer


def get_group(world, group, as_user=None):
    status, body = world.admin_api("GET", f"/groups/{group}", as_user=as_user)
    assert status == 200, body
    return body


def wait_room(world, group, expected: set[str], timeout=60) -> str:
    """Waits until nothing is pending and the group has a room whose joined
    members are `expected` (plus the owner); returns the room id."""
    def check():
        # The group's mark done (power levels come after the memberships).
        status, body = world.admin_api("GET", "/status")
        if status != 200 or body["schools"]["gym-nord"]["pending"]:
            return None
        room_id = get_group(world, group).get("room_id")
        return room_id if room_id and members(world, room_id) == expected | {OWNER} else None

    return wait_for(check, timeout=timeout, what=f"the room of {group} to hold {sorted(expected)}")


def state(world, room_id, event_type, state_key=""):
    status, body = request(world.server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/state",
                           token=world.users["root"].token)
    assert status == 200, body
    for event in body["state"]:
        if event["type"] == event_type and event["state_key"] == state_key:
            return event["content"]
    return None


def membership_of(world, room_id, user):
    content = state(world, room_id, "m.room.member", uid(user))
    return content and content["membership"]


def actions(world, group, **query):
    records = world.audit(kind="action", school="gym-nord", limit=1000, **query)
    return [r for r in records if r["group"] == group]


def test_a_course_gets_its_room_with_the_policy_event_members_and_moderators(school):
    group = "course-mathe-7b"
    put_group(school, group, course(group, "Mathe 7b", [("berg", "moderator"), ("p1", "member"), ("p2", "member")],
                                    topic="Mathematik, Frau Berg"))
    room_id = wait_room(school, group, {uid("berg"), uid("p1"), uid("p2")})
    assert state(school, room_id, POLICY_EVENT_TYPE) == {"school": "gym-nord", "kind": "course",
                                                          "two_way": False, "group": group}
    assert state(school, room_id, "m.room.create").get("m.federate") is False
    assert state(school, room_id, "m.room.join_rules") == {"join_rule": "invite"}
    assert state(school, room_id, "m.room.guest_access") == {"guest_access": "forbidden"}
    assert state(school, room_id, "m.room.name") == {"name": "Mathe 7b"}
    assert state(school, room_id, "m.room.topic")["topic"] == "Mathematik, Frau Berg"
    levels = state(school, room_id, "m.room.power_levels")
    assert levels["users"][uid("berg")] == MODERATOR_LEVEL
    assert levels["events_default"] == MODERATOR_LEVEL
    # One way: the teacher posts, a pupil cannot.
    sent = school.users["berg"].send(room_id, "m.room.message", TEXT)
    assert sent[0] == 200, sent
    assert school.users["p1"].send(room_id, "m.room.message", TEXT)[0] == 403
    done = {(r["action"], r["target"]) for r in actions(school, group)}
    assert ("room_created", None) in done
    assert {("member_added", uid(u)) for u in ("berg", "p1", "p2")} <= done
    assert ("power_changed", uid("berg")) in done


def test_removal_a_pupil_who_left_is_kicked_and_a_lost_moderator_lowered(school):
    group = "course-bio-8a"
    put_group(school, group, course(group, "Bio 8a", [("berg", "moderator"), ("klein", "moderator"),
                                                       ("p3", "member"), ("p4", "member")]))
    room_id = wait_room(school, group, {uid("berg"), uid("klein"), uid("p3"), uid("p4")})
    # The substitute (klein) is a plain member again; p4 left the course.
    put_group(school, group, course(group, "Bio 8a", [("berg", "moderator"), ("klein", "member"),
                                                       ("p3", "member")], version=2))
    wait_room(school, group, {uid("berg"), uid("klein"), uid("p3")})
    wait_for(lambda: uid("klein") not in state(school, room_id, "m.room.power_levels")["users"] or None,
             timeout=30, what="klein's moderator level to go")
    assert membership_of(school, room_id, "p4") == "leave"
    assert school.users["klein"].send(room_id, "m.room.message", TEXT)[0] == 403
    removed = [r for r in actions(school, group, user=uid("p4")) if r["action"] == "member_removed"]
    assert removed and removed[0]["reason"] == "no longer listed in the course 'Bio 8a' by the school cloud"
    assert removed[0]["actor"] == OWNER and removed[0]["room_id"] == room_id
    lowered = [r for r in actions(school, group, user=uid("klein")) if r["action"] == "power_changed"]
    assert lowered[0]["reason"].endswith("(power level 50 -> 0)")
    # A school admin of gym-nord finds the answer too.
    status, body = school.admin_api("GET", "/audit", query={"kind": "action", "user": uid("p4")},
                                    as_user=school.users["sadmin"])
    assert status == 200 and any(r["action"] == "member_removed" and r["group"] == group
                                 for r in body["records"]), body


def test_a_user_who_leaves_every_opted_in_school_leaves_the_group_rooms(school):
    group = "course-chemie-9"
    put_group(school, group, course(group, "Chemie 9", [("berg", "moderator"), ("p5", "member")]))
    room_id = wait_room(school, group, {uid("berg"), uid("p5")})
    school.put_roster("p5", membership("rs-west", "student"))
    wait_room(school, group, {uid("berg")})
    member = next(m for m in get_group(school, group)["members"] if m["user_id"] == uid("p5"))
    assert member["in_room"] == "leave" and member["should_be_in_room"] is False
    assert member["why"] == "no school of theirs has opted in"
    school.put_roster("p5", membership("gym-nord", "student"))
    assert wait_room(school, group, {uid("berg"), uid("p5")}) == room_id


def test_get_group_says_per_member_whether_they_are_in_and_why_not(school):
    group = "team-robotik"
    put_group(school, group, {"school": "gym-nord", "kind": "team", "name": "Robotik", "two_way": True,
                              "members": [{"user_id": uid("klein"), "role": "moderator"},
                                          {"user_id": uid("otto"), "role": "member"},
                                          {"user_id": uid("ghost"), "role": "member"}]})
    room_id = wait_room(school, group, {uid("klein")})
    body = get_group(school, group)
    assert body["room_id"] == room_id
    by_user = {m["user_id"]: m for m in body["members"]}
    assert by_user[uid("klein")]["in_room"] == "join" and by_user[uid("klein")]["why"] is None
    assert by_user[uid("otto")]["in_room"] is None
    assert by_user[uid("otto")]["why"] == "no school of theirs has opted in"
    assert by_user[uid("ghost")]["why"] == "not on the roster"
    # A school admin of another school may not read it.
    school.put_roster("sadmin", membership("gs-sued", "admin"))
    try:
        status, error = school.admin_api("GET", f"/groups/{group}", as_user=school.users["sadmin"])
        assert status == 403, error
        status, error = school.admin_api("GET", "/groups", query={"school": "gym-nord"},
                                         as_user=school.users["sadmin"])
        assert status == 403, error
    finally:
        school.put_roster("sadmin", membership("gym-nord", "admin"))
    status, listed = school.admin_api("GET", "/groups", query={"school": "gym-nord", "limit": "1"},
                                      as_user=school.users["sadmin"])
    assert status == 200 and len(listed["groups"]) == 1 and listed["next"], listed
    status, rest = school.admin_api("GET", "/groups", query={"school": "gym-nord", "from": listed["next"]})
    assert status == 200 and group in {g["group"] for g in listed["groups"] + rest["groups"]}


def test_a_bad_group_is_a_400_naming_the_key_path_and_a_pupil_cannot_write(school):
    status, body = school.admin_api("PUT", "/groups/course-bad", {
        "school": "gym-nord", "kind": "course", "name": "X",
        "members": [{"user_id": uid("p1"), "role": "member"}, {"user_id": uid("p2"), "role": "teacher"}]})
    assert status == 400 and "members[1].role" in body["error"], body
    status, body = school.admin_api("POST", "/roster", {"groups": [
        {"group": "g-ok", "school": "gym-nord", "kind": "course", "name": "ok", "members": []},
        {"group": "g-bad", "school": "gym-nord", "kind": "lesson", "name": "bad", "members": []}]})
    assert status == 400 and "groups[1].kind" in body["error"], body
    status, body = school.admin_api("PUT", "/groups/course-x", course("course-x", "X", []),
                                    as_user=school.users["p1"])
    assert status == 403, body
    status, body = school.admin_api("POST", "/groups/course-x/adopt", {"room_id": "!anyroom"},
                                    as_user=school.users["p1"])
    assert status == 403, body
    status, body = school.admin_api("GET", "/groups/course-never")
    assert status == 404, body
    status, body = school.admin_api("GET", "/groups")
    assert status == 400 and body["error"].startswith("school"), body


def test_a_stale_version_is_ignored(school):
    group = "course-kunst-5"
    put_group(school, group, course(group, "Kunst 5", [("berg", "moderator")], version=5))
    room_id = wait_room(school, group, {uid("berg")})
    answer = put_group(school, group, course(group, "Kunst 5 (alt)", [("berg", "moderator"), ("p6", "member")],
                                             version=4))
    assert answer["ignored"] is True and answer["name"] == "Kunst 5"
    time.sleep(2)
    assert members(school, room_id) == {OWNER, uid("berg")}
    assert state(school, room_id, "m.room.name") == {"name": "Kunst 5"}


def test_archived_is_read_only_and_deleted_is_emptied_with_the_history_kept(school):
    group = "course-musik-6"
    put_group(school, group, course(group, "Musik 6", [("berg", "moderator"), ("p7", "member")]))
    room_id = wait_room(school, group, {uid("berg"), uid("p7")})
    sent = school.users["berg"].send(room_id, "m.room.message", TEXT)
    assert sent[0] == 200, sent
    put_group(school, group, course(group, "Musik 6", [("berg", "moderator"), ("p7", "member")],
                                    version=2, state="archived"))
    wait_for(lambda: state(school, room_id, "m.room.power_levels")["events_default"] == 100 or None,
             timeout=30, what="the archived room to turn read-only")
    assert school.users["berg"].send(room_id, "m.room.message", TEXT)[0] == 403
    assert members(school, room_id) == {OWNER, uid("berg"), uid("p7")}  # kept until the retention ends
    status, body = school.admin_api("DELETE", f"/groups/{group}")
    assert status == 200, body
    wait_room(school, group, set())
    status, body = request(school.server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/messages",
                           token=school.users["root"].token, query={"dir": "b", "limit": "50"})
    assert status == 200 and any(e["type"] == "m.room.message" for e in body["chunk"]), body
    reasons = {r["target"]: r["reason"] for r in actions(school, group) if r["action"] == "member_removed"}
    assert reasons[uid("p7")] == "the course 'Musik 6' was deleted"
    assert any(r["action"] == "room_archived" for r in actions(school, group))


def test_archive_at_ms_archives_the_room_without_a_message(school):
    group = "course-sport-7"
    put_group(school, group, course(group, "Sport 7", [("berg", "moderator")],
                                    archive_at_ms=int(time.time() * 1000) + 15000))
    room_id = wait_room(school, group, {uid("berg")})
    sent = school.users["berg"].send(room_id, "m.room.message", TEXT)
    assert sent[0] == 200, sent
    wait_for(lambda: state(school, room_id, "m.room.power_levels")["events_default"] == 100 or None,
             timeout=45, what="the room to archive itself")
    assert school.users["berg"].send(room_id, "m.room.message", TEXT)[0] == 403


def test_adopt_takes_over_an_older_syncs_room_or_says_why_not(school):
    group = "team-theater"
    # The older sync's room: no policy event, a pupil who left the team.
    sync = school.sync
    status, body = sync.create_room(preset="private_chat", name="Theater AG",
                                    invite=[uid("klein"), uid("p7"), uid("p8")])
    assert status == 200, body
    old_room = body["room_id"]
    for user in ("klein", "p7", "p8"):
        assert school.users[user].join(old_room)[0] == 200
    put_group(school, group, {"school": "gym-nord", "kind": "team", "name": "Theater AG", "two_way": True,
                              "members": [{"user_id": uid("klein"), "role": "moderator"},
                                          {"user_id": uid("p7"), "role": "member"}]})
    # The group came first, so the module made a room for it already.
    made = wait_room(school, group, {uid("klein"), uid("p7")})
    status, body = school.admin_api("POST", f"/groups/{group}/adopt", {"room_id": old_room})
    assert status == 200 and body["adopted"] is True and body["through"] == uid("sync"), body
    # The service user who made it stays (never removed); p8, not listed, goes.
    assert wait_room(school, group, {uid("klein"), uid("p7"), uid("sync")}) == old_room
    assert membership_of(school, old_room, "p8") == "leave"
    assert state(school, old_room, "m.room.power_levels")["users"][OWNER] == 100
    # The module's own room is emptied and points at the adopted one.
    assert members(school, made) == {OWNER}
    assert state(school, made, "m.room.tombstone")["replacement_room"] == old_room
    # A second room cannot take the adopted one's place.
    status, body = sync.create_room(preset="private_chat", name="Theater AG 2")
    status, body = school.admin_api("POST", f"/groups/{group}/adopt", {"room_id": body["room_id"]})
    assert status == 409 and "has a room already" in body["error"], body
    assert state(school, old_room, POLICY_EVENT_TYPE)["group"] == group
    assert any(r["action"] == "room_adopted" for r in actions(school, group))
    # A room whose creator left and holds no service user: nobody can bring the owner in.
    status, body = sync.create_room(preset="private_chat", name="Verwaist", invite=[uid("p8")])
    orphan = body["room_id"]
    assert school.users["p8"].join(orphan)[0] == 200
    assert sync.leave(orphan)[0] == 200
    put_group(school, "team-orphan", {"school": "gym-nord", "kind": "team", "name": "Verwaist",
                                      "members": [{"user_id": uid("p8"), "role": "member"}]})
    status, body = school.admin_api("POST", "/groups/team-orphan/adopt", {"room_id": orphan})
    assert status == 409 and "no local member of the room" in body["error"], body
    status, body = school.admin_api("POST", "/groups/team-orphan/adopt", {"room_id": "!nope:school.test"})
    assert status == 404, body
    status, body = school.admin_api("POST", "/groups/team-orphan/adopt", {"room": orphan})
    assert status == 400 and body["error"].startswith("room_id"), body


def test_a_moderators_two_way_stands_until_the_school_cloud_changes_it(school):
    group = "course-geo-10"
    members_ = [("klein", "moderator"), ("p6", "member")]
    put_group(school, group, course(group, "Geo 10", members_))
    room_id = wait_room(school, group, {uid("klein"), uid("p6")})
    policy = {"school": "gym-nord", "kind": "course", "two_way": True, "group": group}
    status, body = school.users["klein"].put_state(room_id, POLICY_EVENT_TYPE, "", policy)
    assert status == 200, body
    wait_for(lambda: state(school, room_id, "m.room.power_levels")["events_default"] == 0 or None,
             timeout=30, what="the power levels to follow the moderator's two_way")
    sent = school.users["p6"].send(room_id, "m.room.message", TEXT)
    assert sent[0] == 200, sent
    # The school cloud renames the course; its two_way (false) is the one last applied: the room stays two-way.
    put_group(school, group, course(group, "Geo 10a", members_, version=2))
    wait_for(lambda: state(school, room_id, "m.room.name") == {"name": "Geo 10a"} or None, timeout=30,
             what="the new name")
    wait_room(school, group, {uid("klein"), uid("p6")})
    assert state(school, room_id, POLICY_EVENT_TYPE)["two_way"] is True
    # The school cloud changes two_way itself: that is applied.
    put_group(school, group, course(group, "Geo 10a", members_, version=3, two_way=True))
    wait_room(school, group, {uid("klein"), uid("p6")})
    put_group(school, group, course(group, "Geo 10a", members_, version=4, two_way=False))
    wait_for(lambda: state(school, room_id, "m.room.power_levels")["events_default"] == MODERATOR_LEVEL or None,
             timeout=30, what="one-way again")
    assert state(school, room_id, POLICY_EVENT_TYPE) == {**policy, "two_way": False}
    assert school.users["p6"].send(room_id, "m.room.message", TEXT)[0] == 403


def test_status_counts_each_schools_groups(school):
    status, body = school.admin_api("GET", "/status")
    assert status == 200, body
    groups = body["schools"]["gym-nord"]["groups"]
    assert groups["count"] >= 5 and groups["rooms_pending"] >= 0


def test_cross_school_team_member_joins_and_messages_a_pupil_of_the_owning_school(school):
    group = "team-chor"
    put_group(school, group, {"school": "gym-nord", "kind": "team", "name": "Chor", "two_way": True,
                              "members": [{"user_id": uid("klein"), "role": "moderator"},
                                          {"user_id": uid("p1"), "role": "member"},
                                          {"user_id": uid("sven"), "role": "member"}]})
    room_id = wait_room(school, group, {uid("klein"), uid("p1"), uid("sven")})
    assert school.users["sven"].send(room_id, "m.room.message", TEXT)[0] == 200
    status, body = school.users["sven"].create_room(preset="trusted_private_chat", is_direct=True,
                                                     invite=[uid("p1")])
    assert status == 200, body
    put_group(school, group, {"school": "gym-nord", "kind": "team", "name": "Chor", "two_way": True,
                              "version": 2, "state": "archived",
                              "members": [{"user_id": uid("klein"), "role": "moderator"},
                                          {"user_id": uid("p1"), "role": "member"},
                                          {"user_id": uid("sven"), "role": "member"}]})
    wait_for(lambda: state(school, room_id, "m.room.power_levels")["events_default"] == 100 or None,
             timeout=30, what="the team to be archived")
    assert_denied(school.users["sven"].send(room_id, "m.room.message", TEXT), "group_archived")
    status, body = school.users["sven"].create_room(preset="trusted_private_chat", is_direct=True,
                                                     invite=[uid("p1")])
    assert status == 403, body
