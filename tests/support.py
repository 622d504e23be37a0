"""Helpers the tests share (each is defined here once).

- The school world on a real Synapse: a `School` registers the usual cast
  through Synapse's admin API, loads their roster through the module's admin
  API as the service user, and sets up managed rooms the way the school
  cloud's sync does.
- The assertions every rule test makes: denied with the right rule id, and
  audited (or not audited); a refused token.
- Client actions that several rule files use: direct chats, invites as a
  full /sync shows them, the policy event, every kind of request a token
  makes.
- The command line and the engine without Synapse: `run_cli`, `deny_login`.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.config.server import DEFAULT_ROOM_VERSION

from harness.client import CS, Client, q, register_user, request, wait_for
from synapse_school_policy import _core

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVER_NAME = "school.test"
ADMIN_API = "/_synapse/client/school_policy/v1"
POLICY_EVENT_TYPE = "org.synapse_school_policy.room"
PASSWORD = "correct horse battery staple"
MODERATOR_LEVEL = 50
# The tests run in the virtualenv of the Synapse they start (the newest or
# the oldest of the window: scripts/test.sh), so its default room version is
# the one their rooms get.
DEFAULT_VERSION_GIVES_CREATORS_POWER = KNOWN_ROOM_VERSIONS[DEFAULT_ROOM_VERSION].msc4289_creator_power_enabled
GYM = "gym-nord"  # opted in (base_config)
WEST = "rs-west"  # a second school, opted in where a world adds it
TEXT = {"msgtype": "m.text", "body": "hello"}
# Synapse's errcode when the module's is_user_expired refuses a token.
EXPIRED = "ORG_MATRIX_EXPIRED_ACCOUNT"


# The tests deny the same user the same thing many times and expect a 403
# with a record each time, so their flood limit (audit.flood) is out of
# reach; tests/system/test_denial_flood.py tests the limit with its own.
UNLIMITED_FLOOD = {"burst": 1000000}


def base_config(store_dir, **overrides):
    config = {
        "service_users": [f"@sync:{SERVER_NAME}"],
        "data_dir": str(store_dir),
        "schools": {
            "gym-nord": {"messenger": True},
            "gs-sued": {"messenger": False},
        },
        "audit": {"flood": UNLIMITED_FLOOD},
    }
    # An `audit` override keeps the unlimited flood unless it sets its own.
    audit = {**config["audit"], **overrides.pop("audit", {})}
    config.update(overrides)
    config["audit"] = audit
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


def assert_expired(responses: dict[str, tuple[int, dict]]) -> None:
    """Every response is Synapse's own refusal of an expired token."""
    for name, (status, body) in responses.items():
        assert status == 403, f"{name}: expected 403 {EXPIRED}, got {status} {str(body)[:300]}"
        assert body.get("errcode") == EXPIRED, f"{name}: {body}"
        assert "school_policy" not in body, f"{name}: Synapse's own body expected, got {body}"


def assert_working(responses: dict[str, tuple[int, dict]]) -> None:
    for name, (status, body) in responses.items():
        assert status == 200, f"{name}: expected 200, got {status} {str(body)[:300]}"


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


def no_audit(world: School, actor: str, since: int, settle: float = 2.0, **fields) -> None:
    """Asserts that no audit record by `actor` matching `fields` appears since `since`."""
    deadline = time.monotonic() + settle
    while True:
        found = [
            r for r in world.audit(user=actor, since=since, limit=200)
            if r["actor"] == actor and all(r.get(k) == v for k, v in fields.items())
        ]
        assert not found, f"unexpected audit records: {found}"
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)


# ---- rooms and requests, as a client makes them -------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def policy_event(school=GYM, kind="course", two_way=False) -> dict:
    """The policy event as an `initial_state` entry of a createRoom body."""
    return {"type": POLICY_EVENT_TYPE, "state_key": "", "content": {"school": school, "kind": kind, "two_way": two_way}}


def set_policy(client: Client, room_id: str, two_way: bool, school=GYM, kind="course"):
    return client.put_state(room_id, POLICY_EVENT_TYPE, "", {"school": school, "kind": kind, "two_way": two_way})


def member_invite(user_id: str, is_direct: bool = False) -> dict:
    """An invite as an `initial_state` entry of a createRoom body."""
    content = {"membership": "invite"}
    if is_direct:
        content["is_direct"] = True
    return {"type": "m.room.member", "state_key": user_id, "content": content}


def direct_chat_request(client: Client, invitee: str):
    """createRoom of a direct chat with `invitee`; returns (status, body)."""
    return client.create_room(preset="trusted_private_chat", is_direct=True, invite=[invitee])


def direct_chat(client: Client, invitee: str) -> str:
    status, body = direct_chat_request(client, invitee)
    assert status == 200, body
    return body["room_id"]


def private_room(client: Client) -> str:
    """A new private room of `client`'s own (a group room, no one invited)."""
    status, body = client.create_room(preset="private_chat")
    assert status == 200, body
    return body["room_id"]


def joined_rooms(client: Client) -> set[str]:
    status, body = client.joined_rooms()
    assert status == 200, body
    return set(body["joined_rooms"])


_nonce = iter(range(10**9))


def fresh_sync(client: Client):
    """A full /sync that Synapse answers afresh: it caches the answer to an
    identical /sync request for two minutes, so each call differs in its filter."""
    return client.sync(filter={"room": {"timeline": {"limit": 1, "not_types": [f"x.nonce.{next(_nonce)}"]}}})


def invites(client: Client) -> set[str]:
    """Room ids the client holds an invite to, as a full /sync shows them."""
    status, body = fresh_sync(client)
    assert status == 200, str(body)[:300]
    return set(body.get("rooms", {}).get("invite", {}))


def wait_for_invite(client: Client, room_id: str, timeout: float = 15) -> None:
    wait_for(lambda: room_id in invites(client), timeout, f"invite to {room_id} for {client.user_id}")


def member_content(client: Client, room_id: str, user_id: str) -> dict:
    status, body = client.get_state(room_id, "m.room.member", user_id)
    assert status == 200, body
    return body


def members(world: School, room_id: str) -> set[str]:
    """Joined members, as a server admin sees them (the world's `root`)."""
    status, body = request(
        world.server.base_url, "GET", f"/_synapse/admin/v1/rooms/{q(room_id)}/members",
        token=world.users["root"].token,
    )
    assert status == 200, body
    return set(body["members"])


def knock(client: Client, room_id: str, reason: str = "let me in", servers=()):
    return client.request(
        "POST", f"{CS}/knock/{q(room_id)}", {"reason": reason},
        query=[("server_name", s) for s in servers] or None,
    )


def upload(client: Client, data: bytes = b"hello", content_type: str = "text/plain"):
    """POST /_matrix/media/v3/upload with a raw body."""
    req = urllib.request.Request(
        client.base_url + "/_matrix/media/v3/upload?filename=x.txt", data=data, method="POST"
    )
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {client.token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"_raw": raw.decode(errors="replace")}


_txn = iter(range(10**9))


def requests_of_every_kind(client: Client, room_id: str) -> dict[str, tuple[int, dict]]:
    """One request of every kind a token makes beside sending and joining,
    keyed by name: what a refused token must no longer do (none of these
    asks a spam-checker callback; only is_user_expired closes them)."""
    user = client.user_id
    return {
        "sync": fresh_sync(client),
        "typing": client.request("PUT", f"{CS}/rooms/{q(room_id)}/typing/{q(user)}", {"typing": True, "timeout": 1000}),
        "presence": client.request("PUT", f"{CS}/presence/{q(user)}/status", {"presence": "online", "status_msg": "meet me at 5"}),
        "displayname": client.request("PUT", f"{CS}/profile/{q(user)}/displayname", {"displayname": "still here"}),
        "account_data": client.request("PUT", f"{CS}/user/{q(user)}/account_data/x", {"note": "hidden"}),
        "media_upload": upload(client),
        "to_device": client.request(
            "PUT", f"{CS}/sendToDevice/org.example.secret/every-kind-{next(_txn)}",
            {"messages": {uid("pupil"): {"*": {"body": "psst"}}}},
        ),
        "messages": client.messages(room_id),
    }


def send_delayed(client: Client, room_id: str, content: dict, delay_ms: int, event_type: str = "m.room.message") -> str:
    """Schedules a delayed event (MSC4140, `?org.matrix.msc4140.delay=`);
    returns its delay id. Synapse asks no module now: the event is checked
    when it fires."""
    status, body = client.request(
        "PUT", f"{CS}/rooms/{q(room_id)}/send/{q(event_type)}/delayed-{next(_txn)}", content,
        query={"org.matrix.msc4140.delay": str(delay_ms)},
    )
    assert status == 200 and "delay_id" in body, body
    return body["delay_id"]


def timeline_bodies(client: Client, room_id: str) -> list[str]:
    """The `body` of the room's last 50 events, as `client` reads them."""
    status, body = client.messages(room_id)
    assert status == 200, body
    return [e.get("content", {}).get("body") for e in body["chunk"]]


# ---- the command line and the engine without Synapse ----------------------------------


def run_cli(config_path, *args):
    """The synapse-school-policy command of this virtualenv, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "synapse_school_policy.cli", "--config", str(config_path), *args],
        capture_output=True, text=True, timeout=120,
    )


def deny_login(engine, *actors):
    """Has the engine deny each actor's login (not_on_roster), and waits for the audit records."""
    for actor in actors:
        engine.decide(_core.CB_CHECK_LOGIN_FOR_SPAM, actor, None, None, None, None, None,
                      None, _core.FACT_NO, None, None, None, None)
    engine.audit_flush()
