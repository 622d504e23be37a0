"""Rule 2, one-way channels: a pupil tries every way around it. Each attempt
is denied with the rule id and audited; the legitimate paths keep working."""
import pytest

from support import (
    MODERATOR_LEVEL,
    POLICY_EVENT_TYPE,
    School,
    assert_audited,
    assert_denied,
    base_config,
    membership,
    uid,
    wait_for_state,
)

pytestmark = pytest.mark.integration

TEXT = {"msgtype": "m.text", "body": "hello"}


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("policy") / "store", one_way_allowed_events=["m.reaction"])
    world = School(module_synapse_factory(config))
    world.register("sync")
    for name in ("teacher", "pupil", "pupil2"):
        world.register(name)
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("pupil", membership("gym-nord", "student"))
    world.put_roster("pupil2", membership("gym-nord", "student"))
    return world


@pytest.fixture
def course(school):
    room_id = school.managed_room("gym-nord", invite=["teacher", "pupil"], moderators=["teacher"])
    assert school.users["teacher"].join(room_id)[0] == 200
    assert school.users["pupil"].join(room_id)[0] == 200
    return room_id


def test_teacher_posts_in_one_way_course(school, course):
    status, body = school.users["teacher"].send(course, "m.room.message", TEXT)
    assert status == 200, body


@pytest.mark.parametrize(
    "event_type, content",
    [
        ("m.room.message", TEXT),
        ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "k", "session_id": "s", "device_id": "D"}),
        ("m.sticker", {"body": "cat", "url": "mxc://school.test/cat", "info": {}}),
        ("m.poll.start", {"m.poll": {"question": {"m.text": [{"body": "?"}]}, "answers": []}}),
        ("org.matrix.msc3381.poll.start", {"org.matrix.msc3381.poll.start": {"question": {"body": "?"}, "answers": []}}),
        ("m.call.invite", {"call_id": "c1", "version": "1", "lifetime": 60000, "offer": {"type": "offer", "sdp": "v=0"}}),
        ("io.pupil.sneaky", {"body": "custom type"}),
    ],
)
def test_pupil_cannot_post_any_content_event(school, course, event_type, content):
    assert_denied(school.users["pupil"].send(course, event_type, content), "one_way")
    record = assert_audited(school, "one_way", uid("pupil"), room_id=course, event_type=event_type)
    assert record["callback"] == "check_event_for_spam" and record["school"] == "gym-nord"


def test_pupil_cannot_reply_in_a_thread_or_edit(school, course):
    status, body = school.users["teacher"].send(course, "m.room.message", TEXT)
    root = body["event_id"]
    thread_reply = {**TEXT, "m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    edit = {**TEXT, "m.new_content": TEXT, "m.relates_to": {"rel_type": "m.replace", "event_id": root}}
    assert_denied(school.users["pupil"].send(course, "m.room.message", thread_reply), "one_way")
    assert_denied(school.users["pupil"].send(course, "m.room.message", edit), "one_way")


def test_pupil_cannot_add_a_widget(school, course):
    widget = {"type": "m.custom", "url": "https://example.invalid", "name": "w"}
    assert_denied(school.users["pupil"].put_state(course, "im.vector.modular.widgets", "w1", widget), "one_way")


def test_one_way_room_created_with_policy_gets_matching_power_levels(school, course):
    _, levels = school.users["pupil"].get_state(course, "m.room.power_levels")
    assert levels["events_default"] == MODERATOR_LEVEL
    assert levels["events"]["m.reaction"] == 0 and levels["events"]["m.room.redaction"] == 0


def test_allow_listed_reaction_goes_through(school, course):
    status, body = school.users["teacher"].send(course, "m.room.message", TEXT)
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": body["event_id"], "key": "👍"}}
    status, body = school.users["pupil"].send(course, "m.reaction", reaction)
    assert status == 200, body


def test_pupil_cannot_raise_own_power_level(school, course):
    pupil = school.users["pupil"]
    _, levels = pupil.get_state(course, "m.room.power_levels")
    levels["users"][uid("pupil")] = 100
    assert_denied(pupil.put_state(course, "m.room.power_levels", "", levels), "power_levels_locked")
    assert_audited(school, "power_levels_locked", uid("pupil"), room_id=course, event_type="m.room.power_levels")


@pytest.mark.parametrize("who", ["pupil", "teacher"])
def test_nobody_but_service_users_lowers_events_default_in_one_way_room(school, course, who):
    client = school.users[who]
    _, levels = client.get_state(course, "m.room.power_levels")
    levels["events_default"] = 0
    assert_denied(client.put_state(course, "m.room.power_levels", "", levels), "power_levels_locked")
    assert_audited(school, "power_levels_locked", uid(who), room_id=course)


def test_teacher_cannot_promote_a_pupil(school, course):
    teacher = school.users["teacher"]
    _, levels = teacher.get_state(course, "m.room.power_levels")
    levels["users"][uid("pupil")] = MODERATOR_LEVEL
    assert_denied(teacher.put_state(course, "m.room.power_levels", "", levels), "power_levels_locked")


def test_pupil_cannot_flip_or_delete_the_policy_event(school, course):
    pupil = school.users["pupil"]
    open_policy = {"school": "gym-nord", "kind": "course", "two_way": True}
    assert_denied(pupil.put_state(course, POLICY_EVENT_TYPE, "", open_policy), "policy_event_locked")
    assert_denied(pupil.put_state(course, POLICY_EVENT_TYPE, "", {}), "policy_event_locked")
    assert_audited(school, "policy_event_locked", uid("pupil"), room_id=course, event_type=POLICY_EVENT_TYPE)
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
def test_teacher_cannot_change_school_kind_or_add_keys(school, course, policy):
    assert_denied(school.users["teacher"].put_state(course, POLICY_EVENT_TYPE, "", policy), "policy_event_locked")


def test_pupil_cannot_create_a_room_carrying_the_policy_event(school):
    status_body = school.users["teacher"].create_room(
        preset="private_chat",
        initial_state=[{"type": POLICY_EVENT_TYPE, "state_key": "", "content": {"school": "gym-nord", "kind": "course", "two_way": True}}],
    )
    assert_denied(status_body, "policy_event_locked")
    assert_audited(school, "policy_event_locked", uid("teacher"), callback="user_may_create_room")


def test_pupil_cannot_mark_an_unmanaged_room_as_managed(school):
    teacher = school.users["teacher"]
    status, body = teacher.create_room(preset="private_chat")
    assert status == 200
    assert_denied(
        teacher.put_state(body["room_id"], POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "teachers", "two_way": True}),
        "policy_event_locked",
    )


def test_teacher_opens_and_closes_two_way_and_power_levels_follow(school, course):
    teacher, pupil = school.users["teacher"], school.users["pupil"]
    assert_denied(pupil.send(course, "m.room.message", TEXT), "one_way")

    status, body = teacher.put_state(course, POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "course", "two_way": True})
    assert status == 200, body
    wait_for_state(pupil, course, "m.room.power_levels", lambda pl: pl.get("events_default") == 0)
    status, body = pupil.send(course, "m.room.message", TEXT)
    assert status == 200, body

    status, body = teacher.put_state(course, POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "course", "two_way": False})
    assert status == 200, body
    wait_for_state(pupil, course, "m.room.power_levels", lambda pl: pl.get("events_default") == MODERATOR_LEVEL)
    assert_denied(pupil.send(course, "m.room.message", TEXT), "one_way")


def test_pupil_can_redact_own_earlier_message_after_room_closed(school):
    room_id = school.managed_room("gym-nord", invite=["teacher", "pupil"], moderators=["teacher"], two_way=True)
    teacher, pupil = school.users["teacher"], school.users["pupil"]
    assert teacher.join(room_id)[0] == 200 and pupil.join(room_id)[0] == 200
    status, body = pupil.send(room_id, "m.room.message", TEXT)
    assert status == 200
    status, _ = teacher.put_state(room_id, POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "course", "two_way": False})
    assert status == 200
    assert_denied(pupil.send(room_id, "m.room.message", TEXT), "one_way")
    status, redaction = pupil.redact(room_id, body["event_id"])
    assert status == 200, redaction


def test_sync_normal_path_creates_room_then_policy_and_levels_follow(school):
    sync = school.sync
    status, body = sync.create_room(preset="private_chat", invite=[uid("pupil2")])
    room_id = body["room_id"]
    status, _ = sync.put_state(room_id, POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "team", "two_way": False})
    assert status == 200
    wait_for_state(sync, room_id, "m.room.power_levels", lambda pl: pl.get("events_default") == MODERATOR_LEVEL)
    pupil2 = school.users["pupil2"]
    assert pupil2.join(room_id)[0] == 200
    assert_denied(pupil2.send(room_id, "m.room.message", TEXT), "one_way")


def test_teachers_room_is_always_two_way(school):
    room_id = school.managed_room("gym-nord", kind="teachers", invite=["teacher"], two_way=False)
    teacher = school.users["teacher"]
    assert teacher.join(room_id)[0] == 200
    # The teacher is not a moderator here, yet may post: the kind is two-way,
    # and the power levels were made to match it when the room was created.
    status, body = teacher.send(room_id, "m.room.message", TEXT)
    assert status == 200, body
    assert teacher.get_state(room_id, "m.room.power_levels")[1]["events_default"] == 0


def test_pupil_cannot_upgrade_the_course_away_from_its_policy(school, course):
    # Synapse's own auth refuses the tombstone (level 100) before any module
    # is asked, so this denial carries Synapse's error, not a rule id.
    status, body = school.users["pupil"].upgrade(course, "10")
    assert status == 403, body
    status, policy = school.users["pupil"].get_state(course, POLICY_EVENT_TYPE)
    assert policy["two_way"] is False
