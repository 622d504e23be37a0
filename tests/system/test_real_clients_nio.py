"""Rule 2 with real end-to-end encrypted clients (matrix-nio with libolm).

A teacher and a pupil each run a matrix-nio client with encryption on: the
client uploads its device keys, the two verify each other's devices, and
every message is Megolm-encrypted on the device, so the server (and the
module) only ever sees `m.room.encrypted`. The module must still refuse the
pupil in a one-way course, let the teacher's message reach the pupil's device
intact, and let the pupil through once the course is opened (`two_way`)."""
import asyncio
import json
import time
import uuid

import nio  # scripts/setup.sh installs matrix-nio[e2e] into the test venv
import pytest

from harness.client import CS, q
from support import (
    MODERATOR_LEVEL,
    PASSWORD,
    POLICY_EVENT_TYPE,
    School,
    assert_audited,
    base_config,
    membership,
    uid,
)

pytestmark = pytest.mark.integration

MEGOLM = "m.megolm.v1.aes-sha2"
TIMEOUT = 60


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    world = School(module_synapse_factory(base_config(tmp_path_factory.mktemp("policy") / "store")))
    world.register("sync")
    for name in ("teacher", "pupil"):
        world.register(name)
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("pupil", membership("gym-nord", "student"))
    return world


def encrypted_course(world: School) -> str:
    """A one-way course as the school cloud's sync creates it, encrypted from
    the start (m.room.encryption in the initial state)."""
    status, body = world.sync.create_room(
        preset="private_chat",
        invite=[uid("teacher"), uid("pupil")],
        power_level_content_override={"users": {uid("teacher"): MODERATOR_LEVEL}, "events_default": MODERATOR_LEVEL},
        initial_state=[
            {"type": POLICY_EVENT_TYPE, "state_key": "", "content": {"school": "gym-nord", "kind": "course", "two_way": False}},
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}},
        ],
    )
    assert status == 200, body
    return body["room_id"]


async def e2ee_client(world: School, localpart: str, store_dir) -> "nio.AsyncClient":
    """Logs in with a fresh device, encryption on; the first sync uploads the
    device and one-time keys."""
    store_dir.mkdir(parents=True)  # the Olm account and sessions (SQLite)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    client = nio.AsyncClient(world.server.base_url, uid(localpart), store_path=str(store_dir), config=config)
    response = await client.login(PASSWORD, device_name=f"{localpart}'s nio")
    if not isinstance(response, nio.LoginResponse):
        await client.close()
        raise AssertionError(f"{localpart} could not log in: {response}")
    assert client.olm is not None, "the client has no Olm machine: matrix-nio was installed without [e2e]"
    await sync(client)
    assert client.olm.account.shared, f"{localpart}'s device keys were not uploaded"
    return client


async def sync(client: "nio.AsyncClient", timeout_ms: int = 0) -> "nio.SyncResponse":
    response = await client.sync(timeout=timeout_ms, full_state=client.next_batch is None)
    assert isinstance(response, nio.SyncResponse), response
    if client.should_upload_keys:
        assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
    return response


async def sync_until(client: "nio.AsyncClient", find, what: str):
    """Runs the client's sync loop until find(sync_response) returns something."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = find(await sync(client, timeout_ms=1000))
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.user_id} never saw {what}")


def message_from(room_id: str, sender: str, body: str):
    def find(response):
        room = response.rooms.join.get(room_id)
        for event in room.timeline.events if room else ():
            if isinstance(event, nio.MegolmEvent):
                raise AssertionError(f"{event.event_id} from {event.sender} could not be decrypted: {event}")
            if isinstance(event, nio.RoomMessageText) and event.sender == sender and event.body == body:
                return event
        return None

    return find


async def join_and_trust(world: School, room_id: str, store_dir):
    """Both clients join the encrypted course and verify each other's device
    (each side's keys come from the server through a real key query)."""
    clients = {name: await e2ee_client(world, name, store_dir / name) for name in ("teacher", "pupil")}
    for client in clients.values():
        assert isinstance(await client.join(room_id), nio.JoinResponse)
    for client in clients.values():
        await sync_until(client, lambda r: True if room_id in r.rooms.join else None, "the joined course")
        assert client.rooms[room_id].encrypted
    for name, client in clients.items():
        other = uid("pupil" if name == "teacher" else "teacher")
        assert isinstance(await client.keys_query(), nio.KeysQueryResponse) or not client.should_query_keys
        devices = list(client.device_store.active_user_devices(other))
        assert devices, f"{name} sees no device of {other}"
        for device in devices:
            client.verify_device(device)
    return clients


async def send_text(client: "nio.AsyncClient", room_id: str, text: str):
    """Sends an encrypted text; nio shares the Megolm session with the verified
    devices first (to-device Olm messages)."""
    return await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})


def assert_ciphertext_on_server(world: School, reader: str, room_id: str, event_id: str, text: str):
    """The server holds only the Megolm ciphertext of what the client decrypted."""
    status, event = world.users[reader].request("GET", f"{CS}/rooms/{q(room_id)}/event/{q(event_id)}")
    assert status == 200, event
    assert event["type"] == "m.room.encrypted" and event["content"]["algorithm"] == MEGOLM, event
    assert text not in json.dumps(event)


def may_send_encrypted(client: "nio.AsyncClient", room_id: str) -> bool:
    """nio's own permission check, from the power levels the client synced."""
    return client.rooms[room_id].power_levels.can_user_send_message(client.user_id, "m.room.encrypted")


async def rule_of(response) -> str | None:
    body = await response.transport_response.json()
    return body.get("school_policy", {}).get("rule")


async def close(clients):
    """Logs out (the device and its keys are deleted on the server, so the
    next test's clients find only their own devices) and closes."""
    for client in clients.values():
        try:
            await client.logout()
        finally:
            await client.close()


def test_encrypted_one_way_course(school, tmp_path):
    room_id = encrypted_course(school)

    async def scenario():
        clients = await join_and_trust(school, room_id, tmp_path)
        teacher, pupil = clients["teacher"], clients["pupil"]
        try:
            # The pupil's client encrypts and sends; the server refuses it.
            refused = await send_text(pupil, room_id, f"pupil {uuid.uuid4().hex}")
            assert isinstance(refused, nio.RoomSendError), refused
            assert refused.status_code == "M_FORBIDDEN", refused
            assert await rule_of(refused) == "one_way"

            # The teacher's encrypted message reaches the pupil's device and decrypts.
            text = f"homework {uuid.uuid4().hex}"
            sent = await send_text(teacher, room_id, text)
            assert isinstance(sent, nio.RoomSendResponse), sent
            event = await sync_until(pupil, message_from(room_id, uid("teacher"), text), "the teacher's message")
            assert event.decrypted and event.event_id == sent.event_id
            assert event.verified, "the pupil's client does not trust the teacher's device"
            assert_ciphertext_on_server(school, "pupil", room_id, sent.event_id, text)
        finally:
            await close(clients)

    asyncio.run(scenario())
    record = assert_audited(school, "one_way", uid("pupil"), room_id=room_id, event_type="m.room.encrypted")
    assert record["callback"] == "check_event_for_spam" and record["school"] == "gym-nord"


def test_encrypted_course_opened_two_way(school, tmp_path):
    room_id = encrypted_course(school)

    async def scenario():
        clients = await join_and_trust(school, room_id, tmp_path)
        teacher, pupil = clients["teacher"], clients["pupil"]
        try:
            assert not may_send_encrypted(pupil, room_id)
            refused = await send_text(pupil, room_id, "before")
            assert isinstance(refused, nio.RoomSendError) and await rule_of(refused) == "one_way", refused

            # The teacher (a moderator) opens the course from their own client.
            opened = await teacher.room_put_state(
                room_id, POLICY_EVENT_TYPE, {"school": "gym-nord", "kind": "course", "two_way": True}
            )
            assert isinstance(opened, nio.RoomPutStateResponse), opened
            # The pupil's client learns of it through its own sync: the module
            # lowers events_default to match the flag.
            await sync_until(
                pupil,
                lambda r: True if may_send_encrypted(pupil, room_id) else None,
                "the power levels that let it post",
            )

            text = f"my answer {uuid.uuid4().hex}"
            sent = await send_text(pupil, room_id, text)
            assert isinstance(sent, nio.RoomSendResponse), sent
            event = await sync_until(teacher, message_from(room_id, uid("pupil"), text), "the pupil's message")
            assert event.decrypted and event.event_id == sent.event_id and event.verified
            assert_ciphertext_on_server(school, "teacher", room_id, sent.event_id, text)
        finally:
            await close(clients)

    asyncio.run(scenario())
