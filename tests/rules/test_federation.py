"""Federation: a second homeserver, started by the test, tries to reach a
local pupil, and a pupil tries to reach the other server's rooms. Managed
rooms do not federate (m.federate false; a remote join or event in a room
that became managed later is refused, federation_forbidden); a remote
invite, a join of a remote room and a pupil's invite of a remote user are
refused and audited; a knock on a remote room (R4) and a remote member
whom the sync left in a room it then made managed (R23) are residual
risks, each shown open by a strict xfail."""
import pytest

from harness.client import q, register_user, request, wait_for
from harness.synapse import start_servers
from support import (
    ADMIN_API,
    GYM,
    PASSWORD,
    POLICY_EVENT_TYPE,
    TEXT,
    assert_denied,
    base_config,
    joined_rooms,
    knock,
    membership,
    policy_event,
    timeline_bodies,
)

pytestmark = pytest.mark.integration


# ---- a remote user and a local pupil -----------------------------------------------------


@pytest.fixture(scope="module")
def servers(module_synapse_factory, tmp_path_factory):
    school_server, remote = module_synapse_factory.federation_pair(start=False)
    config = base_config(tmp_path_factory.mktemp("policy") / "store")
    config["service_users"] = [school_server.user_id("sync")]
    school_server.module_config = config
    start_servers((school_server, remote))
    return school_server, remote


def test_remote_user_cannot_invite_a_local_pupil(servers):
    school_server, remote = servers
    sync = register_user(school_server, "sync", PASSWORD)
    pupil = register_user(school_server, "pupil", PASSWORD)
    from harness.client import request

    status, body = request(
        school_server.base_url, "PUT", f"{ADMIN_API}/users/{pupil.user_id}",
        {"schools": [{"school": "gym-nord", "role": "student"}]}, token=sync.token,
    )
    assert status == 200, body
    stranger = register_user(remote, "stranger", PASSWORD)
    status, body = stranger.create_room(preset="private_chat")
    assert status == 200, body
    status, body = stranger.invite(body["room_id"], pupil.user_id)
    assert status == 403, body  # the school's server refused the invite
    # The refusal is audited on the school's server.
    def audited():
        status, result = request(
            school_server.base_url, "GET", f"{ADMIN_API}/audit",
            query={"rule": "federation_forbidden"}, token=sync.token,
        )
        return [r for r in result.get("records", []) if r["actor"] == stranger.user_id and r["target"] == pupil.user_id]

    records = wait_for(audited, timeout=10, what="federation_forbidden audit record")
    assert records[0]["callback"] == "federated_user_may_invite"
    # A local invite between people who share a room still works.
    status, body = sync.create_room(
        preset="private_chat", invite=[pupil.user_id],
        initial_state=[{"type": POLICY_EVENT_TYPE, "state_key": "", "content": {"school": "gym-nord", "kind": "course", "two_way": True}}],
    )
    assert status == 200, body
    assert pupil.join(body["room_id"])[0] == 200


# ---- a pupil and the rooms of the other server -------------------------------------------


@pytest.fixture(scope="module")
def federated(module_synapse_factory, tmp_path_factory):
    school_server, remote = module_synapse_factory.federation_pair(start=False)
    config = base_config(tmp_path_factory.mktemp("policy-fed") / "store")
    config["service_users"] = [school_server.user_id("sync")]
    config["schools"][GYM]["teachers_room"] = False
    school_server.module_config = config
    start_servers((school_server, remote))
    sync = register_user(school_server, "sync", PASSWORD)
    pupil = register_user(school_server, "pupil", PASSWORD)
    status, body = request(
        school_server.base_url, "PUT", f"{ADMIN_API}/users/{q(pupil.user_id)}",
        {"schools": [membership(GYM, "student")]}, token=sync.token,
    )
    assert status == 200, body
    stranger = register_user(remote, "stranger", PASSWORD)
    return school_server, remote, sync, pupil, stranger


def federated_audit(server, sync, **query):
    status, body = request(server.base_url, "GET", f"{ADMIN_API}/audit", query=query, token=sync.token)
    assert status == 200, body
    return body["records"]


def test_pupil_cannot_join_a_room_of_another_server(federated):
    school_server, remote, sync, pupil, stranger = federated
    status, body = stranger.create_room(preset="public_chat", name="Open to all", room_alias_name="hangout")
    assert status == 200, body
    room_id = body["room_id"]
    alias = f"#hangout:{remote.server_name}"
    for target, servers in ((room_id, [remote.server_name]), (alias, [])):
        response = pupil.join_via(target, servers) if servers else pupil.join(target)
        body = assert_denied(response, "federation_forbidden")
        assert body["error"] == "You cannot join rooms of other servers.", body
    records = wait_for(
        lambda: [r for r in federated_audit(school_server, sync, rule="federation_forbidden")
                 if r["actor"] == pupil.user_id and r["room_id"] == room_id] or None,
        10, "federation_forbidden audit record",
    )
    assert records[0]["callback"] == "user_may_join_room"
    assert room_id not in joined_rooms(pupil)
    status, body = stranger.members(room_id)
    assert pupil.user_id not in {e["state_key"] for e in body["chunk"]}
    # A local room still works.
    status, body = sync.create_room(preset="private_chat", invite=[pupil.user_id], initial_state=[policy_event(GYM, "course", True)])
    assert status == 200, body
    assert pupil.join(body["room_id"])[0] == 200


def test_no_remote_user_is_invited_into_or_joins_a_managed_room(federated):
    # A room created with the policy event gets m.federate false
    # (on_create_room): Synapse's event auth then refuses every member
    # event of another server's user (event_auth.py _can_federate), the
    # service user's invite and the stranger's make_join alike.
    school_server, remote, sync, pupil, stranger = federated
    status, body = sync.create_room(preset="private_chat", invite=[pupil.user_id], initial_state=[policy_event(GYM, "course", True)])
    assert status == 200, body
    room_id = body["room_id"]
    assert sync.get_state(room_id, "m.room.create")[1]["m.federate"] is False
    unfederatable = {"errcode": "M_FORBIDDEN", "error": "This room has been marked as unfederatable."}
    assert sync.invite(room_id, stranger.user_id) == (403, unfederatable)
    assert stranger.join_via(room_id, [school_server.server_name]) == (403, unfederatable)
    assert sync.get_state(room_id, "m.room.member", stranger.user_id)[0] == 404
    # The local pupil joins and posts.
    assert pupil.join(room_id)[0] == 200
    assert pupil.send(room_id, "m.room.message", TEXT)[0] == 200


def test_remote_join_and_events_in_a_room_that_became_managed_are_refused(federated):
    # A room the sync made without the policy event federates; once the sync
    # sets the policy event, every PDU of another server in it goes through
    # check_event_for_spam (federation/federation_base.py
    # _check_sigs_and_hash), which refuses it (federation_forbidden): Synapse
    # soft-fails it, so that it stays out of the room here.
    school_server, remote, sync, pupil, stranger = federated
    member, latecomer = register_user(remote, "member", PASSWORD), register_user(remote, "latecomer", PASSWORD)
    status, body = sync.create_room(preset="private_chat", invite=[pupil.user_id, member.user_id, latecomer.user_id])
    assert status == 200, body
    room_id = body["room_id"]
    assert pupil.join(room_id)[0] == 200
    member.wait_for_invite(room_id)
    assert member.join_via(room_id, [school_server.server_name])[0] == 200
    wait_for(lambda: sync.get_state(room_id, "m.room.member", member.user_id)[1].get("membership") == "join",
             15, "the remote member's join")
    assert sync.put_state(room_id, POLICY_EVENT_TYPE, "", {"school": GYM, "kind": "course", "two_way": True})[0] == 200

    # An event of the remote member: their server takes it, this one refuses it.
    status, body = member.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from afar"})
    assert status == 200, body
    # A join sent now: make_join passes (the room federates, the latecomer
    # is invited), send_join's event is refused the same way.
    latecomer.wait_for_invite(room_id)
    assert latecomer.join_via(room_id, [school_server.server_name])[0] == 200

    def refused(user_id, event_type):
        return [r for r in federated_audit(school_server, sync, rule="federation_forbidden", user=user_id)
                if r["callback"] == "check_event_for_spam" and r["room_id"] == room_id
                and r["event_type"] == event_type] or None

    wait_for(lambda: refused(member.user_id, "m.room.message"), 15, "the remote message refused")
    wait_for(lambda: refused(latecomer.user_id, "m.room.member"), 15, "the remote join refused")
    assert sync.get_state(room_id, "m.room.member", latecomer.user_id)[1]["membership"] == "invite"
    assert "hello from afar" not in timeline_bodies(pupil, room_id)
    # The local pupil posts in the room as before.
    status, body = pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from here"})
    assert status == 200, body
    assert "hello from here" in timeline_bodies(sync, room_id)


def test_pupil_cannot_invite_a_user_of_another_server(federated):
    # Rule 3 for a remote invitee: a direct chat and an invite are refused
    # (no_shared_room) before anything is sent to the other server.
    school_server, remote, sync, pupil, stranger = federated
    pen_pal = register_user(remote, "pen_pal", PASSWORD)
    assert_denied(pupil.create_room(preset="trusted_private_chat", is_direct=True, invite=[pen_pal.user_id]),
                  "no_shared_room")
    status, body = sync.create_room(preset="private_chat", invite=[pupil.user_id])
    assert status == 200, body
    room_id = body["room_id"]
    assert pupil.join(room_id)[0] == 200
    assert_denied(pupil.invite(room_id, pen_pal.user_id), "no_shared_room")
    wait_for(lambda: {r["callback"] for r in federated_audit(school_server, sync, rule="no_shared_room", user=pupil.user_id)
                      if r["target"] == pen_pal.user_id} == {"user_may_create_room", "user_may_invite"},
             10, "both refusals audited")
    assert sync.get_state(room_id, "m.room.member", pen_pal.user_id)[0] == 404
    # A classmate they share a course with is invited as before.
    classmate = register_user(school_server, "classmate", PASSWORD)
    status, body = request(school_server.base_url, "PUT", f"{ADMIN_API}/users/{q(classmate.user_id)}",
                           {"schools": [membership(GYM, "student")]}, token=sync.token)
    assert status == 200, body
    status, body = sync.create_room(preset="private_chat", invite=[pupil.user_id, classmate.user_id],
                                    initial_state=[policy_event(GYM, "course", True)])
    assert status == 200, body
    assert pupil.join(body["room_id"])[0] == 200 and classmate.join(body["room_id"])[0] == 200
    assert pupil.invite(room_id, classmate.user_id)[0] == 200


@pytest.mark.xfail(strict=True, reason="residual R23: a remote member whom the exempt sync left in a room it then "
                   "made managed counts as sharing a qualifying room, so a pupil can open a direct chat with them")
def test_a_remote_member_left_in_a_managed_room_is_no_shared_room(federated):
    school_server, remote, sync, pupil, stranger = federated
    guest = register_user(remote, "guest", PASSWORD)
    status, body = sync.create_room(preset="private_chat", invite=[pupil.user_id, guest.user_id])
    assert status == 200, body
    room_id = body["room_id"]
    assert pupil.join(room_id)[0] == 200
    guest.wait_for_invite(room_id)
    assert guest.join_via(room_id, [school_server.server_name])[0] == 200
    wait_for(lambda: sync.get_state(room_id, "m.room.member", guest.user_id)[1].get("membership") == "join",
             15, "the remote member's join")
    assert sync.put_state(room_id, POLICY_EVENT_TYPE, "", {"school": GYM, "kind": "course", "two_way": True})[0] == 200
    # The sync's room is now a managed course of an opted-in school, with
    # the remote user joined in it (Synapse does not remove them).
    assert_denied(pupil.create_room(preset="trusted_private_chat", is_direct=True, invite=[guest.user_id]),
                  "no_shared_room")


@pytest.mark.xfail(strict=True, reason="door not covered by the design: the federation rule covers joins; a knock "
                   "on a remote room reaches no module callback and carries a free-text reason to the other server")
def test_pupil_cannot_knock_on_a_room_of_another_server(federated):
    school_server, remote, sync, pupil, stranger = federated
    status, body = stranger.create_room(
        preset="private_chat", name="Knock here",
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}],
    )
    assert status == 200, body
    room_id = body["room_id"]
    status, body = knock(pupil, room_id, reason="Hi, I'm 12, at gym-nord", servers=[remote.server_name])
    assert status == 403, body
    status, body = stranger.get_state(room_id, "m.room.member", pupil.user_id)
    assert status == 404, body


# ---- a remote member of a room made here before the module (threat model R13) -----------


def test_remote_member_cannot_open_a_room_made_here_nor_bring_it_back_through_state_resolution(before_the_module):
    world = before_the_module
    owner, stranger, room_id = world.users["owner"], world.stranger, world.old_room

    def join_rule_here():
        status, state = owner.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state")
        assert status == 200, state
        return next(e for e in state if e["type"] == "m.room.join_rules")

    # Their server accepts it; the school's server refuses it (soft-fail) and audits it.
    status, body = stranger.put_state(room_id, "m.room.join_rules", "", {"join_rule": "public"})
    assert status == 200, body
    opened = body["event_id"]
    record = wait_for(
        lambda: [r for r in world.audit(rule="public_room_forbidden", user=stranger.user_id)
                 if r["callback"] == "check_event_for_spam"] or None,
        15, "the soft-failed join rule's audit record",
    )
    assert record[0]["room_id"] == room_id
    assert join_rule_here()["content"] == {"join_rule": "invite"}
    # Their next state event builds on the refused one: the state after it
    # holds the public join rule, and the room's state here becomes it
    # (Synapse skips that step only for a chain of single-parent
    # non-state events, persist_events.py
    # _calculate_new_forward_extremities_and_state_delta). The module
    # closes the room again.
    assert stranger.put_state(room_id, "m.room.topic", "", {"topic": "our room"})[0] == 200
    record = wait_for(
        lambda: [r for r in world.audit(rule="public_room_forbidden", user=stranger.user_id)
                 if r["callback"] == "after_the_fact"] or None,
        15, "the join rule taken back after the fact",
    )
    assert record[0]["event_type"] == "m.room.join_rules"
    closed = wait_for(lambda: (lambda e: e if e["event_id"] != opened and e["content"] == {"join_rule": "invite"}
                               else None)(join_rule_here()), 10, "the join rule set back to invite")
    assert closed["sender"] == owner.user_id
