"""Helpers shared by the integration tests: a school world on a real Synapse.

A `School` registers the usual cast through Synapse's admin API, loads their
roster through the module's admin API as the service user, and offers the
assertions every rule test needs: denied with the right rule id, and audited.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.config.server import DEFAULT_ROOM_VERSION

from harness.client import Client, register_user, request

SERVER_NAME = "school.test"
ADMIN_API = "/_synapse/client/school_policy/v1"
POLICY_EVENT_TYPE = "org.synapse_school_policy.room"
PASSWORD = "correct horse battery staple"
MODERATOR_LEVEL = 50
# The tests run in the virtualenv of the Synapse they start (the newest or
# the oldest of the window: scripts/test.sh), so its default room version is
# the one their rooms get.
DEFAULT_VERSION_GIVES_CREATORS_POWER = KNOWN_ROOM_VERSIONS[DEFAULT_ROOM_VERSION].msc4289_creator_power_enabled


def base_config(store_dir, **overrides):
    config = {
        "service_users": [f"@sync:{SERVER_NAME}"],
        "data_dir": str(store_dir),
        "schools": {
            "gym-nord": {"messenger": True},
            "gs-sued": {"messenger": False},
        },
    }
    config.update(overrides)
    return config


def uid(localpart: str) -> str:
    return f"@{localpart}:{SERVER_NAME}"


def membership(school: str, role: str) -> dict:
    return {"school": school, "role": role}


@dataclass
class School:
    server: object
    users: dict[str, Client] = field(default_factory=dict)

    @property
    def server_data_dir(self):
        return self.server.module_config["data_dir"]

    @property
    def sync(self) -> Client:
        return self.users["sync"]

    def register(self, localpart: str, admin: bool = False) -> Client:
        client = register_user(self.server, localpart, PASSWORD, admin=admin)
        self.users[localpart] = client
        return client

    def admin_api(self, method: str, path: str, body=None, query=None, as_user: Client | None = None):
        token = (as_user or self.sync).token
        return request(self.server.base_url, method, ADMIN_API + path, body=body, token=token, query=query)

    def put_roster(self, localpart: str, *memberships: dict):
        status, body = self.admin_api("PUT", f"/users/{uid(localpart)}", {"schools": list(memberships)})
        assert status == 200, body
        return body

    def audit(self, **query) -> list[dict]:
        status, body = self.admin_api("GET", "/audit", query={k: v for k, v in query.items() if v is not None})
        assert status == 200, body
        return body["records"]

    def managed_room(
        self, school: str, kind: str = "course", invite=(), two_way: bool = False, moderators=()
    ) -> str:
        """A room set up the way the school cloud's sync does it: teachers are
        moderators, pupils at level 0, the policy event in the initial state."""
        # Room version 12 (Synapse's default from 1.16x) gives the creator
        # unlimited power and refuses to list them in `users`; older default
        # versions (10 on the oldest supported Synapse) require them there.
        users = {uid(name): MODERATOR_LEVEL for name in moderators}
        if not DEFAULT_VERSION_GIVES_CREATORS_POWER:
            users[uid("sync")] = 100
        status, body = self.sync.create_room(
            preset="private_chat",
            invite=[uid(name) for name in invite],
            power_level_content_override={"users": users, "events_default": 0 if two_way else MODERATOR_LEVEL},
            initial_state=[
                {
                    "type": POLICY_EVENT_TYPE,
                    "state_key": "",
                    "content": {"school": school, "kind": kind, "two_way": two_way},
                }
            ],
        )
        assert status == 200, body
        return body["room_id"]


def wait_for_state(client: Client, room_id: str, event_type: str, predicate, timeout: float = 10):
    """Polls a state event until predicate(content) holds; returns the content."""
    deadline = time.monotonic() + timeout
    while True:
        status, content = client.get_state(room_id, event_type)
        if status == 200 and predicate(content):
            return content
        if time.monotonic() > deadline:
            raise AssertionError(f"{event_type} in {room_id} never matched; last: {status} {content}")
        time.sleep(0.1)


def assert_denied(response, rule: str):
    status, body = response
    assert status == 403, f"expected 403 {rule}, got {status} {body}"
    assert body.get("errcode") == "M_FORBIDDEN", body
    assert body.get("school_policy", {}).get("rule") == rule, body
    return body


def assert_token_refused(response):
    """Synapse's answer when the module's is_user_expired refuses a token:
    its own 403, which carries no rule id (the audit record does)."""
    status, body = response
    assert status == 403, f"expected the token to be refused, got {status} {body}"
    assert body.get("errcode") == "ORG_MATRIX_EXPIRED_ACCOUNT", body
    return body


def assert_audited(world: School, rule: str, actor: str, **fields) -> dict:
    """Finds the newest audit record of `rule` by `actor` matching `fields`."""
    deadline = time.monotonic() + 5
    while True:
        for record in world.audit(rule=rule, user=actor, limit=50):
            if record["actor"] == actor and all(record.get(k) == v for k, v in fields.items()):
                return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit record rule={rule} actor={actor} {fields}")
        time.sleep(0.1)
