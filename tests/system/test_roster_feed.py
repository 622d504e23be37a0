"""The roster feed on a real RabbitMQ and a real Synapse: the school cloud
publishes POST /roster bodies on its queue, the engine's consumer thread
applies them through the same code as POST /roster and acknowledges each
only once it is durable.

One broker (started here on free ports, never the machine's) and one
Synapse serve the whole module: RabbitMQ's start-up is slow. The tests run
in file order; each uses its own users.
"""
from __future__ import annotations

import json
import threading
import uuid

import pika  # the school cloud's publisher; scripts/setup.sh installs it
import pytest

from harness.client import wait_for
from harness.rabbitmq import RabbitMQServer
from support import School, base_config, members, membership, uid

pytestmark = pytest.mark.integration

QUEUE = "school-policy.roster"
DLQ = QUEUE + ".dead-letter"
URL_ENV = "SSP_TEST_ROSTER_FEED_URL"
MAX_MESSAGE_BYTES = 8 * 1_048_576
STAFF = ["feedadmin", "feedteacher1", "feedteacher2"]
PUPILS = ["feedpupil1", "feedpupil2"]


@pytest.fixture(scope="module")
def broker():
    server = RabbitMQServer()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="module")
def school(broker, module_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("feed") / "store")
    config["reconciler"] = {"actions_per_second": 200}
    # The URL (with its password) comes from the environment, not homeserver.yaml.
    config["roster_feed"] = {"url_env": URL_ENV, "queue": QUEUE, "prefetch": 50,
                             "max_message_bytes": MAX_MESSAGE_BYTES}
    world = School(module_synapse_factory(config, env={URL_ENV: broker.url}))
    world.register("sync")
    world.register("root", admin=True)
    for name in STAFF + PUPILS:
        world.register(name)
    return world


class Publisher:
    """The school cloud's side: persistent messages on the durable queue."""

    def __init__(self, broker: RabbitMQServer):
        self.connection = broker.connect()
        self.channel = self.connection.channel()
        self.channel.queue_declare(QUEUE, durable=True)
        self.channel.confirm_delivery()

    def publish(self, body, message_id: str | None = None, headers: dict | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.channel.basic_publish(
            "", QUEUE, raw,
            pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                 message_id=message_id, headers=headers),
        )

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - the broker may have gone away under it
            pass


def user_message(localpart: str, school: str, role: str) -> dict:
    return {"users": [{"user_id": uid(localpart), "schools": [membership(school, role)]}]}


def feed_status(world: School) -> dict:
    status, body = world.admin_api("GET", "/status")
    assert status == 200, body
    return body["roster_feed"]


def roster_entry(world: School, localpart: str):
    status, body = world.admin_api("GET", f"/users/{uid(localpart)}")
    return body if status == 200 else None


def wait_on_roster(world: School, localparts, timeout=90) -> None:
    for name in localparts:
        wait_for(lambda n=name: roster_entry(world, n), timeout=timeout,
                 what=f"{name} on the roster")


def test_users_published_on_the_queue_appear_on_the_roster_and_in_the_teachers_room(school, broker):
    publisher = Publisher(broker)
    try:
        publisher.publish({"users": [
            {"user_id": uid("feedadmin"), "schools": [membership("gym-nord", "admin")]},
            {"user_id": uid("feedteacher1"), "schools": [membership("gym-nord", "teacher")]},
            {"user_id": uid("feedpupil1"), "schools": [membership("gym-nord", "student")]},
        ]})
        publisher.publish(user_message("feedteacher2", "gym-nord", "teacher"))
        publisher.publish(user_message("feedpupil2", "gym-nord", "student"))
    finally:
        publisher.close()
    wait_on_roster(school, STAFF + PUPILS)
    assert roster_entry(school, "feedteacher2")["schools"] == [membership("gym-nord", "teacher")]

    def reconciled():
        status, body = school.admin_api("GET", "/status")
        gym = body["schools"]["gym-nord"]
        room = gym["teachers_room"]
        return room if gym["pending"] == 0 and room and members(school, room) >= {
            uid(n) for n in STAFF} else None

    room = wait_for(reconciled, timeout=90, what="the teachers' room to hold the staff")
    found = members(school, room)
    assert {uid(n) for n in STAFF} <= found
    assert not {uid(n) for n in PUPILS} & found
    feed = feed_status(school)
    assert feed["connected"] is True and feed["state"] == "consuming"
    assert feed["messages"]["applied"] >= 3
    assert "guest" not in json.dumps(feed)  # no credentials in the status


def test_malformed_messages_go_to_the_dead_letter_queue_with_their_error_and_the_next_is_applied(
    school, broker
):
    publisher = Publisher(broker)
    try:
        publisher.publish(b'{"users": [')  # not JSON
        publisher.publish(user_message("feedbadrole", "gym-nord", "janitor"))
        publisher.publish(user_message("feedgood", "gym-nord", "student"))
    finally:
        publisher.close()
    wait_on_roster(school, ["feedgood"])
    assert roster_entry(school, "feedbadrole") is None

    connection = broker.connect()
    try:
        channel = connection.channel()

        def dead_letters():
            got = []
            while True:
                method, props, body = channel.basic_get(DLQ, auto_ack=True)
                if method is None:
                    return got
                got.append((props.headers, body))

        letters = []
        wait_for(lambda: letters.extend(dead_letters()) or len(letters) >= 2, timeout=30,
                 what="two dead letters")
    finally:
        connection.close()
    by_body = {body: headers for headers, body in letters}
    syntax = by_body[b'{"users": [']
    assert syntax["x-school-policy-error-kind"] == "invalid_json"
    assert syntax["x-school-policy-error"].startswith("body: invalid JSON")
    bad_role = by_body[json.dumps(user_message("feedbadrole", "gym-nord", "janitor")).encode()]
    assert bad_role["x-school-policy-error-kind"] == "invalid_input"
    # The same key path POST /roster names for the same body.
    status, api_error = school.admin_api(
        "POST", "/roster", user_message("feedbadrole", "gym-nord", "janitor"))
    assert status == 400
    assert bad_role["x-school-policy-error"].startswith("users[0].schools[0].role")
    assert bad_role["x-school-policy-error"] in api_error["error"]
    assert bad_role["x-school-policy-queue"] == QUEUE
    feed = feed_status(school)
    assert feed["messages"]["dead_lettered"] >= 2
    assert feed["last_dead_letter"].startswith("users[0].schools[0].role")


def _dead_letters_by_id(broker, wanted: set[str], timeout: float = 30) -> dict[str, list]:
    """Takes dead letters off the queue until one of each wanted message id
    came, then 2 s more (a second copy would show); other letters are
    passed over. {message_id: [(headers, body), ...]}."""
    import time

    found: dict[str, list] = {}
    connection = broker.connect()
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        settle = None
        while time.monotonic() < deadline:
            method, props, body = channel.basic_get(DLQ, auto_ack=True)
            if method is None:
                if wanted <= found.keys():
                    settle = settle or time.monotonic() + 2
                    if time.monotonic() > settle:
                        break
                time.sleep(0.2)
                continue
            if props.message_id in wanted:
                found.setdefault(props.message_id, []).append((props.headers or {}, body))
    finally:
        connection.close()
    return found


@pytest.mark.parametrize("case", ["poisoned", "oversized", "empty", "no_break_space",
                                  "large_not_json"])
def test_a_message_that_cannot_go_as_it_came_is_dead_lettered_once_and_the_next_is_applied(
    school, broker, case
):
    """A message that is not JSON with a header of 130,880 bytes (too large
    to republish with the module's headers), one over max_message_bytes, an
    empty one, one with a school id holding U+00A0, and 5 MB that are not
    JSON (large enough that the feed gives the memory back after it): each
    goes to the dead-letter queue exactly once, saying why (and what was
    dropped), the message behind it is applied, and the feed never leaves
    `consuming`."""
    bad_id, good = f"feed-{case}-{uuid.uuid4().hex[:8]}", f"feedafter{case.replace('_', '')}"
    headers = None
    if case == "poisoned":
        body = b"\x00not json at all"
        headers = {"x-bulk": "h" * 130_880}
    elif case == "oversized":
        body = json.dumps({"users": [{"user_id": uid(f"feedbig{i}"), "schools": []}
                                     for i in range(200_000)]}).encode()
        assert len(body) > MAX_MESSAGE_BYTES
    elif case == "large_not_json":
        body = b"[" + b"x" * 5_000_000
    elif case == "empty":
        body = b""
    else:
        body = json.dumps(user_message("feednbsp", "gym\u00a0nord", "student")).encode()
    before = feed_status(school)
    stop, states = threading.Event(), []

    def watch():
        while not stop.is_set():
            states.append(feed_status(school)["state"])
            stop.wait(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    publisher = Publisher(broker)
    try:
        publisher.publish(body, message_id=bad_id, headers=headers)
        publisher.publish(user_message(good, "gym-nord", "student"), message_id=bad_id + "-next")
    finally:
        publisher.close()
    try:
        wait_on_roster(school, [good], timeout=60)
        letters = _dead_letters_by_id(broker, {bad_id})
    finally:
        stop.set()
        watcher.join()
    assert len(letters.get(bad_id, [])) == 1, letters.keys()
    headers_out, body_out = letters[bad_id][0]
    after = feed_status(school)
    assert set(states) == {"consuming"}, states
    assert after["connects"] == before["connects"]
    assert after["messages"]["dead_lettered"] == before["messages"]["dead_lettered"] + 1
    assert after["unacked"] == 0
    error, kind = headers_out["x-school-policy-error"], headers_out["x-school-policy-error-kind"]
    if case == "poisoned":
        # the header the broker could not take back is left out, and said so
        assert kind == "invalid_json" and error.startswith("body: invalid JSON")
        assert "x-bulk" not in headers_out
        assert headers_out["x-school-policy-dropped"].startswith("headers: 1 entries, ")
        assert body_out == body
        assert after["messages"]["trimmed"] == before["messages"]["trimmed"] + 1
    elif case == "oversized":
        assert kind == "too_large"
        assert error == (f"body: {len(body)} bytes, more than roster_feed.max_message_bytes "
                         f"({MAX_MESSAGE_BYTES}); not read")
        assert headers_out["x-school-policy-dropped"] == f"body: {len(body)} bytes"
        assert body_out == b""
        assert roster_entry(school, "feedbig0") is None
    elif case == "large_not_json":
        assert kind == "invalid_json" and error.startswith("body: invalid JSON")
        assert "x-school-policy-dropped" not in headers_out
        assert body_out == body  # whole, after the memory was given back
    elif case == "empty":
        assert kind == "invalid_json"
        assert error == ("body: the message is empty; expected a POST /roster body (a JSON "
                         "object with a users list)")
        assert "x-school-policy-dropped" not in headers_out
    else:
        assert kind == "invalid_input"
        assert error.startswith("users[0].schools[0].school: contains a space (U+00A0)")
        assert roster_entry(school, "feednbsp") is None


def test_a_dead_letter_queue_deleted_under_the_feed_loses_no_dead_letter(school, broker):
    """A dead letter to a missing queue is returned by the broker (mandatory),
    never confirmed as dropped: the feed reconnects, declares the queue again
    and dead-letters the redelivered message."""
    connection = broker.connect()
    try:
        connection.channel().queue_delete(DLQ)
    finally:
        connection.close()
    connects_before = feed_status(school)["connects"]
    bad = user_message("feedlostdlq", "gym-nord", "pupil")
    publisher = Publisher(broker)
    try:
        publisher.publish(bad)
    finally:
        publisher.close()

    def dead_letter():
        conn = broker.connect()
        try:
            method, props, body = conn.channel().basic_get(DLQ, auto_ack=True)
            return (props.headers, body) if method is not None else None
        except pika.exceptions.ChannelClosedByBroker:  # not declared again yet
            return None
        finally:
            conn.close()

    headers, body = wait_for(dead_letter, timeout=60, what="the dead letter")
    assert json.loads(body) == bad
    assert headers["x-school-policy-error"].startswith("users[0].schools[0].role")
    assert feed_status(school)["connects"] > connects_before


def _publish_in_background(broker, bodies, started: threading.Event, errors: list):
    """Publishes every body, reconnecting while the broker is away."""
    import time

    i = 0
    publisher = None
    while i < len(bodies):
        try:
            if publisher is None:
                publisher = Publisher(broker)
            publisher.publish(bodies[i])
            i += 1
            if i == 20:
                started.set()
        except Exception:  # noqa: BLE001 - broker restarting: publish again after it is back
            if publisher is not None:
                publisher.close()
            publisher = None
            time.sleep(0.2)
    if publisher is not None:
        publisher.close()
    started.set()


def test_a_broker_restart_mid_stream_loses_nothing(school, broker):
    names = [f"feedrestart{i:03d}" for i in range(150)]
    bodies = [user_message(n, "gs-sued", "student") for n in names]
    started, errors = threading.Event(), []
    thread = threading.Thread(target=_publish_in_background, args=(broker, bodies, started, errors))
    thread.start()
    try:
        started.wait(60)
        connects_before = feed_status(school)["connects"]
        broker.stop()
        wait_for(lambda: feed_status(school)["state"] in ("disconnected", "connecting"),
                 timeout=30, what="the feed to notice the broker is gone")
        assert feed_status(school)["last_error"]
        broker.start()
    finally:
        thread.join(180)
    assert not thread.is_alive()
    wait_on_roster(school, names, timeout=120)
    feed = feed_status(school)
    assert feed["connects"] > connects_before
    assert feed["state"] == "consuming"


def test_synapse_killed_mid_stream_loses_nothing_and_applies_nothing_twice_visibly(school, broker):
    names = [f"feedkill{i:03d}" for i in range(300)]
    publisher = Publisher(broker)
    try:
        for n in names:
            publisher.publish(user_message(n, "gs-sued", "teacher"))
    finally:
        publisher.close()
    # Kill as soon as the stream is partly applied: some messages are then
    # applied and acknowledged, some applied (fsynced) and not acknowledged.
    wait_for(lambda: roster_entry(school, names[20]), timeout=60, what="the stream to start")
    school.server.kill()
    school.server.start()
    wait_on_roster(school, names, timeout=120)
    # A replayed message is an idempotent upsert: one entry, one membership.
    for n in names[::15] + names[-3:]:
        assert roster_entry(school, n)["schools"] == [membership("gs-sued", "teacher")]
    with open(f"{school.server_data_dir}/roster.jsonl") as f:
        last_per_user = {}
        for line in f:
            entry = json.loads(line)
            last_per_user[entry["user_id"]] = entry
    assert all(last_per_user[uid(n)]["schools"] == [membership("gs-sued", "teacher")]
               for n in names)
    # Nothing was counted as a bad message, nothing is left in the queue.
    connection = broker.connect()
    try:
        channel = connection.channel()
        wait_for(lambda: channel.queue_declare(QUEUE, durable=True, passive=True)
                 .method.message_count == 0 and feed_status(school)["unacked"] == 0,
                 timeout=30, what="the queue to drain")
        assert channel.queue_declare(DLQ, durable=True, passive=True).method.message_count == 0
    finally:
        connection.close()
    feed = feed_status(school)
    assert feed["messages"]["dead_lettered"] == 0
    assert feed["state"] == "consuming"


def test_with_postgresql_a_sigkill_mid_stream_loses_nothing(broker, postgres, synapse_factory,
                                                             tmp_path):
    """The PostgreSQL store acknowledges only after the commit; a kill
    between the local outbox and the acknowledgement replays harmlessly."""
    queue = "school-policy.roster.pg"
    db = f"policy_feed_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    config = base_config(tmp_path / "store", database=postgres.dsn(db))
    config["roster_feed"] = {"url_env": URL_ENV, "queue": queue}
    server = synapse_factory(config, env={URL_ENV: broker.url})
    world = School(server)
    world.register("sync")
    names = [f"feedpg{i:03d}" for i in range(200)]
    connection = broker.connect()
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for n in names:
            channel.basic_publish("", queue, json.dumps(user_message(n, "gs-sued", "admin")).encode(),
                                  pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()
    wait_for(lambda: roster_entry(world, names[20]), timeout=60, what="the stream to start")
    server.kill()
    server.start()
    wait_on_roster(world, names, timeout=120)
    connection = broker.connect()
    try:
        channel = connection.channel()
        # Acknowledged only once committed: when nothing is ready in the
        # queue and nothing is unacknowledged, the database holds every user.
        wait_for(lambda: channel.queue_declare(queue, durable=True, passive=True)
                 .method.message_count == 0 and feed_status(world)["unacked"] == 0,
                 timeout=60, what="the queue to drain")
    finally:
        connection.close()
    conn = postgres.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT user_id, school, role FROM school_policy.roster "
                        "WHERE user_id LIKE '@feedpg%%'")
            rows = cur.fetchall()
    finally:
        conn.close()
    assert sorted(rows) == sorted((uid(n), "gs-sued", "admin") for n in names)


@pytest.mark.parametrize(
    "feed, message",
    [
        ({"url_env": "SSP_TEST_FEED_URL_UNSET"},
         "roster_feed.url_env: the environment variable SSP_TEST_FEED_URL_UNSET is not set"),
        ({"url": "amqp://sync:s3cret@mq.example/", "prefetch": 0},
         "roster_feed.prefetch: expected an integer from 1 to 65535"),
    ],
)
def test_synapse_refuses_to_start_on_a_bad_roster_feed_and_names_the_key(
    synapse_factory, tmp_path, feed, message
):
    config = base_config(tmp_path / "store", roster_feed=feed)
    server = synapse_factory(config, start=False)
    exit_code, output = server.start_expect_failure()
    assert exit_code != 0
    assert message in output, output[-2000:]
    assert "s3cret" not in output


def test_metrics_read_the_feed_state_at_scrape_time():
    from prometheus_client.core import REGISTRY

    from synapse_school_policy.metrics import bind_roster_feed_gauges

    state = {"connected": True, "lag": 7,
             "messages": {"applied": 5, "dead_lettered": 2, "retried": 1}}
    bind_roster_feed_gauges(lambda: state)

    def sample(name, **labels):
        return REGISTRY.get_sample_value("synapse_school_policy_" + name, labels)

    assert sample("roster_feed_connected") == 1.0
    assert sample("roster_feed_lag") == 7.0
    assert sample("roster_feed_messages_total", outcome="applied") == 5.0
    assert sample("roster_feed_messages_total", outcome="dead_lettered") == 2.0
    assert sample("roster_feed_messages_total", outcome="retried") == 1.0
    state.update(connected=False, lag=None)
    assert sample("roster_feed_connected") == 0.0
    assert sample("roster_feed_lag") == -1.0
