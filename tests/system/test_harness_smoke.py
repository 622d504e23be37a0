"""Proves the harness itself works: vanilla Synapse (no module) on throwaway PostgreSQL."""

import pytest

from harness.client import login, register_user


@pytest.mark.integration
def test_vanilla_synapse_room_flow(synapse_factory, postgres):
    server = synapse_factory(module_config=None)

    # Really on our PostgreSQL, not a silent sqlite fallback.
    assert server.database["port"] == postgres.port
    assert "psycopg2" in open(server.config_path).read()

    alice = register_user(server, "alice", "alice-pw", admin=True)
    bob = register_user(server, "bob", "bob-pw")
    assert alice.user_id == "@alice:school.test"
    assert bob.user_id == "@bob:school.test"

    status, body = login(server.base_url, "bob", "bob-pw")
    assert status == 200 and body["user_id"] == bob.user_id
    status, body = login(server.base_url, "bob", "wrong")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"

    status, body = alice.create_room(name="Smoke", preset="private_chat")
    assert status == 200, body
    room_id = body["room_id"]
    assert room_id.startswith("!")

    # Bob cannot join an invite-only room before being invited.
    status, body = bob.join(room_id)
    assert status == 403, body

    assert alice.invite(room_id, bob.user_id) == (200, {})
    status, body = bob.join(room_id)
    assert status == 200 and body["room_id"] == room_id

    status, body = bob.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert status == 200 and body["event_id"].startswith("$")

    status, body = alice.members(room_id)
    assert status == 200
    joined = {
        e["state_key"] for e in body["chunk"] if e["content"].get("membership") == "join"
    }
    assert joined == {alice.user_id, bob.user_id}

    status, body = alice.get_state(room_id, "m.room.name")
    assert status == 200 and body == {"name": "Smoke"}
