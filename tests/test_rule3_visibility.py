"""Rule 3, visibility limited to shared rooms: a pupil of school A tries to
reach people outside the rooms the school put them in. Each attempt is
denied with the rule id and audited; the legitimate paths keep working."""
import pytest

from harness.client import CS, q, wait_for
from support import (
    POLICY_EVENT_TYPE,
    School,
    assert_audited,
    assert_denied,
    base_config,
    membership,
    uid,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("policy") / "store")
    config["schools"]["rs-west"] = {"messenger": True}
    world = School(module_synapse_factory(config))
    world.register("sync")
    for name in ("teacher_a", "pupil_a", "pupil_a2", "leaver", "pupil_b"):
        world.register(name)
    world.put_roster("teacher_a", membership("gym-nord", "teacher"))
    for name in ("pupil_a", "pupil_a2", "leaver"):
        world.put_roster(name, membership("gym-nord", "student"))
    world.put_roster("pupil_b", membership("rs-west", "student"))
    world.course_a = world.managed_room("gym-nord", invite=["teacher_a", "pupil_a", "leaver"], two_way=True)
    for name in ("teacher_a", "pupil_a", "leaver"):
        assert world.users[name].join(world.course_a)[0] == 200
    world.course_b = world.managed_room("rs-west", invite=["pupil_b"], two_way=True)
    assert world.users["pupil_b"].join(world.course_b)[0] == 200
    return world


def direct_chat(client, invitee):
    return client.create_room(preset="trusted_private_chat", is_direct=True, invite=[invitee])


def test_pupil_can_open_a_direct_chat_with_their_teacher(school):
    status, body = direct_chat(school.users["pupil_a"], uid("teacher_a"))
    assert status == 200, body
    assert school.users["teacher_a"].join(body["room_id"])[0] == 200


def test_pupil_cannot_open_a_direct_chat_with_a_pupil_of_another_school(school):
    pupil = school.users["pupil_a"]
    _, before = pupil.joined_rooms()
    assert_denied(direct_chat(pupil, uid("pupil_b")), "no_shared_room")
    record = assert_audited(school, "no_shared_room", uid("pupil_a"), callback="user_may_create_room", target=uid("pupil_b"))
    assert record["school"] == "gym-nord"
    # Refused at creation: no room was made.
    assert pupil.joined_rooms()[1] == before


def test_pupil_cannot_invite_a_pupil_of_another_school(school):
    pupil = school.users["pupil_a"]
    status, body = direct_chat(pupil, uid("teacher_a"))
    assert status == 200
    assert_denied(pupil.invite(body["room_id"], uid("pupil_b")), "no_shared_room")
    assert_audited(school, "no_shared_room", uid("pupil_a"), callback="user_may_invite", target=uid("pupil_b"))


def test_a_direct_chat_does_not_make_its_members_reachable_and_leaving_the_course_ends_it(school):
    pupil, leaver = school.users["pupil_a"], school.users["leaver"]
    # While they share the course, a direct chat is fine.
    status, body = direct_chat(pupil, uid("leaver"))
    assert status == 200, body
    assert leaver.join(body["room_id"])[0] == 200
    # The leaver leaves the course: they now share only the direct chat,
    # which is no qualifying room.
    assert leaver.leave(school.course_a)[0] == 200
    assert_denied(direct_chat(pupil, uid("leaver")), "no_shared_room")
    status, body2 = direct_chat(pupil, uid("teacher_a"))
    assert_denied(pupil.invite(body2["room_id"], uid("leaver")), "no_shared_room")
    assert_audited(school, "no_shared_room", uid("pupil_a"), target=uid("leaver"))


def test_pupil_cannot_create_a_group_room_but_a_teacher_can(school):
    assert_denied(school.users["pupil_a"].create_room(preset="private_chat", name="gang"), "room_creation_forbidden")
    assert_audited(school, "room_creation_forbidden", uid("pupil_a"), callback="user_may_create_room")
    status, body = school.users["teacher_a"].create_room(preset="private_chat", name="staff")
    assert status == 200, body


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
def test_room_cannot_be_created_with_an_open_door(school, body, rule):
    assert_denied(school.users["teacher_a"].create_room(**body), rule)
    assert_audited(school, rule, uid("teacher_a"), callback="user_may_create_room")


def test_new_rooms_have_guest_access_closed(school):
    status, body = school.users["teacher_a"].create_room(preset="private_chat")
    assert status == 200
    assert school.users["teacher_a"].get_state(body["room_id"], "m.room.guest_access")[1] == {"guest_access": "forbidden"}


def teacher_room(school):
    status, body = school.users["teacher_a"].create_room(preset="private_chat")
    assert status == 200, body
    return body["room_id"]


def test_room_cannot_be_made_public_later(school):
    room_id = teacher_room(school)
    teacher = school.users["teacher_a"]
    assert_denied(teacher.put_state(room_id, "m.room.join_rules", "", {"join_rule": "public"}), "public_room_forbidden")
    assert_denied(teacher.put_state(room_id, "m.room.guest_access", "", {"guest_access": "can_join"}), "guest_access_forbidden")
    assert_audited(school, "public_room_forbidden", uid("teacher_a"), callback="check_event_for_spam", room_id=room_id)
    assert_audited(school, "guest_access_forbidden", uid("teacher_a"), room_id=room_id)
    # Closing doors stays possible.
    assert teacher.put_state(room_id, "m.room.join_rules", "", {"join_rule": "invite"})[0] == 200


def test_room_cannot_be_published_in_the_room_directory(school):
    room_id = teacher_room(school)
    assert_denied(school.users["teacher_a"].set_visibility(room_id, "public"), "publish_forbidden")
    assert_audited(school, "publish_forbidden", uid("teacher_a"), callback="user_may_publish_room", room_id=room_id)


def test_room_alias_cannot_be_created(school):
    room_id = teacher_room(school)
    alias = "#hideout:school.test"
    assert_denied(school.users["teacher_a"].put_alias(alias, room_id), "alias_forbidden")
    assert_audited(school, "alias_forbidden", uid("teacher_a"), callback="user_may_create_room_alias", room_id=alias)


def test_email_invite_is_refused(school):
    room_id = teacher_room(school)
    response = school.users["teacher_a"].request(
        "POST", f"{CS}/rooms/{q(room_id)}/invite",
        {"id_server": "id.example", "id_access_token": "x", "medium": "email", "address": "kid@example.org"},
    )
    assert_denied(response, "third_party_invite_forbidden")
    assert_audited(school, "third_party_invite_forbidden", uid("teacher_a"), callback="user_may_send_3pid_invite")


def test_planted_third_party_invite_is_refused(school):
    # An m.room.third_party_invite state event names a key; whoever signs
    # with it could join through /join's third_party_signed, an invite
    # Synapse makes without asking user_may_invite.
    room_id = teacher_room(school)
    teacher = school.users["teacher_a"]
    content = {"display_name": "k...@e...", "key_validity_url": "https://id.example/isvalid",
               "public_key": "dGhpc2lzbm90YXJlYWxrZXk", "public_keys": [{"public_key": "dGhpc2lzbm90YXJlYWxrZXk"}]}
    assert_denied(teacher.put_state(room_id, "m.room.third_party_invite", "planted", content),
                  "third_party_invite_forbidden")
    assert_audited(school, "third_party_invite_forbidden", uid("teacher_a"), callback="check_event_for_spam",
                   room_id=room_id, event_type="m.room.third_party_invite")
    status, _ = teacher.get_state(room_id, "m.room.third_party_invite", "planted")
    assert status == 404


def test_nobody_joins_a_school_room_without_an_invite(school):
    assert_denied(school.users["pupil_a2"].join(school.course_a), "join_forbidden")
    assert_denied(school.users["pupil_b"].join(school.course_a), "join_forbidden")
    assert_audited(school, "join_forbidden", uid("pupil_b"), callback="user_may_join_room", room_id=school.course_a)


def test_pupil_invited_to_another_schools_room_cannot_join_it(school):
    # A service user's invite does not make a room of another school joinable.
    school.sync.invite(school.course_a, uid("pupil_b"))
    assert_denied(school.users["pupil_b"].join(school.course_a), "join_forbidden")


def test_user_directory_shows_only_people_in_shared_rooms(school):
    pupil = school.users["pupil_a"]
    # A public room on the server, created by a service user, holds pupil_b:
    # Synapse's own directory would now show pupil_b to everyone.
    status, body = school.sync.create_room(preset="public_chat", invite=[uid("pupil_b")])
    assert status == 200, body
    assert school.users["pupil_b"].join(body["room_id"])[0] == 200

    def found(term):
        status, result = pupil.user_directory_search(term)
        assert status == 200, result
        return {r["user_id"] for r in result["results"]}

    # Synapse fills its directory tables in the background: wait for the
    # teacher to show up, and for Synapse to offer pupil_b (whom the module
    # then hides and audits), never showing pupil_b meanwhile.
    wait_for(lambda: uid("teacher_a") in found("teacher_a"), timeout=30, what="teacher_a in the directory")

    def hidden_and_audited():
        assert uid("pupil_b") not in found("pupil_b")
        return any(
            r["actor"] == uid("pupil_a") and r["target"] == uid("pupil_b") and r["callback"] == "check_username_for_spam"
            for r in school.audit(rule="no_shared_room", user=uid("pupil_a"), limit=50)
        )

    wait_for(hidden_and_audited, timeout=30, what="pupil_b hidden from the directory and audited")


def test_pupil_cannot_edit_their_way_into_a_managed_room_with_the_policy_event(school):
    assert_denied(
        school.users["teacher_a"].put_state(teacher_room(school), POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "announcement"}),
        "policy_event_locked",
    )
