"""Rule 3's room creation and closed doors. Who may create a group room
(pupils create only direct chats, and a direct chat holds two), and no door
opens a room: no public, knock or restricted join rule, no world-readable
history, no guest access, no publishing, no alias, no third-party (email)
invite, neither in the createRoom body nor later. Each attempt is denied
with the rule id and audited; the legitimate paths keep working."""
from __future__ import annotations

import pytest
from synapse.config.server import DEFAULT_ROOM_VERSION

from harness.client import CS, Client, q, request
from support import (
    GYM,
    School,
    assert_audited,
    assert_denied,
    direct_chat,
    invites,
    joined_rooms,
    knock,
    member_invite,
    now_ms,
    private_room,
    uid,
    wait_for_invite,
)

pytestmark = pytest.mark.integration


# ---- who creates group rooms; a direct chat holds two ------------------------------------


def test_pupil_cannot_create_a_group_room_but_a_teacher_can(two_schools):
    assert_denied(two_schools.users["pupil_a"].create_room(preset="private_chat", name="gang"), "room_creation_forbidden")
    assert_audited(two_schools, "room_creation_forbidden", uid("pupil_a"), callback="user_may_create_room")
    status, body = two_schools.users["teacher_a"].create_room(preset="private_chat", name="staff")
    assert status == 200, body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [uid("pupil2")],
             "initial_state": [member_invite(uid("pupil3"), is_direct=True)]},
            id="direct-flag-one-listed-one-in-initial-state",
        ),
        pytest.param(
            {"preset": "trusted_private_chat", "is_direct": True,
             "initial_state": [member_invite(uid("pupil2"), True), member_invite(uid("pupil3"), True)]},
            id="direct-flag-two-in-initial-state",
        ),
        pytest.param(
            {"preset": "private_chat", "initial_state": [member_invite(uid("pupil2"))]},
            id="no-direct-flag-one-in-initial-state",
        ),
    ],
)
def test_pupil_cannot_build_a_group_room_from_initial_state_members(school, body):
    pupil, pupil2, pupil3 = (school.users[n] for n in ("pupil", "pupil2", "pupil3"))
    rooms_before = joined_rooms(pupil)
    invites_before = {n: invites(school.users[n]) for n in ("pupil2", "pupil3")}
    since = now_ms()
    assert_denied(pupil.create_room(**body), "room_creation_forbidden")
    record = assert_audited(school, "room_creation_forbidden", uid("pupil"), callback="user_may_create_room")
    assert record["ts"] >= since - 1000 and record["school"] == GYM
    assert joined_rooms(pupil) == rooms_before
    assert {n: invites(school.users[n]) for n in ("pupil2", "pupil3")} == invites_before


def test_direct_chat_cannot_grow_beyond_two(school):
    pupil, pupil2, pupil3, pupil4, teacher = (
        school.users[n] for n in ("pupil", "pupil2", "pupil3", "pupil4", "teacher")
    )
    room_id = direct_chat(pupil, uid("pupil2"))
    assert pupil2.join(room_id)[0] == 200
    # Neither the creator nor the invited classmate (an additional creator
    # in a v12 trusted private chat, so Synapse would allow it) adds a third.
    for actor in ("pupil", "pupil2"):
        assert_denied(school.users[actor].invite(room_id, uid("pupil3")), "room_creation_forbidden")
        assert_audited(
            school, "room_creation_forbidden", uid(actor), callback="user_may_invite",
            target=uid("pupil3"), room_id=room_id,
        )
    assert room_id not in invites(pupil3)

    # A pending invite counts as the second person.
    pending = direct_chat(pupil, uid("pupil3"))
    assert_denied(pupil.invite(pending, uid("pupil4")), "room_creation_forbidden")
    assert pending not in invites(pupil4)

    # A teacher in a pupil's direct chat cannot grow it either.
    with_teacher = direct_chat(pupil, uid("teacher"))
    assert teacher.join(with_teacher)[0] == 200
    assert_denied(teacher.invite(with_teacher, uid("pupil4")), "room_creation_forbidden")
    assert_audited(
        school, "room_creation_forbidden", uid("teacher"), callback="user_may_invite",
        target=uid("pupil4"), room_id=with_teacher,
    )
    assert with_teacher not in invites(pupil4)
    status, body = teacher.members(with_teacher)
    assert {e["state_key"] for e in body["chunk"]} == {uid("pupil"), uid("teacher")}


def test_pupil_cannot_upgrade_their_own_direct_chat(school, pupil_dm):
    # An upgrade creates a room: Synapse asks user_may_create_room with a
    # body it makes up (handlers/room.py clone_existing_room), with no
    # is_direct and no invite: a group room, which pupils may not create.
    # The pupil holds the power to send the tombstone in their own chat.
    pupil = school.users["pupil"]
    since = now_ms()
    assert_denied(pupil.upgrade(pupil_dm, DEFAULT_ROOM_VERSION), "room_creation_forbidden")
    record = assert_audited(school, "room_creation_forbidden", uid("pupil"), callback="user_may_create_room",
                            room_id=pupil_dm)  # the room being upgraded
    assert record["ts"] >= since - 1000, record
    status, state = pupil.request("GET", f"{CS}/rooms/{q(pupil_dm)}/state")
    assert status == 200 and "m.room.tombstone" not in {e["type"] for e in state}, state
    # A teacher, who may create group rooms, upgrades their own.
    room_id = private_room(school.users["teacher"])
    status, body = school.users["teacher"].upgrade(room_id, DEFAULT_ROOM_VERSION)
    assert status == 200 and body.get("replacement_room"), body


def test_teachers_group_room_can_still_grow(school):
    teacher, pupil3, pupil4 = school.users["teacher"], school.users["pupil3"], school.users["pupil4"]
    status, body = teacher.create_room(preset="private_chat", name="AG Robotik", invite=[uid("pupil")])
    assert status == 200, body
    room_id = body["room_id"]
    for name in ("pupil2", "pupil3", "pupil4"):
        status, body = teacher.invite(room_id, uid(name))
        assert status == 200, (name, body)
    wait_for_invite(pupil4, room_id)
    assert pupil4.join(room_id)[0] == 200
    # A teacher's own direct chat with a pupil may grow too: its creator may
    # create group rooms.
    dm = direct_chat(teacher, uid("pupil3"))
    assert pupil3.join(dm)[0] == 200
    status, body = teacher.invite(dm, uid("pupil4"))
    assert status == 200, body
    wait_for_invite(pupil4, dm)


# ---- open doors in a createRoom body -----------------------------------------------------


@pytest.mark.parametrize(
    "body, rule",
    [
        ({"preset": "public_chat"}, "public_room_forbidden"),
        ({"preset": "private_chat", "visibility": "public"}, "public_room_forbidden"),
        ({"initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}]}, "public_room_forbidden"),
        ({"initial_state": [{"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "can_join"}}]}, "guest_access_forbidden"),
        ({"preset": "private_chat", "room_alias_name": "secret-club"}, "alias_forbidden"),
        ({"preset": "private_chat", "invite_3pid": [{"id_server": "id.example", "id_access_token": "x", "medium": "email", "address": "kid@example.org"}]}, "third_party_invite_forbidden"),
    ],
)
def test_room_cannot_be_created_with_an_open_door(two_schools, body, rule):
    assert_denied(two_schools.users["teacher_a"].create_room(**body), rule)
    assert_audited(two_schools, rule, uid("teacher_a"), callback="user_may_create_room")


def test_new_rooms_have_guest_access_closed(two_schools):
    status, body = two_schools.users["teacher_a"].create_room(preset="private_chat")
    assert status == 200
    assert two_schools.users["teacher_a"].get_state(body["room_id"], "m.room.guest_access")[1] == {"guest_access": "forbidden"}


def test_room_cannot_be_made_public_later(two_schools):
    room_id = private_room(two_schools.users["teacher_a"])
    teacher = two_schools.users["teacher_a"]
    assert_denied(teacher.put_state(room_id, "m.room.join_rules", "", {"join_rule": "public"}), "public_room_forbidden")
    assert_denied(teacher.put_state(room_id, "m.room.guest_access", "", {"guest_access": "can_join"}), "guest_access_forbidden")
    assert_audited(two_schools, "public_room_forbidden", uid("teacher_a"), callback="check_event_for_spam", room_id=room_id)
    assert_audited(two_schools, "guest_access_forbidden", uid("teacher_a"), room_id=room_id)
    # Closing doors stays possible.
    assert teacher.put_state(room_id, "m.room.join_rules", "", {"join_rule": "invite"})[0] == 200


# ---- join rules other than invite; knocks ------------------------------------------------


def join_rule(client: Client, room_id: str) -> dict:
    status, body = client.get_state(room_id, "m.room.join_rules")
    assert status == 200, body
    return body


def join_rule_content(rule: str, school: School) -> dict:
    content = {"join_rule": rule}
    if rule in ("restricted", "knock_restricted"):
        content["allow"] = [{"type": "m.room_membership", "room_id": school.course}]
    return content


@pytest.mark.parametrize("where", ["pupils_direct_chat", "teacher_in_managed_course"])
@pytest.mark.parametrize("rule", ["public", "knock", "restricted", "knock_restricted", "private"])
def test_join_rules_other_than_invite_are_refused(school, pupil_dm, where, rule):
    if where == "pupils_direct_chat":
        actor, room_id = "pupil", pupil_dm  # the creator: unlimited power in a v12 room
    else:
        actor, room_id = "teacher", school.course  # moderator level: Synapse would allow it
    client = school.users[actor]
    before = join_rule(client, room_id)
    assert before == {"join_rule": "invite"}
    response = client.put_state(room_id, "m.room.join_rules", "", join_rule_content(rule, school))
    try:
        assert_denied(response, "public_room_forbidden")
        assert_audited(
            school, "public_room_forbidden", uid(actor), callback="check_event_for_spam",
            room_id=room_id, event_type="m.room.join_rules",
        )
        assert join_rule(client, room_id) == before
    finally:  # a door found open is closed again for the next test
        if response[0] == 200:
            school.sync.put_state(room_id, "m.room.join_rules", "", {"join_rule": "invite"})
            client.put_state(room_id, "m.room.join_rules", "", {"join_rule": "invite"})


def test_join_rule_invite_can_still_be_set(school, pupil_dm):
    # Closing a door is always allowed.
    assert school.users["pupil"].put_state(pupil_dm, "m.room.join_rules", "", {"join_rule": "invite"})[0] == 200
    assert school.users["teacher"].put_state(school.course, "m.room.join_rules", "", {"join_rule": "invite"})[0] == 200


@pytest.mark.parametrize("rule", ["restricted", "knock", "knock_restricted", "private"])
def test_initial_state_restricted_join_rule_is_refused(school, rule):
    teacher = school.users["teacher"]
    rooms_before = joined_rooms(teacher)
    response = teacher.create_room(
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": join_rule_content(rule, school)}],
    )
    assert_denied(response, "public_room_forbidden")
    assert_audited(school, "public_room_forbidden", uid("teacher"), callback="user_may_create_room")
    assert joined_rooms(teacher) == rooms_before


def test_knock_on_a_local_room_is_impossible(school, teacher_room):
    teacher, pupil3 = school.users["teacher"], school.users["pupil3"]
    # The teacher cannot open their room for knocking ...
    response = teacher.put_state(teacher_room, "m.room.join_rules", "", {"join_rule": "knock"})
    if response[0] == 200:  # the door is open: close it again before failing
        teacher.put_state(teacher_room, "m.room.join_rules", "", {"join_rule": "invite"})
    assert_denied(response, "public_room_forbidden")
    assert_audited(school, "public_room_forbidden", uid("teacher"), room_id=teacher_room, event_type="m.room.join_rules")
    assert join_rule(teacher, teacher_room) == {"join_rule": "invite"}
    # ... so a knock on it, or on a managed course, fails Synapse's own auth.
    for room_id in (teacher_room, school.course_b):
        status, body = knock(pupil3, room_id)
        assert status == 403, body
        assert body.get("errcode") == "M_FORBIDDEN", body
    # No knock reached the room.
    status, body = teacher.get_state(teacher_room, "m.room.member", uid("pupil3"))
    assert status == 404, body
    status, body = school.users["teacher_b"].get_state(school.course_b, "m.room.member", uid("pupil3"))
    assert status == 404, body


# ---- world-readable history --------------------------------------------------------------


@pytest.mark.parametrize("where", ["pupils_direct_chat", "teachers_group_room"])
def test_world_readable_history_is_refused(school, pupil_dm, teacher_room, where):
    actor, room_id = ("pupil", pupil_dm) if where == "pupils_direct_chat" else ("teacher", teacher_room)
    client = school.users[actor]
    _, before = client.get_state(room_id, "m.room.history_visibility")
    assert before["history_visibility"] != "world_readable"
    response = client.put_state(room_id, "m.room.history_visibility", "", {"history_visibility": "world_readable"})
    assert_denied(response, "public_room_forbidden")
    assert_audited(
        school, "public_room_forbidden", uid(actor), callback="check_event_for_spam",
        room_id=room_id, event_type="m.room.history_visibility",
    )
    assert client.get_state(room_id, "m.room.history_visibility")[1] == before
    # The other settings stay allowed.
    for value in ("joined", "invited", "shared"):
        status, body = client.put_state(room_id, "m.room.history_visibility", "", {"history_visibility": value})
        assert status == 200, (value, body)


def test_room_cannot_be_created_with_world_readable_history(school):
    teacher = school.users["teacher"]
    rooms_before = joined_rooms(teacher)
    response = teacher.create_room(
        preset="private_chat",
        initial_state=[{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}],
    )
    assert_denied(response, "public_room_forbidden")
    assert_audited(school, "public_room_forbidden", uid("teacher"), callback="user_may_create_room")
    assert joined_rooms(teacher) == rooms_before


# ---- the room directory and aliases ------------------------------------------------------


def test_room_summary_and_hierarchy_hide_an_invite_only_room_from_non_members(school):
    # handlers/room_summary.py _is_local_room_accessible: an invite-only room
    # whose history is not world_readable (the closed doors keep every room
    # so) is shown to its members only, with or without a token.
    course = school.course
    path = f"/_matrix/client/v1/room_summary/{q(course)}"
    for token in (school.users["pupil_b"].token, None):
        status, body = request(school.server.base_url, "GET", path, token=token)
        assert status == 404 and body.get("errcode") == "M_NOT_FOUND", body
    status, body = school.users["pupil_b"].request("GET", f"/_matrix/client/v1/rooms/{q(course)}/hierarchy")
    assert status == 403 and body.get("errcode") == "M_FORBIDDEN", body
    # A member sees both.
    status, body = school.users["pupil"].request("GET", path)
    assert status == 200 and body["room_id"] == course, body
    status, body = school.users["pupil"].request("GET", f"/_matrix/client/v1/rooms/{q(course)}/hierarchy")
    assert status == 200 and body["rooms"][0]["room_id"] == course, body


def test_room_cannot_be_published_in_the_room_directory(two_schools):
    room_id = private_room(two_schools.users["teacher_a"])
    assert_denied(two_schools.users["teacher_a"].set_visibility(room_id, "public"), "publish_forbidden")
    assert_audited(two_schools, "publish_forbidden", uid("teacher_a"), callback="user_may_publish_room", room_id=room_id)


def test_room_alias_cannot_be_created(two_schools):
    room_id = private_room(two_schools.users["teacher_a"])
    alias = "#hideout:school.test"
    assert_denied(two_schools.users["teacher_a"].put_alias(alias, room_id), "alias_forbidden")
    assert_audited(two_schools, "alias_forbidden", uid("teacher_a"), callback="user_may_create_room_alias", room_id=alias)


# ---- third-party (email) invites ---------------------------------------------------------


def test_email_invite_is_refused(two_schools):
    room_id = private_room(two_schools.users["teacher_a"])
    response = two_schools.users["teacher_a"].request(
        "POST", f"{CS}/rooms/{q(room_id)}/invite",
        {"id_server": "id.example", "id_access_token": "x", "medium": "email", "address": "kid@example.org"},
    )
    assert_denied(response, "third_party_invite_forbidden")
    assert_audited(two_schools, "third_party_invite_forbidden", uid("teacher_a"), callback="user_may_send_3pid_invite")


def test_upgrade_that_would_open_guest_access_is_refused_even_to_the_service_user(before_the_module):
    # A room from before the module may have no m.room.guest_access event;
    # its upgrade would get can_join from the private_chat preset Synapse
    # uses (threat model R16). Synapse asks user_may_create_room at an
    # upgrade for everyone, so the exempt service user is refused too.
    world = before_the_module
    sync, room_id = world.sync, world.room_without_guest_access
    assert_denied(sync.upgrade(room_id, DEFAULT_ROOM_VERSION), "guest_access_forbidden")
    assert_audited(world, "guest_access_forbidden", sync.user_id, callback="user_may_create_room", room_id=room_id)
    # With the room's guest access closed first, the upgrade goes through and stays closed.
    assert sync.put_state(room_id, "m.room.guest_access", "", {"guest_access": "forbidden"})[0] == 200
    status, body = sync.upgrade(room_id, DEFAULT_ROOM_VERSION)
    assert status == 200, body
    status, content = sync.get_state(body["replacement_room"], "m.room.guest_access")
    assert (status, content) == (200, {"guest_access": "forbidden"})


def test_planted_third_party_invite_is_refused(two_schools):
    # An m.room.third_party_invite state event names a key; whoever signs
    # with it could join through /join's third_party_signed, an invite
    # Synapse makes without asking user_may_invite.
    room_id = private_room(two_schools.users["teacher_a"])
    teacher = two_schools.users["teacher_a"]
    content = {"display_name": "k...@e...", "key_validity_url": "https://id.example/isvalid",
               "public_key": "dGhpc2lzbm90YXJlYWxrZXk", "public_keys": [{"public_key": "dGhpc2lzbm90YXJlYWxrZXk"}]}
    assert_denied(teacher.put_state(room_id, "m.room.third_party_invite", "planted", content),
                  "third_party_invite_forbidden")
    assert_audited(two_schools, "third_party_invite_forbidden", uid("teacher_a"), callback="check_event_for_spam",
                   room_id=room_id, event_type="m.room.third_party_invite")
    status, _ = teacher.get_state(room_id, "m.room.third_party_invite", "planted")
    assert status == 404


@pytest.mark.parametrize("via", ["initial_state", "invite_3pid"])
def test_initial_state_third_party_invite_is_refused(school, via):
    teacher, pupil = school.users["teacher"], school.users["pupil"]
    rooms_before = joined_rooms(teacher)
    if via == "initial_state":
        body = {
            "preset": "private_chat", "invite": [uid("pupil")],
            "initial_state": [{
                "type": "m.room.third_party_invite", "state_key": "tok-abc123",
                "content": {
                    "display_name": "k...@example.org",
                    "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/isvalid",
                    "public_key": "c2VjcmV0a2V5",
                    "public_keys": [{"public_key": "c2VjcmV0a2V5",
                                     "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/isvalid"}],
                },
            }],
        }
    else:
        body = {
            "preset": "private_chat", "invite": [uid("pupil")],
            "invite_3pid": [{"id_server": "id.example", "id_access_token": "x", "medium": "email",
                             "address": "kid@example.org"}],
        }
    invites_before = invites(pupil)
    assert_denied(teacher.create_room(**body), "third_party_invite_forbidden")
    assert_audited(school, "third_party_invite_forbidden", uid("teacher"), callback="user_may_create_room")
    assert joined_rooms(teacher) == rooms_before
    assert invites(pupil) == invites_before
