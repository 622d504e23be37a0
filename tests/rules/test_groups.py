"""Group rooms on a real Synapse, on both stores: closed groups
(group_closed), archived groups (group_archived), the cross-school team and
rule 3 across schools, a member of a school that has not opted in, and a
room whose policy event names a group nobody sent (fail closed).

The groups come in as the school cloud sends them (POST /roster with
"groups"); each room is made here as the school cloud's sync would make it
(the service user creates it with the policy event naming the group), so
that these tests need nothing of the module's own group rooms. Each denial
is checked with its rule id and its audit record; the legitimate path
beside it too."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from harness.client import CS, q, wait_for
from support import (
    DEFAULT_VERSION_GIVES_CREATORS_POWER,
    GYM,
    MODERATOR_LEVEL,
    POLICY_EVENT_TYPE,
    TEXT,
    WEST,
    School,
    assert_audited,
    assert_denied,
    assert_token_refused,
    base_config,
    direct_chat,
    direct_chat_request,
    members,
    member_content,
    membership,
    now_ms,
    uid,
)

pytestmark = pytest.mark.integration

SUED = "gs-sued"  # has not opted in (base_config)
CAST = {
    "teacher": (GYM, "teacher"),   # moderator of every group
    "pupil_a": (GYM, "student"),
    "pupil_a2": (GYM, "student"),
    "pupil_a3": (GYM, "student"),
    "pupil_b": (WEST, "student"),  # listed in the cross-school team
    "teacher_b": (WEST, "teacher"),  # listed in no group
    "pupil_c": (SUED, "student"),  # listed in the cross-school team; school not opted in
}


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def world(request, module_synapse_factory, postgres, tmp_path_factory):
    overrides = {}
    if request.param == "postgres":
        dbname = f"school_policy_groups_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        overrides["database"] = postgres.dsn(dbname)
    config = base_config(tmp_path_factory.mktemp("groups") / "store", **overrides)
    config["schools"][WEST] = {"messenger": True, "teachers_room": False}
    config["schools"][GYM]["teachers_room"] = False
    world = School(module_synapse_factory(config))
    world.store = request.param
    world.register("sync")
    world.register("root", admin=True)
    for name in CAST:
        world.register(name)
    users = [{"user_id": uid(name), "schools": [membership(s, r)]} for name, (s, r) in CAST.items()]
    status, body = world.admin_api("POST", "/roster", {"users": users})
    assert status == 200, body
    # The gym-nord course the teacher shares with the gym-nord pupils: a
    # moderator's invite into an open group still needs a shared room.
    gym = ["teacher", "pupil_a", "pupil_a2", "pupil_a3"]
    world.course = world.managed_room(GYM, invite=gym, moderators=["teacher"])
    for name in gym:
        assert world.users[name].join(world.course)[0] == 200, name
    return world


# ---- groups and their rooms, as the school cloud makes them ---------------------------------


def group(group_id: str, listed: dict, **fields) -> dict:
    """A group of gym-nord: `listed` maps localparts to roles."""
    body = {"group": group_id, "school": GYM, "kind": "team", "name": group_id, "two_way": True,
            "members": [{"user_id": uid(name), "role": role} for name, role in listed.items()]}
    body.update(fields)
    return body


def put_groups(world: School, *groups: dict, applied: int | None = None) -> None:
    """POST /roster with groups only, as the school cloud's sync sends them;
    `applied` groups (all of them unless said) are newer than the stored."""
    status, body = world.admin_api("POST", "/roster", {"groups": list(groups)})
    if world.store == "postgres" and status == 503 and "migration 6" in body.get("error", ""):
        # Only a build without the PostgreSQL side of groups says this.
        pytest.skip(f"this build stores no groups in PostgreSQL: {body['error']}")
    assert status == 200, body
    # {"upserted": N, "groups": M}; an adapter that wraps the engine's answer
    # once more still says how many groups were applied.
    counts = body["upserted"] if isinstance(body.get("upserted"), dict) else body
    assert counts.get("groups") == (len(groups) if applied is None else applied), body


def group_room(world: School, group_id: str, invite=(), two_way=True, kind="team") -> str:
    """The group's room, made by the service user with the policy event
    naming the group; the teacher at the moderator level."""
    users = {uid("teacher"): MODERATOR_LEVEL}
    if not DEFAULT_VERSION_GIVES_CREATORS_POWER:
        users[uid("sync")] = 100
    content = {"school": GYM, "kind": kind, "two_way": two_way, "group": group_id}
    status, body = world.sync.create_room(
        preset="private_chat",
        invite=[uid(name) for name in invite],
        power_level_content_override={"users": users, "events_default": 0 if two_way else MODERATOR_LEVEL},
        initial_state=[{"type": POLICY_EVENT_TYPE, "state_key": "", "content": content}],
    )
    assert status == 200, body
    return body["room_id"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def directory_shows(client, localpart: str) -> bool:
    status, body = client.user_directory_search(localpart)
    assert status == 200, body
    return any(hit["user_id"] == uid(localpart) for hit in body.get("results", []))


def join_all(world: School, room_id: str, *names: str) -> None:
    for name in names:
        assert world.users[name].join(room_id)[0] == 200, name


# ---- closed groups ----------------------------------------------------------------------


def test_teacher_cannot_invite_into_a_closed_group(world):
    group_id = unique("closed")
    put_groups(world, group(group_id, {"teacher": "moderator", "pupil_a": "member"}))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_a"])
    join_all(world, room_id, "teacher", "pupil_a")

    assert_denied(world.users["teacher"].invite(room_id, uid("pupil_a2")), "group_closed")
    record = assert_audited(world, "group_closed", uid("teacher"), callback="user_may_invite",
                            target=uid("pupil_a2"), room_id=room_id)
    assert record["school"] == GYM and record["enforced"] is True
    assert_denied(world.users["pupil_a"].invite(room_id, uid("pupil_a2")), "group_closed")
    # The school cloud's service user adds people; they join.
    assert world.sync.invite(room_id, uid("pupil_a2"))[0] == 200
    join_all(world, room_id, "pupil_a2")
    assert uid("pupil_a2") in members(world, room_id)


def test_moderator_invites_into_an_open_group(world):
    group_id = unique("open")
    put_groups(world, group(group_id, {"teacher": "moderator", "pupil_a": "member"}, closed=False))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_a"])
    join_all(world, room_id, "teacher", "pupil_a")

    status, body = world.users["teacher"].invite(room_id, uid("pupil_a2"))
    assert status == 200, body
    join_all(world, room_id, "pupil_a2")
    # Below the moderator level nobody invites, even in a two-way room.
    assert_denied(world.users["pupil_a"].invite(room_id, uid("pupil_a3")), "group_closed")
    assert_audited(world, "group_closed", uid("pupil_a"), callback="user_may_invite", target=uid("pupil_a3"))
    # Invite-only all the same: no join without the invite.
    assert_denied(world.users["pupil_a3"].join(room_id), "join_forbidden")


def test_join_without_invite_into_a_closed_group(world):
    group_id = unique("closed-join")
    put_groups(world, group(group_id, {"teacher": "moderator", "pupil_a3": "member"}))
    room_id = group_room(world, group_id, invite=["teacher"])
    join_all(world, room_id, "teacher")
    assert_denied(world.users["pupil_a3"].join(room_id), "group_closed")
    assert_audited(world, "group_closed", uid("pupil_a3"), callback="user_may_join_room", room_id=room_id)


# ---- archived groups --------------------------------------------------------------------


def test_archived_group_room_is_read_only(world):
    group_id = unique("archived")
    listed = {"teacher": "moderator", "pupil_a": "member"}
    put_groups(world, group(group_id, listed, version=1))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_a"])
    join_all(world, room_id, "teacher", "pupil_a")
    pupil, teacher = world.users["pupil_a"], world.users["teacher"]
    status, body = pupil.send(room_id, "m.room.message", TEXT)
    assert status == 200, body
    earlier = body["event_id"]

    put_groups(world, group(group_id, listed, version=2, state="archived"))
    assert_denied(pupil.send(room_id, "m.room.message", TEXT), "group_archived")
    record = assert_audited(world, "group_archived", uid("pupil_a"), callback="check_event_for_spam",
                            room_id=room_id, event_type="m.room.message")
    assert record["school"] == GYM
    assert_denied(teacher.send(room_id, "m.room.message", TEXT), "group_archived")
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": earlier, "key": "👍"}}
    assert_denied(pupil.send(room_id, "m.reaction", reaction), "group_archived")
    assert_denied(pupil.redact(room_id, earlier), "group_archived")
    assert_denied(teacher.put_state(room_id, "m.room.topic", "", {"topic": "x"}), "group_archived")
    assert_denied(teacher.invite(room_id, uid("pupil_a2")), "group_archived")
    # Reading and leaving stay open.
    assert pupil.messages(room_id)[0] == 200
    assert pupil.leave(room_id)[0] == 200
    assert uid("pupil_a") not in members(world, room_id)
    # A stale snapshot does not bring the group back.
    put_groups(world, group(group_id, listed, version=1), applied=0)
    assert_denied(teacher.send(room_id, "m.room.message", TEXT), "group_archived")


def test_leave_reason_in_an_archived_group_room_is_taken_back(world):
    """Leaving stays open in an archived group's room, but not as a way to
    post: the reason of the moderator's leave is redacted after the fact."""
    group_id = unique("archived-leave")
    listed = {"teacher": "moderator", "pupil_a": "member"}
    put_groups(world, group(group_id, listed, version=1))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_a"])
    join_all(world, room_id, "teacher", "pupil_a")
    put_groups(world, group(group_id, listed, version=2, state="archived"))
    text = "Ich bin dann mal weg"
    status, body = world.users["teacher"].request("POST", f"{CS}/rooms/{q(room_id)}/leave", {"reason": text})
    assert status == 200, body
    wait_for(lambda: member_content(world.sync, room_id, uid("teacher")) == {"membership": "leave"} or None,
             5, "the leave's reason taken back")
    status, body = world.users["pupil_a"].messages(room_id, limit=30)
    assert status == 200 and text not in json.dumps(body["chunk"]), body
    assert_audited(world, "group_archived", uid("teacher"), callback="after_the_fact", room_id=room_id,
                   event_type="m.room.member")


def test_group_archives_itself_at_its_date(world):
    """archive_at_ms passing is enough: no message about the group comes."""
    group_id = unique("dated")
    listed = {"teacher": "moderator", "pupil_a": "member"}
    put_groups(world, group(group_id, listed, version=1))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_a"])
    join_all(world, room_id, "teacher", "pupil_a")
    pupil = world.users["pupil_a"]
    archive_at = now_ms() + 3000
    put_groups(world, group(group_id, listed, version=2, archive_at_ms=archive_at))
    assert pupil.send(room_id, "m.room.message", TEXT)[0] == 200
    time.sleep(max(0.0, (archive_at - now_ms()) / 1000) + 0.2)
    assert_denied(pupil.send(room_id, "m.room.message", TEXT), "group_archived")
    assert_audited(world, "group_archived", uid("pupil_a"), room_id=room_id)


# ---- the cross-school team ----------------------------------------------------------------


def test_cross_school_team(world):
    """A pupil of rs-west listed in a team of gym-nord joins its room, and
    reaches the gym-nord pupil they share it with; once the team is
    archived they no longer can."""
    group_id = unique("cross")
    listed = {"teacher": "moderator", "pupil_a": "member", "pupil_b": "member"}
    pupil_a, pupil_b = world.users["pupil_a"], world.users["pupil_b"]
    # Before the team: nothing in common.
    assert_denied(direct_chat_request(pupil_b, uid("pupil_a")), "no_shared_room")

    put_groups(world, group(group_id, listed, version=1))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_a", "pupil_b"])
    join_all(world, room_id, "teacher", "pupil_a", "pupil_b")
    assert {uid("pupil_a"), uid("pupil_b")} <= members(world, room_id)
    status, body = pupil_b.send(room_id, "m.room.message", TEXT)
    assert status == 200, body
    # The team is a shared room: a direct chat, and a message in it.
    dm = direct_chat(pupil_b, uid("pupil_a"))
    assert pupil_a.join(dm)[0] == 200
    assert pupil_b.send(dm, "m.room.message", TEXT)[0] == 200
    assert wait_for(lambda: directory_shows(pupil_b, "pupil_a") or None, 10, "pupil_a in pupil_b's directory")

    put_groups(world, group(group_id, listed, version=2, state="archived"))
    since = now_ms()
    assert_denied(direct_chat_request(pupil_b, uid("pupil_a")), "no_shared_room")
    record = assert_audited(world, "no_shared_room", uid("pupil_b"), callback="user_may_create_room",
                            target=uid("pupil_a"))
    assert record["ts"] >= since and record["school"] == WEST
    assert not directory_shows(pupil_b, "pupil_a")
    assert_denied(pupil_b.send(room_id, "m.room.message", TEXT), "group_archived")


def test_unlisted_user_of_another_school_is_not_admitted(world):
    group_id = unique("unlisted")
    put_groups(world, group(group_id, {"teacher": "moderator", "pupil_b": "member"}))
    room_id = group_room(world, group_id, invite=["teacher", "pupil_b", "teacher_b"])
    join_all(world, room_id, "teacher", "pupil_b")
    assert_denied(world.users["teacher_b"].join(room_id), "join_forbidden")
    assert_audited(world, "join_forbidden", uid("teacher_b"), callback="user_may_join_room", room_id=room_id)
    assert uid("teacher_b") not in members(world, room_id)


def test_member_of_a_school_that_has_not_opted_in_is_not_admitted(world):
    group_id = unique("opted-out")
    put_groups(world, group(group_id, {"teacher": "moderator", "pupil_c": "member"}))
    room_id = group_room(world, group_id, invite=["teacher"])
    join_all(world, room_id, "teacher")
    # The service user's invite goes out (it is exempt); the pupil of gs-sued
    # cannot use the messenger at all, this room included.
    assert world.sync.invite(room_id, uid("pupil_c"))[0] == 200
    assert_token_refused(world.users["pupil_c"].join(room_id))
    assert_audited(world, "school_not_enabled", uid("pupil_c"), school=SUED)
    assert uid("pupil_c") not in members(world, room_id)


# ---- a forged group id, the locked group -----------------------------------------------------


def test_forged_group_id_fails_closed(world):
    """A room whose policy event names a group nobody sent: closed (no
    invite but the service user's), active, and no cross-school join."""
    room_id = group_room(world, unique("forged"), invite=["teacher", "pupil_a"])
    join_all(world, room_id, "teacher", "pupil_a")
    assert_denied(world.users["teacher"].invite(room_id, uid("pupil_a2")), "group_closed")
    assert_audited(world, "group_closed", uid("teacher"), room_id=room_id, target=uid("pupil_a2"))
    assert world.sync.invite(room_id, uid("pupil_b"))[0] == 200
    assert_denied(world.users["pupil_b"].join(room_id), "join_forbidden")
    assert_audited(world, "join_forbidden", uid("pupil_b"), room_id=room_id)
    # Active: the room's own school's members post as usual.
    assert world.users["pupil_a"].send(room_id, "m.room.message", TEXT)[0] == 200


def test_moderator_flips_two_way_but_cannot_change_the_group(world):
    group_id = unique("locked")
    put_groups(world, group(group_id, {"teacher": "moderator"}), group(f"{group_id}-other", {"teacher": "moderator"}))
    room_id = group_room(world, group_id, invite=["teacher"])
    join_all(world, room_id, "teacher")
    teacher = world.users["teacher"]
    content = {"school": GYM, "kind": "team", "two_way": False, "group": group_id}
    assert teacher.put_state(room_id, POLICY_EVENT_TYPE, "", content)[0] == 200
    assert_denied(teacher.put_state(room_id, POLICY_EVENT_TYPE, "", {**content, "group": f"{group_id}-other"}),
                  "policy_event_locked")
    assert_audited(world, "policy_event_locked", uid("teacher"), room_id=room_id)
