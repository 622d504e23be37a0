"""Rule 1, school opt-in and the roster, against a real Synapse on
PostgreSQL: who may log in, act, and keep using a token issued before they
lost access (removed from the roster, moved to a school that has not opted
in, their school switched off or to report-only), and managed rooms of a
school that has not opted in are frozen.

Every denial is checked three ways: the client gets 403 with the rule id
(Synapse's own ORG_MATRIX_EXPIRED_ACCOUNT for a refused token), the audit
log holds a record of it, and the legitimate path still works.
"""
from __future__ import annotations

import time

import pytest

from harness.client import CS, Client, login, request, wait_for
from harness.push_gateway import PushGateway
from support import (
    EXPIRED,
    GYM,
    PASSWORD,
    TEXT,
    School,
    assert_audited,
    assert_denied,
    assert_expired,
    assert_token_refused,
    assert_working,
    base_config,
    membership,
    no_audit,
    now_ms,
    requests_of_every_kind,
    send_delayed,
    timeline_bodies,
    uid,
)

pytestmark = pytest.mark.integration


# ---- login, acting, frozen rooms: a roster with a user in every state --------------------


@pytest.fixture(scope="module")
def roster_school(module_synapse_factory, tmp_path_factory):
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


def test_pupil_of_opted_in_school_can_log_in(roster_school):
    status, body = login(roster_school.server.base_url, "pupil", PASSWORD)
    assert status == 200, body
    assert body["user_id"] == uid("pupil")


def test_user_of_school_not_opted_in_cannot_log_in(roster_school):
    body = assert_denied(login(roster_school.server.base_url, "off", PASSWORD), "school_not_enabled")
    assert "not enabled for your school" in body["error"]
    record = assert_audited(roster_school, "school_not_enabled", uid("off"), callback="check_login_for_spam")
    assert record["school"] == "gs-sued"
    assert record["enforced"] is True
    assert record["worker"] == "main"


def test_user_in_two_schools_logs_in_when_one_has_opted_in(roster_school):
    status, body = login(roster_school.server.base_url, "multi", PASSWORD)
    assert status == 200, body


def test_user_not_on_roster_cannot_log_in(roster_school):
    body = assert_denied(login(roster_school.server.base_url, "stranger", PASSWORD), "not_on_roster")
    assert "roster" in body["error"]
    assert_audited(roster_school, "not_on_roster", uid("stranger"), callback="check_login_for_spam")


def test_server_admin_and_service_user_log_in_without_roster_entry(roster_school):
    assert login(roster_school.server.base_url, "root", PASSWORD)[0] == 200
    assert login(roster_school.server.base_url, "sync", PASSWORD)[0] == 200


def test_user_not_on_roster_cannot_use_an_old_token(roster_school):
    stranger = roster_school.users["stranger"]  # token issued at registration, before any login check
    assert_token_refused(stranger.create_room(preset="private_chat"))
    assert_token_refused(stranger.sync())
    assert_audited(roster_school, "not_on_roster", uid("stranger"), callback="is_user_expired")


def test_token_issued_before_school_was_switched_off_stops_working(roster_school):
    mover, teacher = roster_school.users["mover"], roster_school.users["teacher"]
    room_id = roster_school.managed_room("gym-nord", invite=["mover", "teacher"], two_way=True)
    other_room = roster_school.managed_room("gym-nord", invite=["mover"])
    assert mover.join(room_id)[0] == 200
    assert teacher.join(room_id)[0] == 200
    assert mover.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})[0] == 200

    # The school cloud moves the pupil to a school that has not opted in:
    # effective at once, no restart, and the token they hold is no help for
    # anything: sending, joining, inviting, creating, even reading.
    roster_school.put_roster("mover", membership("gs-sued", "student"))
    assert_token_refused(mover.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}))
    assert_token_refused(mover.join(other_room))
    assert_token_refused(mover.invite(room_id, uid("pupil")))
    assert_token_refused(mover.create_room(preset="private_chat"))
    assert_token_refused(mover.messages(room_id))
    record = assert_audited(roster_school, "school_not_enabled", uid("mover"), callback="is_user_expired")
    assert record["school"] == "gs-sued"
    assert record["enforced"] is True

    # Inviting them is refused too: they could never accept.
    assert_denied(teacher.invite(room_id, uid("off")), "school_not_enabled")
    assert_audited(roster_school, "school_not_enabled", uid("teacher"), callback="user_may_invite", target=uid("off"))

    # Back in an opted-in school, the same token works again.
    roster_school.put_roster("mover", membership("gym-nord", "student"))
    assert mover.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "back"})[0] == 200
    assert mover.join(other_room)[0] == 200


def test_removed_from_roster_means_not_on_roster(roster_school):
    pupil2 = roster_school.users["pupil2"]
    status, _ = roster_school.admin_api("DELETE", f"/users/{uid('pupil2')}")
    assert status == 200
    try:
        assert_token_refused(pupil2.create_room(preset="private_chat"))
        assert_denied(login(roster_school.server.base_url, "pupil2", PASSWORD), "not_on_roster")
    finally:
        roster_school.put_roster("pupil2", membership("gym-nord", "student"))
    assert login(roster_school.server.base_url, "pupil2", PASSWORD)[0] == 200
    assert pupil2.joined_rooms()[0] == 200


def test_managed_room_of_school_not_opted_in_is_frozen(roster_school):
    teacher, sync = roster_school.users["teacher"], roster_school.sync
    room_id = roster_school.managed_room("gs-sued", invite=["teacher"])
    assert_denied(teacher.join(room_id), "room_school_not_enabled")
    record = assert_audited(roster_school, "room_school_not_enabled", uid("teacher"), room_id=room_id)
    assert record["school"] == "gs-sued"
    # The service user still manages the room.
    assert sync.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "setup"})[0] == 200


def test_room_moved_to_school_not_opted_in_freezes_members(roster_school):
    teacher, pupil, root = roster_school.users["teacher"], roster_school.users["pupil"], roster_school.users["root"]
    # root is a moderator so that Synapse's own power-level check lets the
    # admin post once the room is one-way; the module exempts admins anyway.
    room_id = roster_school.managed_room("gym-nord", invite=["teacher", "pupil", "root"], two_way=True, moderators=["root"])
    for member in (teacher, pupil, root):
        assert member.join(room_id)[0] == 200
    assert pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "before"})[0] == 200

    status, body = roster_school.sync.put_state(
        room_id, "org.synapse_school_policy.room", "", {"school": "gs-sued", "kind": "course", "two_way": False}
    )
    assert status == 200, body
    assert_denied(pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "after"}), "room_school_not_enabled")
    assert_denied(teacher.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "after"}), "room_school_not_enabled")
    assert_denied(teacher.invite(room_id, uid("pupil2")), "room_school_not_enabled")
    assert_audited(
        roster_school, "room_school_not_enabled", uid("pupil"),
        callback="check_event_for_spam", room_id=room_id, school="gs-sued",
    )
    assert_audited(roster_school, "room_school_not_enabled", uid("teacher"), callback="user_may_invite", room_id=room_id)
    # Server admins and service users are exempt.
    assert root.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "admin"})[0] == 200
    assert roster_school.sync.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "sync"})[0] == 200


def test_policy_event_without_school_freezes_the_room(roster_school):
    pupil = roster_school.users["pupil"]
    room_id = roster_school.managed_room("gym-nord", invite=["pupil"], two_way=True)
    assert pupil.join(room_id)[0] == 200
    status, _ = roster_school.sync.put_state(room_id, "org.synapse_school_policy.room", "", {"kind": "course"})
    assert status == 200
    assert_denied(pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}), "room_school_not_enabled")


def shared_course(school, *names):
    room_id = school.managed_room("gym-nord", invite=names, two_way=True)
    for name in names:
        assert school.users[name].join(room_id)[0] == 200
    return room_id


def test_unmanaged_room_is_not_frozen(roster_school):
    teacher, pupil = roster_school.users["teacher"], roster_school.users["pupil"]
    shared_course(roster_school, "teacher", "pupil")  # rule 3: they may only reach each other through one
    status, body = teacher.create_room(preset="private_chat", invite=[uid("pupil")])
    assert status == 200, body
    assert pupil.join(body["room_id"])[0] == 200
    assert pupil.send(body["room_id"], "m.room.message", {"msgtype": "m.text", "body": "ok"})[0] == 200


def test_pupil_of_opted_in_school_acts_normally(roster_school):
    teacher, pupil = roster_school.users["teacher"], roster_school.users["pupil"]
    shared_course(roster_school, "teacher", "pupil")
    room_id = roster_school.managed_room("gym-nord", invite=["teacher"], two_way=True)
    assert teacher.join(room_id)[0] == 200
    assert teacher.invite(room_id, uid("pupil"))[0] == 200
    assert pupil.join(room_id)[0] == 200
    assert pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello"})[0] == 200


# ---- a token issued before access was lost: every kind of request ------------------------


def expiry_records(world: School, actor: str, since: int, rule: str) -> list[dict]:
    return [
        r for r in world.audit(rule=rule, user=actor, since=since, limit=200)
        if r["actor"] == actor and r["callback"] == "is_user_expired"
    ]


def test_token_of_a_user_removed_from_the_roster_is_refused(school):
    leaver = school.users["leaver"]
    # A second token, obtained while on the roster.
    status, body = login(school.server.base_url, "leaver", PASSWORD)
    assert status == 200, body
    second = Client(school.server.base_url, leaver.user_id, body["access_token"])
    assert_working(requests_of_every_kind(leaver, school.course))

    since = now_ms()
    status, _ = school.admin_api("DELETE", f"/users/{uid('leaver')}")
    assert status == 200
    assert_expired(requests_of_every_kind(leaver, school.course))
    # Many more requests, as a client's sync loop would make.
    for _ in range(15):
        status, body = leaver.sync()
        assert status == 403 and body.get("errcode") == EXPIRED, str(body)[:300]
    assert_expired({"join": leaver.join(school.course), "send": leaver.send(school.course, "m.room.message", TEXT)})
    # /versions and /logout stay open.
    status, body = request(school.server.base_url, "GET", "/_matrix/client/versions", token=leaver.token)
    assert status == 200, body
    status, body = second.request("POST", f"{CS}/logout", {})
    assert status == 200, body

    record = assert_audited(school, "not_on_roster", uid("leaver"), callback="is_user_expired")
    assert record["ts"] >= since - 1000 and record["enforced"] is True
    records = expiry_records(school, uid("leaver"), since, "not_on_roster")
    assert 1 <= len(records) <= 2, records  # deduplicated, not one per request

    # Back on the roster: the same token works again at once.
    school.put_roster("leaver", membership(GYM, "student"))
    assert_working(requests_of_every_kind(leaver, school.course))
    status, body = second.sync()
    assert status == 401, str(body)[:300]  # the logged-out token stays logged out


def test_token_of_a_user_moved_to_a_school_not_opted_in_is_refused(school):
    # Without a restart: the roster moves the pupil into gs-sued, which has
    # not opted in.
    pupil4 = school.users["pupil4"]
    since = now_ms()
    school.put_roster("pupil4", membership("gs-sued", "student"))
    try:
        assert_expired(requests_of_every_kind(pupil4, school.course))
        record = assert_audited(school, "school_not_enabled", uid("pupil4"), callback="is_user_expired")
        assert record["ts"] >= since - 1000 and record["school"] == "gs-sued"
    finally:
        school.put_roster("pupil4", membership(GYM, "student"))
    assert_working(requests_of_every_kind(pupil4, school.course))


def test_service_user_and_server_admin_tokens_keep_working(school):
    since = now_ms()
    root = school.users["root"]
    status, body = school.sync.create_room(preset="private_chat", invite=[uid("root")])
    assert status == 200, body
    room_id = body["room_id"]
    assert root.join(room_id)[0] == 200
    # Neither is on the roster.
    assert school.admin_api("GET", f"/users/{uid('sync')}")[0] == 404
    assert school.admin_api("GET", f"/users/{uid('root')}")[0] == 404
    for client in (school.sync, root):
        assert_working(requests_of_every_kind(client, room_id))
        assert client.send(room_id, "m.room.message", TEXT)[0] == 200
    no_audit(school, uid("sync"), since, settle=0.5, callback="is_user_expired")
    no_audit(school, uid("root"), since, settle=0.5, callback="is_user_expired")


def newcomer_in_a_two_way_course(world: School, name: str) -> str:
    """Registers `name`, a gym-nord pupil, in a fresh two-way course with the
    teacher (both joined); returns the room id."""
    world.register(name)
    world.put_roster(name, membership(GYM, "student"))
    room_id = world.managed_room(GYM, invite=["teacher", name], moderators=["teacher"], two_way=True)
    for who in ("teacher", name):
        assert world.users[who].join(room_id)[0] == 200, who
    return room_id


def test_push_notifications_stop_when_the_user_leaves_the_roster(school):
    # Synapse asks is_user_expired before it wakes a user's pushers
    # (push/pusherpool.py _on_new_notifications): access ends for the phone
    # at the same moment as for the tokens.
    room_id = newcomer_in_a_two_way_course(school, "pushed")
    pushed, teacher = school.users["pushed"], school.users["teacher"]
    with PushGateway() as gateway:
        status, body = pushed.request("POST", f"{CS}/pushers/set", {
            "kind": "http", "app_id": "org.example.school", "pushkey": "phone-of-pushed",
            "app_display_name": "School", "device_display_name": "phone", "lang": "en",
            "data": {"url": gateway.url},
        })
        assert status == 200, body
        status, body = teacher.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "homework: p. 12"})
        assert status == 200, body
        allowed = body["event_id"]
        wait_for(lambda: allowed in gateway.event_ids(), 20, "the push of a message while on the roster")

        since = now_ms()
        assert school.admin_api("DELETE", f"/users/{uid('pushed')}")[0] == 200
        status, body = teacher.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "homework: p. 13"})
        assert status == 200, body
        refused = body["event_id"]
        # The pusher pool asked the module about the user (they made no
        # request themselves) and was told they lost access.
        record = assert_audited(school, "not_on_roster", uid("pushed"), callback="is_user_expired")
        assert record["ts"] >= since - 1000
        time.sleep(3)  # a pusher that was woken would have pushed by now (the first took well under that)
        assert refused not in gateway.event_ids(), gateway.notifications


def test_delayed_message_of_a_user_who_lost_access_is_refused_when_it_fires(school):
    # A delayed event (MSC4140) asks no module when it is scheduled; the
    # module decides when it fires (handlers/delayed_events.py _send_event →
    # check_event_for_spam), with the roster of that moment.
    room_id = newcomer_in_a_two_way_course(school, "scheduler")
    scheduler = school.users["scheduler"]
    send_delayed(scheduler, room_id, {"msgtype": "m.text", "body": "sent while on the roster"}, delay_ms=300)
    wait_for(lambda: "sent while on the roster" in timeline_bodies(school.sync, room_id), 15, "the allowed delayed message")

    since = now_ms()
    send_delayed(scheduler, room_id, {"msgtype": "m.text", "body": "sent after leaving"}, delay_ms=1500)
    early = send_delayed(scheduler, room_id, {"msgtype": "m.text", "body": "sent early after leaving"}, delay_ms=600000)
    assert school.admin_api("DELETE", f"/users/{uid('scheduler')}")[0] == 200
    # Sending it early needs no token (the delay id is the secret), and
    # passes the same check.
    assert_denied(request(school.server.base_url, "POST",
                          f"/_matrix/client/unstable/org.matrix.msc4140/delayed_events/{early}/send", {}),
                  "not_on_roster")
    # Then the timer fires the other one: refused too, a second record.
    records = wait_for(
        lambda: (lambda rs: rs if len(rs) >= 2 else None)(
            [r for r in school.audit(rule="not_on_roster", user=uid("scheduler"), since=since, limit=50)
             if r["callback"] == "check_event_for_spam"]),
        15, "the delayed message refused when it fired",
    )
    assert {(r["room_id"], r["event_type"]) for r in records} == {(room_id, "m.room.message")}
    bodies = timeline_bodies(school.sync, room_id)
    assert "sent after leaving" not in bodies and "sent early after leaving" not in bodies


# ---- a school switched off, or to report-only (a server of its own, restarted) -----------


def restart_config(store_dir, gym_on=True, gym_enforce=True):
    config = base_config(store_dir)
    config["schools"][GYM] = {"messenger": gym_on, "teachers_room": False, "enforce": gym_enforce}
    return config


@pytest.fixture(scope="module")
def restart_school(module_synapse_factory, tmp_path_factory):
    store = tmp_path_factory.mktemp("policy-restart") / "store"
    world = School(module_synapse_factory(restart_config(store)))
    world.store = store
    world.register("sync")
    for name in ("pupil", "teacher"):
        world.register(name)
    world.put_roster("pupil", membership(GYM, "student"))
    world.put_roster("teacher", membership(GYM, "teacher"))
    world.course = world.managed_room(GYM, invite=["pupil", "teacher"], moderators=["teacher"])
    for name in ("pupil", "teacher"):
        assert world.users[name].join(world.course)[0] == 200
    return world


def test_token_of_a_user_whose_school_was_switched_off_is_refused(restart_school):
    world = restart_school
    pupil = world.users["pupil"]
    assert_working(requests_of_every_kind(pupil, world.course))

    since = now_ms()
    world.server.restart(restart_config(world.store, gym_on=False))
    assert_expired(requests_of_every_kind(pupil, world.course))
    for _ in range(15):
        status, body = pupil.sync()
        assert status == 403 and body.get("errcode") == EXPIRED, str(body)[:300]
    record = assert_audited(world, "school_not_enabled", uid("pupil"), callback="is_user_expired")
    assert record["school"] == GYM and record["enforced"] is True
    records = expiry_records(world, uid("pupil"), since, "school_not_enabled")
    assert 1 <= len(records) <= 2, records

    # The operator switches the school back on: the same token works again.
    world.server.restart(restart_config(world.store, gym_on=True))
    assert_working(requests_of_every_kind(pupil, world.course))


def test_report_only_school_leaves_old_tokens_working_but_audits(restart_school):
    world = restart_school
    pupil = world.users["pupil"]
    world.server.restart(restart_config(world.store, gym_on=False, gym_enforce=False))
    try:
        assert_working(requests_of_every_kind(pupil, world.course))
        record = assert_audited(world, "school_not_enabled", uid("pupil"), callback="is_user_expired", enforced=False)
        assert record["school"] == GYM
    finally:
        world.server.restart(restart_config(world.store, gym_on=True))
