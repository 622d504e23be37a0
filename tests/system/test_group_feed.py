"""Groups through the roster feed, on a real RabbitMQ and a real Synapse:
a groups message is applied, acknowledged once durable, and its room made;
a bad group is dead-lettered with the key path of what is wrong (the same
text POST /roster answers)."""
from __future__ import annotations

import json

import pytest

from harness.client import wait_for
from harness.rabbitmq import RabbitMQServer
from support import School, base_config, members, membership, uid
from .test_roster_feed import DLQ, QUEUE, URL_ENV, Publisher

pytestmark = pytest.mark.integration

OWNER = uid("school-policy")


@pytest.fixture(scope="module")
def broker():
    server = RabbitMQServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="module")
def school(broker, module_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("groupfeed") / "store")
    config["schools"]["gym-nord"]["teachers_room"] = False
    config["reconciler"] = {"actions_per_second": 200}
    config["roster_feed"] = {"url_env": URL_ENV, "queue": QUEUE, "prefetch": 10}
    world = School(module_synapse_factory(config, env={URL_ENV: broker.url}))
    world.register("sync")
    world.register("root", admin=True)
    for name in ("fberg", "fali", "fbea"):
        world.register(name)
    return world


def feed(world):
    status, body = world.admin_api("GET", "/status")
    assert status == 200, body
    return body["roster_feed"]


def test_a_groups_message_is_applied_acknowledged_and_its_room_made(school, broker):
    message = {
        "users": [{"user_id": uid("fberg"), "schools": [membership("gym-nord", "teacher")]},
                  {"user_id": uid("fali"), "schools": [membership("gym-nord", "student")]}],
        "groups": [{"group": "feed-course", "school": "gym-nord", "kind": "course", "name": "Feed 1",
                    "members": [{"user_id": uid("fberg"), "role": "moderator"},
                                {"user_id": uid("fali"), "role": "member"}]}],
    }
    applied_before = feed(school)["messages"]["applied"]
    publisher = Publisher(broker)
    try:
        publisher.publish(message)
    finally:
        publisher.close()

    def room():
        status, body = school.admin_api("GET", "/groups/feed-course")
        return body.get("room_id") if status == 200 else None

    room_id = wait_for(room, timeout=60, what="the group from the feed to get its room")
    wait_for(lambda: members(school, room_id) == {OWNER, uid("fberg"), uid("fali")} or None, timeout=60,
             what="the members of the feed's group")
    status = feed(school)
    assert status["messages"]["applied"] == applied_before + 1
    # Acknowledged: nothing left on the queue, nothing redelivered.
    connection = broker.connect()
    try:
        declared = connection.channel().queue_declare(QUEUE, durable=True, passive=True)
        assert declared.method.message_count == 0
    finally:
        connection.close()


def test_a_bad_group_is_dead_lettered_with_its_key_path(school, broker):
    bad = {"groups": [{"group": "feed-bad", "school": "gym-nord", "kind": "course", "name": "Bad",
                       "members": [{"user_id": uid("fbea"), "role": "pupil"}]}]}
    publisher = Publisher(broker)
    try:
        publisher.publish(bad)
    finally:
        publisher.close()
    connection = broker.connect()
    try:
        channel = connection.channel()
        letters = []

        def letter():
            method, props, body = channel.basic_get(DLQ, auto_ack=True)
            if method is not None:
                letters.append((props.headers, body))
            return any(b == json.dumps(bad).encode() for _, b in letters) or None

        wait_for(letter, timeout=30, what="the bad group's dead letter")
    finally:
        connection.close()
    headers = next(h for h, b in letters if b == json.dumps(bad).encode())
    assert headers["x-school-policy-error-kind"] == "invalid_input"
    assert headers["x-school-policy-error"].startswith("groups[0].members[0].role")
    status, api = school.admin_api("POST", "/roster", bad)
    assert status == 400 and headers["x-school-policy-error"] in api["error"], api
    status, _ = school.admin_api("GET", "/groups/feed-bad")
    assert status == 404
