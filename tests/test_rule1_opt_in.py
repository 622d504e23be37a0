"""Rule 1, school opt-in, against a real Synapse on PostgreSQL.

Every denial is checked three ways: the client gets 403 with the rule id,
the audit log holds a record of it, and the legitimate path still works.
"""
import pytest

from harness.client import login
from support import (
    PASSWORD,
    School,
    assert_audited,
    assert_denied,
    assert_token_refused,
    base_config,
    membership,
    uid,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("policy") / "store"
    server = module_synapse_factory(base_config(data_dir))
    world = School(server)
    world.register("sync")
    world.register("root", admin=True)
    for name in ("teacher", "pupil", "pupil2", "mover", "off", "stranger", "multi"):
        world.register(name)
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("pupil", membership("gym-nord", "student"))
    world.put_roster("pupil2", membership("gym-nord", "student"))
    world.put_roster("mover", membership("gym-nord", "student"))
    world.put_roster("off", membership("gs-sued", "student"))
    world.put_roster("multi", membership("gs-sued", "teacher"), membership("gym-nord", "teacher"))
    return world


def test_pupil_of_opted_in_school_can_log_in(school):
    status, body = login(school.server.base_url, "pupil", PASSWORD)
    assert status == 200, body
    assert body["user_id"] == uid("pupil")


def test_user_of_school_not_opted_in_cannot_log_in(school):
    body = assert_denied(login(school.server.base_url, "off", PASSWORD), "school_not_enabled")
    assert "not enabled for your school" in body["error"]
    record = assert_audited(school, "school_not_enabled", uid("off"), callback="check_login_for_spam")
    assert record["school"] == "gs-sued"
    assert record["enforced"] is True
    assert record["worker"] == "main"


def test_user_in_two_schools_logs_in_when_one_has_opted_in(school):
    status, body = login(school.server.base_url, "multi", PASSWORD)
    assert status == 200, body


def test_user_not_on_roster_cannot_log_in(school):
    body = assert_denied(login(school.server.base_url, "stranger", PASSWORD), "not_on_roster")
    assert "roster" in body["error"]
    assert_audited(school, "not_on_roster", uid("stranger"), callback="check_login_for_spam")


def test_server_admin_and_service_user_log_in_without_roster_entry(school):
    assert login(school.server.base_url, "root", PASSWORD)[0] == 200
    assert login(school.server.base_url, "sync", PASSWORD)[0] == 200


def test_user_not_on_roster_cannot_use_an_old_token(school):
    stranger = school.users["stranger"]  # token issued at registration, before any login check
    assert_token_refused(stranger.create_room(preset="private_chat"))
    assert_token_refused(stranger.sync())
    assert_audited(school, "not_on_roster", uid("stranger"), callback="is_user_expired")


def test_token_issued_before_school_was_switched_off_stops_working(school):
    mover, teacher = school.users["mover"], school.users["teacher"]
    room_id = school.managed_room("gym-nord", invite=["mover", "teacher"], two_way=True)
    other_room = school.managed_room("gym-nord", invite=["mover"])
    assert mover.join(room_id)[0] == 200
    assert teacher.join(room_id)[0] == 200
    assert mover.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})[0] == 200

    # The school cloud moves the pupil to a school that has not opted in:
    # effective at once, no restart, and the token they hold is no help for
    # anything: sending, joining, inviting, creating, even reading.
    school.put_roster("mover", membership("gs-sued", "student"))
    assert_token_refused(mover.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}))
    assert_token_refused(mover.join(other_room))
    assert_token_refused(mover.invite(room_id, uid("pupil")))
    assert_token_refused(mover.create_room(preset="private_chat"))
    assert_token_refused(mover.messages(room_id))
    record = assert_audited(school, "school_not_enabled", uid("mover"), callback="is_user_expired")
    assert record["school"] == "gs-sued"
    assert record["enforced"] is True

    # Inviting them is refused too: they could never accept.
    assert_denied(teacher.invite(room_id, uid("off")), "school_not_enabled")
    assert_audited(school, "school_not_enabled", uid("teacher"), callback="user_may_invite", target=uid("off"))

    # Back in an opted-in school, the same token works again.
    school.put_roster("mover", membership("gym-nord", "student"))
    assert mover.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "back"})[0] == 200
    assert mover.join(other_room)[0] == 200


def test_removed_from_roster_means_not_on_roster(school):
    pupil2 = school.users["pupil2"]
    status, _ = school.admin_api("DELETE", f"/users/{uid('pupil2')}")
    assert status == 200
    try:
        assert_token_refused(pupil2.create_room(preset="private_chat"))
        assert_denied(login(school.server.base_url, "pupil2", PASSWORD), "not_on_roster")
    finally:
        school.put_roster("pupil2", membership("gym-nord", "student"))
    assert login(school.server.base_url, "pupil2", PASSWORD)[0] == 200
    assert pupil2.joined_rooms()[0] == 200


def test_managed_room_of_school_not_opted_in_is_frozen(school):
    teacher, sync = school.users["teacher"], school.sync
    room_id = school.managed_room("gs-sued", invite=["teacher"])
    assert_denied(teacher.join(room_id), "room_school_not_enabled")
    record = assert_audited(school, "room_school_not_enabled", uid("teacher"), room_id=room_id)
    assert record["school"] == "gs-sued"
    # The service user still manages the room.
    assert sync.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "setup"})[0] == 200


def test_room_moved_to_school_not_opted_in_freezes_members(school):
    teacher, pupil, root = school.users["teacher"], school.users["pupil"], school.users["root"]
    # root is a moderator so that Synapse's own power-level check lets the
    # admin post once the room is one-way; the module exempts admins anyway.
    room_id = school.managed_room("gym-nord", invite=["teacher", "pupil", "root"], two_way=True, moderators=["root"])
    for member in (teacher, pupil, root):
        assert member.join(room_id)[0] == 200
    assert pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "before"})[0] == 200

    status, body = school.sync.put_state(
        room_id, "org.synapse_school_policy.room", "", {"school": "gs-sued", "kind": "course", "two_way": False}
    )
    assert status == 200, body
    assert_denied(pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "after"}), "room_school_not_enabled")
    assert_denied(teacher.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "after"}), "room_school_not_enabled")
    assert_denied(teacher.invite(room_id, uid("pupil2")), "room_school_not_enabled")
    assert_audited(
        school, "room_school_not_enabled", uid("pupil"),
        callback="check_event_for_spam", room_id=room_id, school="gs-sued",
    )
    assert_audited(school, "room_school_not_enabled", uid("teacher"), callback="user_may_invite", room_id=room_id)
    # Server admins and service users are exempt.
    assert root.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "admin"})[0] == 200
    assert school.sync.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "sync"})[0] == 200


def test_policy_event_without_school_freezes_the_room(school):
    pupil = school.users["pupil"]
    room_id = school.managed_room("gym-nord", invite=["pupil"], two_way=True)
    assert pupil.join(room_id)[0] == 200
    status, _ = school.sync.put_state(room_id, "org.synapse_school_policy.room", "", {"kind": "course"})
    assert status == 200
    assert_denied(pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}), "room_school_not_enabled")


def shared_course(school, *names):
    room_id = school.managed_room("gym-nord", invite=names, two_way=True)
    for name in names:
        assert school.users[name].join(room_id)[0] == 200
    return room_id


def test_unmanaged_room_is_not_frozen(school):
    teacher, pupil = school.users["teacher"], school.users["pupil"]
    shared_course(school, "teacher", "pupil")  # rule 3: they may only reach each other through one
    status, body = teacher.create_room(preset="private_chat", invite=[uid("pupil")])
    assert status == 200, body
    assert pupil.join(body["room_id"])[0] == 200
    assert pupil.send(body["room_id"], "m.room.message", {"msgtype": "m.text", "body": "ok"})[0] == 200


def test_pupil_of_opted_in_school_acts_normally(school):
    teacher, pupil = school.users["teacher"], school.users["pupil"]
    shared_course(school, "teacher", "pupil")
    room_id = school.managed_room("gym-nord", invite=["teacher"], two_way=True)
    assert teacher.join(room_id)[0] == 200
    assert teacher.invite(room_id, uid("pupil"))[0] == 200
    assert pupil.join(room_id)[0] == 200
    assert pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello"})[0] == 200
