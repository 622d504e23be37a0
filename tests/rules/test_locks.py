"""Rule 2's locks: nobody but service users raises a pupil's power level,
lowers `events_default` in a one-way room, or changes the policy event
(a moderator may only flip `two_way`); no room becomes managed, or stops
being managed, by anyone else's hand."""
import pytest

from synapse.config.server import DEFAULT_ROOM_VERSION

from harness.client import CS, q
from support import (
    DEFAULT_VERSION_GIVES_CREATORS_POWER,
    GYM,
    MODERATOR_LEVEL,
    POLICY_EVENT_TYPE,
    TEXT,
    assert_audited,
    assert_denied,
    policy_event,
    private_room,
    uid,
    wait_for_state,
)

pytestmark = pytest.mark.integration


# ---- power levels ------------------------------------------------------------------------


def test_pupil_cannot_raise_own_power_level(one_way_school, course):
    pupil = one_way_school.users["pupil"]
    _, levels = pupil.get_state(course, "m.room.power_levels")
    levels["users"][uid("pupil")] = 100
    assert_denied(pupil.put_state(course, "m.room.power_levels", "", levels), "power_levels_locked")
    assert_audited(one_way_school, "power_levels_locked", uid("pupil"), room_id=course, event_type="m.room.power_levels")


@pytest.mark.parametrize("who", ["pupil", "teacher"])
def test_nobody_but_service_users_lowers_events_default_in_one_way_room(one_way_school, course, who):
    client = one_way_school.users[who]
    _, levels = client.get_state(course, "m.room.power_levels")
    levels["events_default"] = 0
    assert_denied(client.put_state(course, "m.room.power_levels", "", levels), "power_levels_locked")
    assert_audited(one_way_school, "power_levels_locked", uid(who), room_id=course)


def test_teacher_cannot_promote_a_pupil(one_way_school, course):
    teacher = one_way_school.users["teacher"]
    _, levels = teacher.get_state(course, "m.room.power_levels")
    levels["users"][uid("pupil")] = MODERATOR_LEVEL
    assert_denied(teacher.put_state(course, "m.room.power_levels", "", levels), "power_levels_locked")


# ---- the policy event --------------------------------------------------------------------


@pytest.mark.parametrize("action", ["kick", "ban"])
def test_pupil_cannot_kick_or_ban_but_a_moderator_can(one_way_school, course, action):
    # Synapse's event auth (event_auth.py _is_membership_change_allowed):
    # the power levels' `kick` and `ban` (50), which pupils (0) do not have.
    pupil, teacher = one_way_school.users["pupil"], one_way_school.users["teacher"]
    path = f"{CS}/rooms/{q(course)}/{action}"
    status, body = pupil.request("POST", path, {"user_id": uid("teacher")})
    assert status == 403 and body.get("errcode") == "M_FORBIDDEN", body
    assert "school_policy" not in body, body  # Synapse's own refusal
    assert teacher.get_state(course, "m.room.member", uid("teacher"))[1]["membership"] == "join"
    status, body = teacher.request("POST", path, {"user_id": uid("pupil")})
    assert status == 200, body
    assert teacher.get_state(course, "m.room.member", uid("pupil"))[1]["membership"] == ("leave" if action == "kick" else "ban")


def test_pupil_cannot_flip_or_delete_the_policy_event(one_way_school, course):
    pupil = one_way_school.users["pupil"]
    open_policy = {"school": "gym-nord", "kind": "course", "two_way": True}
    assert_denied(pupil.put_state(course, POLICY_EVENT_TYPE, "", open_policy), "policy_event_locked")
    assert_denied(pupil.put_state(course, POLICY_EVENT_TYPE, "", {}), "policy_event_locked")
    assert_audited(one_way_school, "policy_event_locked", uid("pupil"), room_id=course, event_type=POLICY_EVENT_TYPE)
    status, policy = pupil.get_state(course, POLICY_EVENT_TYPE)
    assert policy == {"school": "gym-nord", "kind": "course", "two_way": False}


@pytest.mark.parametrize(
    "policy",
    [
        {"school": "gs-sued", "kind": "course", "two_way": False},
        {"school": "gym-nord", "kind": "teachers", "two_way": False},
        {"school": "gym-nord", "kind": "course", "two_way": False, "note": "mine"},
    ],
)
def test_teacher_cannot_change_school_kind_or_add_keys(one_way_school, course, policy):
    assert_denied(one_way_school.users["teacher"].put_state(course, POLICY_EVENT_TYPE, "", policy), "policy_event_locked")


def test_pupil_cannot_create_a_room_carrying_the_policy_event(one_way_school):
    status_body = one_way_school.users["teacher"].create_room(
        preset="private_chat",
        initial_state=[{"type": POLICY_EVENT_TYPE, "state_key": "", "content": {"school": "gym-nord", "kind": "course", "two_way": True}}],
    )
    assert_denied(status_body, "policy_event_locked")
    assert_audited(one_way_school, "policy_event_locked", uid("teacher"), callback="user_may_create_room")


def test_pupil_cannot_mark_an_unmanaged_room_as_managed(one_way_school):
    teacher = one_way_school.users["teacher"]
    status, body = teacher.create_room(preset="private_chat")
    assert status == 200
    assert_denied(
        teacher.put_state(body["room_id"], POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "teachers", "two_way": True}),
        "policy_event_locked",
    )


def test_pupil_cannot_upgrade_the_course_away_from_its_policy(one_way_school, course):
    # Synapse's own auth refuses the tombstone (level 100) before any module
    # is asked, so this denial carries Synapse's error, not a rule id.
    status, body = one_way_school.users["pupil"].upgrade(course, "10")
    assert status == 403, body
    status, policy = one_way_school.users["pupil"].get_state(course, POLICY_EVENT_TYPE)
    assert policy["two_way"] is False


def test_only_a_service_user_upgrades_a_managed_room_and_the_policy_follows(school):
    # Synapse copies no policy event into the upgraded room: anyone else's
    # upgrade would leave it unmanaged (threat model R16). A server admin who
    # holds the power in the room is refused like anyone (Synapse asks
    # user_may_create_room at an upgrade, admins too).
    root = school.users["root"]
    users = {uid("root"): 100, uid("teacher"): MODERATOR_LEVEL}
    if not DEFAULT_VERSION_GIVES_CREATORS_POWER:
        users[uid("sync")] = 100
    status, body = school.sync.create_room(
        preset="private_chat", invite=[uid("root")], initial_state=[policy_event(GYM)],
        power_level_content_override={"users": users, "events_default": MODERATOR_LEVEL},
    )
    assert status == 200, body
    room_id = body["room_id"]
    assert root.join(room_id)[0] == 200
    assert_denied(root.upgrade(room_id, DEFAULT_ROOM_VERSION), "policy_event_locked")
    assert_audited(school, "policy_event_locked", uid("root"), callback="user_may_create_room", room_id=room_id)
    assert "m.room.tombstone" not in {e["type"] for e in school.sync.request("GET", f"{CS}/rooms/{q(room_id)}/state")[1]}
    # The service user may: the new room gets the policy within a second,
    # and with it the one-way power levels.
    status, body = school.sync.upgrade(room_id, DEFAULT_ROOM_VERSION)
    assert status == 200, body
    new_room = body["replacement_room"]
    wait_for_state(school.sync, new_room, POLICY_EVENT_TYPE, lambda c: c == policy_event(GYM)["content"], timeout=2)
    wait_for_state(school.sync, new_room, "m.room.power_levels",
                   lambda pl: pl.get("events_default") == MODERATOR_LEVEL, timeout=5)


def test_pupil_cannot_edit_their_way_into_a_managed_room_with_the_policy_event(two_schools):
    teacher = two_schools.users["teacher_a"]
    assert_denied(
        teacher.put_state(private_room(teacher), POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "announcement"}),
        "policy_event_locked",
    )


def test_moderator_cannot_redact_the_policy_event(school):
    # A redacted policy event is an empty one: the room would be unmanaged
    # (no one-way, no locked power levels, no rule 3), and Synapse lets any
    # moderator redact state.
    teacher = school.users["teacher"]
    room_id = school.managed_room(GYM, invite=["teacher"], moderators=["teacher"])
    assert teacher.join(room_id)[0] == 200
    status, state = school.sync.request("GET", f"{CS}/rooms/{q(room_id)}/state")
    assert status == 200, state
    policy_event_id = next(e["event_id"] for e in state if e["type"] == POLICY_EVENT_TYPE)
    assert_denied(teacher.redact(room_id, policy_event_id), "policy_event_locked")
    assert_audited(school, "policy_event_locked", uid("teacher"), room_id=room_id, event_type="m.room.redaction")
    assert teacher.get_state(room_id, POLICY_EVENT_TYPE)[1]["school"] == GYM
    # Other events stay the moderator's to redact.
    status, body = teacher.send(room_id, "m.room.message", TEXT)
    assert status == 200, body
    assert teacher.redact(room_id, body["event_id"])[0] == 200
