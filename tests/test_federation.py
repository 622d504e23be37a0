"""Federation into the school: a second homeserver, started by the test,
tries to reach a local pupil."""
import pytest

from harness.client import register_user, wait_for
from harness.synapse import start_servers
from support import ADMIN_API, PASSWORD, POLICY_EVENT_TYPE, base_config

pytestmark = pytest.mark.integration


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
