"""Proves the harness can run two vanilla Synapse servers that federate over loopback."""

import time

import pytest

from harness.client import register_user, request, wait_for


@pytest.mark.integration
def test_two_servers_federate(federation_pair):
    t0 = time.monotonic()
    server_a, server_b = federation_pair
    assert server_a.module_config is None and server_b.module_config is None
    assert server_a.server_name == f"localhost:{server_a.federation_port}"
    assert server_b.server_name == f"localhost:{server_b.federation_port}"
    assert server_a.server_name != server_b.server_name
    assert server_a.database["dbname"] != server_b.database["dbname"]

    # Each server can fetch the other's signing keys over federation (TLS,
    # self-signed, loopback allowed, no trusted key server).
    # Asking B's notary API for A's current key makes B fetch it from A (cache miss).
    key_id = server_a.signing_key_id
    status, body = request(
        server_b.base_url, "POST", "/_matrix/key/v2/query",
        {"server_keys": {server_a.server_name: {key_id: {"minimum_valid_until_ts": 0}}}},
    )
    assert status == 200, body
    assert [k["server_name"] for k in body["server_keys"]] == [server_a.server_name], body
    assert key_id in body["server_keys"][0]["verify_keys"]

    alice = register_user(server_a, "alice", "alice-pw")
    bob = register_user(server_b, "bob", "bob-pw")
    assert alice.user_id == server_a.user_id("alice")
    assert bob.user_id == f"@bob:localhost:{server_b.federation_port}"

    # Bob (server B) creates a room and invites Alice (server A).
    status, body = bob.create_room(name="Federated", preset="private_chat")
    assert status == 200, body
    room_id = body["room_id"]
    status, body = bob.invite(room_id, alice.user_id)
    assert status == 200, body  # B only answers once A has signed the invite

    # Alice sees the invite on her own server, with the stripped room state.
    invite_state = alice.wait_for_invite(room_id, timeout=30)
    names = [e["content"].get("name") for e in invite_state if e["type"] == "m.room.name"]
    assert names == ["Federated"], invite_state
    invite = next(e for e in invite_state if e["type"] == "m.room.member"
                  and e["state_key"] == alice.user_id)
    assert invite["content"]["membership"] == "invite" and invite["sender"] == bob.user_id

    # Alice joins through server B (make_join/send_join over federation).
    status, body = alice.join(room_id)
    assert status == 200 and body["room_id"] == room_id, body
    status, body = alice.joined_rooms()
    assert status == 200 and room_id in body["joined_rooms"]
    status, body = alice.get_state(room_id, "m.room.name")
    assert status == 200 and body == {"name": "Federated"}

    # Server B learns about the join.
    def alice_joined_on_b():
        status, body = bob.members(room_id)
        assert status == 200, body
        return {
            e["state_key"] for e in body["chunk"] if e["content"].get("membership") == "join"
        } == {alice.user_id, bob.user_id}
    wait_for(alice_joined_on_b, 30, "alice's join to reach server B")

    # Bob's message reaches Alice on server A ...
    status, body = bob.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi A"})
    assert status == 200, body
    sent_id = body["event_id"]
    event = alice.wait_for_event(room_id, lambda e: e["event_id"] == sent_id, timeout=30)
    assert event["sender"] == bob.user_id
    assert event["content"] == {"msgtype": "m.text", "body": "hi A"}

    # ... and Alice's reply reaches Bob on server B.
    status, body = alice.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi B"})
    assert status == 200, body
    reply_id = body["event_id"]
    event = bob.wait_for_event(room_id, lambda e: e["event_id"] == reply_id, timeout=30)
    assert event["sender"] == alice.user_id and event["content"]["body"] == "hi B"

    print(f"federation round trip (after servers up): {time.monotonic() - t0:.1f}s")
