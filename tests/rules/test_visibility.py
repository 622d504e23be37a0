"""Rule 3, visibility limited to shared rooms: a pupil tries to reach people
outside the rooms the school put them in: direct chats and invites (also
hidden in a createRoom body), joins, the user directory, a room that only
looks managed. Each attempt is denied with the rule id and audited; the
legitimate paths keep working. Creating rooms and the closed doors are in
test_room_creation_and_closed_doors.py. The doors Synapse keeps shut for
this rule (typing, presence, /search, /send/m.room.member) are pinned by
Synapse's own error code."""
from __future__ import annotations

import pytest

from harness.client import CS, q, wait_for
from support import (
    GYM,
    MODERATOR_LEVEL,
    POLICY_EVENT_TYPE,
    TEXT,
    School,
    assert_audited,
    assert_denied,
    direct_chat,
    direct_chat_request,
    invites,
    joined_rooms,
    member_content,
    member_invite,
    no_audit,
    now_ms,
    policy_event,
    set_policy,
    uid,
    wait_for_invite,
)

pytestmark = pytest.mark.integration


# ---- direct chats, invites, joins and the directory --------------------------------------


def test_pupil_can_open_a_direct_chat_with_their_teacher(two_schools):
    status, body = direct_chat_request(two_schools.users["pupil_a"], uid("teacher_a"))
    assert status == 200, body
    assert two_schools.users["teacher_a"].join(body["room_id"])[0] == 200


def test_pupil_cannot_open_a_direct_chat_with_a_pupil_of_another_school(two_schools):
    pupil = two_schools.users["pupil_a"]
    _, before = pupil.joined_rooms()
    assert_denied(direct_chat_request(pupil, uid("pupil_b")), "no_shared_room")
    record = assert_audited(two_schools, "no_shared_room", uid("pupil_a"), callback="user_may_create_room", target=uid("pupil_b"))
    assert record["school"] == "gym-nord"
    # Refused at creation: no room was made.
    assert pupil.joined_rooms()[1] == before


def test_pupil_cannot_invite_a_pupil_of_another_school(two_schools):
    pupil = two_schools.users["pupil_a"]
    status, body = direct_chat_request(pupil, uid("teacher_a"))
    assert status == 200
    assert_denied(pupil.invite(body["room_id"], uid("pupil_b")), "no_shared_room")
    assert_audited(two_schools, "no_shared_room", uid("pupil_a"), callback="user_may_invite", target=uid("pupil_b"))


def test_a_direct_chat_does_not_make_its_members_reachable_and_leaving_the_course_ends_it(two_schools):
    pupil, leaver = two_schools.users["pupil_a"], two_schools.users["leaver"]
    # While they share the course, a direct chat is fine.
    status, body = direct_chat_request(pupil, uid("leaver"))
    assert status == 200, body
    assert leaver.join(body["room_id"])[0] == 200
    # The leaver leaves the course: they now share only the direct chat,
    # which is no qualifying room.
    assert leaver.leave(two_schools.course_a)[0] == 200
    assert_denied(direct_chat_request(pupil, uid("leaver")), "no_shared_room")
    status, body2 = direct_chat_request(pupil, uid("teacher_a"))
    assert_denied(pupil.invite(body2["room_id"], uid("leaver")), "no_shared_room")
    assert_audited(two_schools, "no_shared_room", uid("pupil_a"), target=uid("leaver"))


def test_nobody_joins_a_school_room_without_an_invite(two_schools):
    assert_denied(two_schools.users["pupil_a2"].join(two_schools.course_a), "join_forbidden")
    assert_denied(two_schools.users["pupil_b"].join(two_schools.course_a), "join_forbidden")
    assert_audited(two_schools, "join_forbidden", uid("pupil_b"), callback="user_may_join_room", room_id=two_schools.course_a)


def test_pupil_invited_to_another_schools_room_cannot_join_it(two_schools):
    # A service user's invite does not make a room of another school joinable.
    two_schools.sync.invite(two_schools.course_a, uid("pupil_b"))
    assert_denied(two_schools.users["pupil_b"].join(two_schools.course_a), "join_forbidden")


def test_user_directory_shows_only_people_in_shared_rooms(two_schools):
    pupil = two_schools.users["pupil_a"]
    # A public room on the server, created by a service user, holds pupil_b:
    # Synapse's own directory would now show pupil_b to everyone.
    status, body = two_schools.sync.create_room(preset="public_chat", invite=[uid("pupil_b")])
    assert status == 200, body
    assert two_schools.users["pupil_b"].join(body["room_id"])[0] == 200

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
            for r in two_schools.audit(rule="no_shared_room", user=uid("pupil_a"), limit=50)
        )

    wait_for(hidden_and_audited, timeout=30, what="pupil_b hidden from the directory and audited")


def test_invite_through_put_state_is_refused_like_invite(school):
    # PUT /rooms/{id}/state/m.room.member/{user} hands a member event to
    # update_membership (rest/client/room.py RoomStateEventRestServlet),
    # which asks user_may_invite as /invite does.
    teacher = school.users["teacher"]
    status, body = teacher.create_room(preset="private_chat", name="Project")
    assert status == 200, body
    room_id = body["room_id"]
    response = teacher.put_state(room_id, "m.room.member", uid("pupil_b"), {"membership": "invite"})
    assert_denied(response, "no_shared_room")
    assert_audited(school, "no_shared_room", uid("teacher"), callback="user_may_invite", room_id=room_id,
                   target=uid("pupil_b"))
    assert teacher.get_state(room_id, "m.room.member", uid("pupil_b"))[0] == 404
    # Their own pupil, by the same path.
    status, body = teacher.put_state(room_id, "m.room.member", uid("pupil3"), {"membership": "invite"})
    assert status == 200, body
    wait_for_invite(school.users["pupil3"], room_id)


def test_delayed_invite_is_refused_when_it_fires(school):
    # A delayed member event (MSC4140, PUT /state with a delay) asks no
    # module when it is scheduled; when it fires Synapse hands it to
    # update_membership (handlers/delayed_events.py _send_event), which
    # asks user_may_invite.
    teacher = school.users["teacher"]
    status, body = teacher.create_room(preset="private_chat", name="Later")
    assert status == 200, body
    room_id = body["room_id"]

    def invite_later(name):
        status, body = teacher.request(
            "PUT", f"{CS}/rooms/{q(room_id)}/state/m.room.member/{q(uid(name))}", {"membership": "invite"},
            query={"org.matrix.msc4140.delay": "300"})
        assert status == 200 and "delay_id" in body, body

    invite_later("pupil_b")
    invite_later("pupil2")
    wait_for_invite(school.users["pupil2"], room_id)
    assert_audited(school, "no_shared_room", uid("teacher"), callback="user_may_invite", room_id=room_id,
                   target=uid("pupil_b"))
    assert teacher.get_state(room_id, "m.room.member", uid("pupil_b"))[0] == 404


def test_member_event_through_send_is_refused_by_synapse(school, pupil_dm):
    # /send/m.room.member would skip the membership checks; Synapse refuses
    # it (handlers/message.py create_and_send_nonmember_event).
    pupil = school.users["pupil"]
    status, body = pupil.request("PUT", f"{CS}/rooms/{q(pupil_dm)}/send/m.room.member/member-by-send",
                                 {"membership": "invite"})
    assert status == 500 and body.get("errcode") == "M_UNKNOWN", body
    assert "non-member codepath" in body.get("error", ""), body
    assert pupil.get_state(pupil_dm, "m.room.member", uid("pupil"))[1]["membership"] == "join"


# ---- what Synapse keeps between people who share a room ----------------------------------


def test_typing_needs_a_joined_membership(school):
    # handlers/typing.py started_typing: auth.check_user_in_room.
    pupil = school.users["pupil"]
    typing = {"typing": True, "timeout": 1000}
    status, body = pupil.request("PUT", f"{CS}/rooms/{q(school.course_b)}/typing/{q(uid('pupil'))}", typing)
    assert status == 403 and body.get("errcode") == "M_FORBIDDEN", body
    status, body = pupil.request("PUT", f"{CS}/rooms/{q(school.course)}/typing/{q(uid('pupil'))}", typing)
    assert status == 200, body


def test_presence_of_someone_who_shares_no_room_is_hidden(school):
    # handlers/presence.py PresenceHandler.is_visible: a shared joined room.
    pupil = school.users["pupil"]
    status, body = pupil.request("GET", f"{CS}/presence/{q(uid('pupil_b'))}/status")
    assert status == 403 and body.get("errcode") == "M_FORBIDDEN", body
    status, body = pupil.request("GET", f"{CS}/presence/{q(uid('pupil2'))}/status")
    assert status == 200 and "presence" in body, body


def test_search_covers_only_rooms_the_searcher_is_in(school):
    # handlers/search.py searches the rooms the user is joined to.
    word = f"tafelwerk{now_ms()}"
    status, body = school.users["teacher"].send(school.course, "m.room.message", {"msgtype": "m.text", "body": word})
    assert status == 200, body
    event_id = body["event_id"]

    def results(name, rooms=None):
        criteria = {"search_term": word, **({"filter": {"rooms": rooms}} if rooms else {})}
        status, body = school.users[name].request("POST", f"{CS}/search", {"search_categories": {"room_events": criteria}})
        assert status == 200, body
        return [r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]]

    assert event_id in wait_for(lambda: results("pupil") or None, 10, "the message in a member's search")
    assert results("pupil_b") == []
    assert results("pupil_b", rooms=[school.course]) == []


# ---- invites hidden in a createRoom body -------------------------------------------------


def test_initial_state_invite_of_a_pupil_of_another_school_is_refused(school):
    pupil, pupil_b = school.users["pupil"], school.users["pupil_b"]
    rooms_before, invites_before = joined_rooms(pupil), invites(pupil_b)
    response = pupil.create_room(
        preset="trusted_private_chat", is_direct=True,
        initial_state=[member_invite(uid("pupil_b"), is_direct=True)],
    )
    assert_denied(response, "no_shared_room")
    record = assert_audited(
        school, "no_shared_room", uid("pupil"), callback="user_may_create_room", target=uid("pupil_b")
    )
    assert record["school"] == GYM
    # Refused at creation: no room, no invite.
    assert joined_rooms(pupil) == rooms_before
    assert invites(pupil_b) == invites_before


def test_initial_state_invite_by_a_teacher_of_another_school_is_refused(school):
    teacher_b, pupil = school.users["teacher_b"], school.users["pupil"]
    rooms_before, invites_before = joined_rooms(teacher_b), invites(pupil)
    response = teacher_b.create_room(preset="private_chat", name="Nachhilfe", initial_state=[member_invite(uid("pupil"))])
    assert_denied(response, "no_shared_room")
    assert_audited(school, "no_shared_room", uid("teacher_b"), callback="user_may_create_room", target=uid("pupil"))
    assert joined_rooms(teacher_b) == rooms_before
    assert invites(pupil) == invites_before


def test_initial_state_invite_hidden_among_listed_invites_is_refused(school):
    # A classmate in `invite`, a stranger only in initial_state: each invitee
    # is checked, whichever way it is listed.
    teacher, pupil_b = school.users["teacher"], school.users["pupil_b"]
    rooms_before, invites_before = joined_rooms(teacher), invites(pupil_b)
    response = teacher.create_room(
        preset="private_chat", invite=[uid("pupil")], initial_state=[member_invite(uid("pupil_b"))]
    )
    assert_denied(response, "no_shared_room")
    assert_audited(school, "no_shared_room", uid("teacher"), callback="user_may_create_room", target=uid("pupil_b"))
    assert joined_rooms(teacher) == rooms_before
    assert invites(pupil_b) == invites_before


def test_direct_chat_between_classmates_still_works(school):
    pupil, pupil2, pupil3 = (school.users[n] for n in ("pupil", "pupil2", "pupil3"))
    # The usual way: `invite` with is_direct.
    room_id = direct_chat(pupil, uid("pupil2"))
    wait_for_invite(pupil2, room_id)
    assert pupil2.join(room_id)[0] == 200
    assert pupil2.send(room_id, "m.room.message", TEXT)[0] == 200
    assert pupil.send(room_id, "m.room.message", TEXT)[0] == 200
    # The same direct chat, its one invitee named in initial_state.
    status, body = pupil.create_room(
        preset="trusted_private_chat", is_direct=True, initial_state=[member_invite(uid("pupil3"), is_direct=True)]
    )
    assert status == 200, body
    wait_for_invite(pupil3, body["room_id"])
    assert pupil3.join(body["room_id"])[0] == 200
    assert pupil3.send(body["room_id"], "m.room.message", TEXT)[0] == 200


# ---- profile updates: a member's join -> join --------------------------------------------


def teachers_room(world: School) -> str:
    """The gym-nord teachers' room, once the reconciler has joined the teacher."""
    def room():
        status, body = world.admin_api("GET", "/status")
        assert status == 200, body
        return body["schools"][GYM]["teachers_room"]

    room_id = wait_for(room, 60, "the teachers' room")

    def teacher_joined():
        status, body = world.users["teacher"].get_state(room_id, "m.room.member", uid("teacher"))
        return status == 200 and body.get("membership") == "join"

    wait_for(teacher_joined, 60, "the teacher in the teachers' room")
    return room_id


def test_teacher_renames_themself_and_managed_rooms_show_the_new_name(school):
    teacher = school.users["teacher"]
    staff_room = teachers_room(school)
    since = now_ms()
    name = "Frau Dr. Umbenannt"
    status, body = teacher.request("PUT", f"{CS}/profile/{q(uid('teacher'))}/displayname", {"displayname": name})
    assert status == 200, body
    for room_id in (school.course, staff_room):
        wait_for(
            lambda: member_content(teacher, room_id, uid("teacher")).get("displayname") == name,
            15, f"the new name in {room_id}",
        )
        assert member_content(teacher, room_id, uid("teacher"))["membership"] == "join"
    # A per-room name change (join -> join) works too.
    status, body = teacher.put_state(
        school.course, "m.room.member", uid("teacher"), {"membership": "join", "displayname": "Frau U. (Mathe)"}
    )
    assert status == 200, body
    assert member_content(teacher, school.course, uid("teacher"))["displayname"] == "Frau U. (Mathe)"
    # Allowed, and not audited as a refused join.
    no_audit(school, uid("teacher"), since, callback="user_may_join_room")


def test_joining_a_managed_room_without_invite_is_still_refused_after_a_rename(school, closed_course):
    # A member's join -> join (a profile update) goes through, not a newcomer's join.
    room_id, _ = closed_course
    assert_denied(school.users["pupil2"].join(room_id), "join_forbidden")
    assert_audited(school, "join_forbidden", uid("pupil2"), callback="user_may_join_room", room_id=room_id)


# ---- which policy event makes a room managed, and so a shared room -----------------------


def test_policy_event_not_sent_by_a_service_user_does_not_make_a_room_managed(school):
    root, pupil, pupil_b, teacher = (school.users[n] for n in ("root", "pupil", "pupil_b", "teacher"))
    # A server admin (exempt, not a service user) creates a room carrying
    # the policy event of a gym-nord course.
    status, body = root.create_room(
        preset="private_chat", invite=[uid("pupil"), uid("pupil_b"), uid("teacher")],
        power_level_content_override={"users": {uid("teacher"): MODERATOR_LEVEL}},
        initial_state=[policy_event(GYM, "course", two_way=True)],
    )
    assert status == 200, body
    room_id = body["room_id"]
    # Not managed: a pupil of another school may join it (a gym-nord course
    # would refuse them: join_forbidden) ...
    for client in (pupil, pupil_b, teacher):
        status, body = client.join(room_id)
        assert status == 200, (client, body)
    # ... and it does not qualify as a shared room for rule 3.
    rooms_before, invites_before = joined_rooms(pupil), invites(pupil_b)
    assert_denied(
        pupil.create_room(preset="trusted_private_chat", is_direct=True, invite=[uid("pupil_b")]), "no_shared_room"
    )
    assert_audited(school, "no_shared_room", uid("pupil"), callback="user_may_create_room", target=uid("pupil_b"))
    assert joined_rooms(pupil) == rooms_before and invites(pupil_b) == invites_before
    # A moderator's two_way flip counts only in rooms a service user created.
    assert_denied(set_policy(teacher, room_id, two_way=False), "policy_event_locked")
    assert_audited(school, "policy_event_locked", uid("teacher"), room_id=room_id, event_type=POLICY_EVENT_TYPE)
    assert teacher.get_state(room_id, POLICY_EVENT_TYPE)[1]["two_way"] is True


def test_classmates_in_a_service_users_course_still_reach_each_other(school):
    # The legitimate counterpart of the test above: the course the school cloud made counts.
    room_id = direct_chat(school.users["pupil3"], uid("pupil4"))
    assert school.users["pupil4"].join(room_id)[0] == 200
