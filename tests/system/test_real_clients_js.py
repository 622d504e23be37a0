"""What a real matrix-js-sdk client (the SDK under Element) shows.

tests/js/client.mjs runs matrix-js-sdk under Node: it logs in, syncs with the
SDK's own sync loop, and reports the SDK's own permission check
(Room.maySendMessage(), which Element uses to disable the composer) and its
room list with the names it computes. The module keeps the power levels in
line with the policy, so the client must say "cannot send" in a one-way course
and "can send" once the course is opened, and must list the school's special
rooms by name."""
import hashlib
import json
import os
import pathlib
import subprocess
import threading

import pytest

from harness.client import wait_for
from support import (
    MODERATOR_LEVEL,
    PASSWORD,
    POLICY_EVENT_TYPE,
    REPO_ROOT,
    School,
    assert_denied,
    base_config,
    membership,
    uid,
)

pytestmark = pytest.mark.integration

JS_DIR = REPO_ROOT / "tests" / "js"
TEACHERS_ROOM_NAME = "Teachers' room (gym-nord)"
ANNOUNCEMENT_ROOM_NAME = "Announcements (gym-nord)"
TEXT = {"msgtype": "m.text", "body": "hello"}
TIMEOUT = 60


def js_modules() -> pathlib.Path:
    """The node_modules that scripts/setup.sh installed for tests/js, in the
    cache and keyed by the lock file (or SSP_JS_MODULES)."""
    if os.environ.get("SSP_JS_MODULES"):
        path = pathlib.Path(os.environ["SSP_JS_MODULES"])
    else:
        key = hashlib.sha256((JS_DIR / "package-lock.json").read_bytes()).hexdigest()[:16]
        cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
        path = cache / "synapse-school-policy" / f"js-{key}" / "node_modules"
    if not (path / "matrix-js-sdk" / "package.json").is_file():
        raise RuntimeError(f"matrix-js-sdk is not installed in {path}: run scripts/setup.sh")
    return path


class JsClient:
    """One matrix-js-sdk client process, spoken to in JSON lines."""

    def __init__(self, world: School, localpart: str):
        env = {
            **os.environ,
            "SSP_JS_MODULES": str(js_modules()),
            "SSP_BASE_URL": world.server.base_url,
            "SSP_USER": localpart,
            "SSP_PASSWORD": PASSWORD,
        }
        self.proc = subprocess.Popen(
            ["node", str(JS_DIR / "client.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.ready = self._read()
        assert self.ready.get("ready"), self.ready

    def _read(self) -> dict:
        # The client answers within its own timeouts; a dead client ends stdout.
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise AssertionError(f"the js client exited {self.proc.returncode}: {''.join(self.stderr)[-3000:]}")
        answer = json.loads(line)
        assert "error" not in answer, (answer, "".join(self.stderr)[-3000:])
        return answer

    def ask(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def room(snapshot: dict, room_id: str) -> dict:
    found = [r for r in snapshot["rooms"] if r["room_id"] == room_id]
    assert found, f"{room_id} is not in {snapshot['user_id']}'s room list: {snapshot['rooms']}"
    return found[0]


def named(snapshot: dict, name: str) -> list[dict]:
    return [r for r in snapshot["rooms"] if r["name"] == name]


@pytest.fixture(scope="module")
def school(module_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("policy") / "store")
    config["schools"]["gym-nord"]["announcement_room"] = True  # teachers_room is on by default
    config["reconciler"] = {"actions_per_second": 200}
    world = School(module_synapse_factory(config))
    world.register("sync")
    for name in ("teacher", "pupil"):
        world.register(name)
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("pupil", membership("gym-nord", "student"))

    def reconciled():
        status, body = world.admin_api("GET", "/status")
        assert status == 200, body
        school = body["schools"]["gym-nord"]
        done = school["pending"] == 0 and school["teachers_room"] and school["announcement_room"]
        return school if done else None

    world.special_rooms = wait_for(reconciled, timeout=90, what="the reconciler to set up gym-nord's rooms")
    return world


@pytest.fixture
def clients():
    started: list[JsClient] = []
    yield lambda world, localpart: started.append(JsClient(world, localpart)) or started[-1]
    for client in started:
        client.close()


def test_composer_follows_one_way_and_two_way(school, clients):
    room_id = school.managed_room("gym-nord", invite=["teacher", "pupil"], moderators=["teacher"])
    for name in ("teacher", "pupil"):
        assert school.users[name].join(room_id)[0] == 200

    pupil = clients(school, "pupil")
    course = room(pupil.ready, room_id)
    assert course["membership"] == "join"
    assert course["events_default"] == MODERATOR_LEVEL
    assert course["may_send_message"] is False
    assert course["may_send_plain"] is False and course["may_send_encrypted"] is False
    # The server agrees with what the client shows.
    assert_denied(school.users["pupil"].send(room_id, "m.room.message", TEXT), "one_way")

    status, body = school.users["teacher"].put_state(
        room_id, POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "course", "two_way": True}
    )
    assert status == 200, body
    # The same running client picks the change up through its own sync.
    after = pupil.ask(op="wait", room=room_id, may_send=True, timeout_ms=TIMEOUT * 1000)
    assert after["timed_out"] is False
    course = room(after, room_id)
    assert course["may_send_message"] is True and course["events_default"] == 0
    assert course["may_send_plain"] is True and course["may_send_encrypted"] is True
    status, body = school.users["pupil"].send(room_id, "m.room.message", TEXT)
    assert status == 200, body

    # Closed again: the composer goes away again.
    status, body = school.users["teacher"].put_state(
        room_id, POLICY_EVENT_TYPE, "", {"school": "gym-nord", "kind": "course", "two_way": False}
    )
    assert status == 200, body
    closed = pupil.ask(op="wait", room=room_id, may_send=False, timeout_ms=TIMEOUT * 1000)
    assert closed["timed_out"] is False and room(closed, room_id)["may_send_message"] is False


def test_special_rooms_in_the_room_list(school, clients):
    teachers_room = school.special_rooms["teachers_room"]
    announcement_room = school.special_rooms["announcement_room"]

    teacher = clients(school, "teacher").ready
    assert [r["room_id"] for r in named(teacher, TEACHERS_ROOM_NAME)] == [teachers_room]
    assert [r["room_id"] for r in named(teacher, ANNOUNCEMENT_ROOM_NAME)] == [announcement_room]
    assert room(teacher, teachers_room)["membership"] == "join"
    assert room(teacher, teachers_room)["may_send_message"] is True
    assert room(teacher, announcement_room)["may_send_message"] is True

    pupil = clients(school, "pupil").ready
    assert [r["room_id"] for r in named(pupil, ANNOUNCEMENT_ROOM_NAME)] == [announcement_room]
    assert room(pupil, announcement_room)["membership"] == "join"
    # One-way for pupils: the composer is off.
    assert room(pupil, announcement_room)["may_send_message"] is False
    # The teachers' room is not the pupil's to see.
    assert named(pupil, TEACHERS_ROOM_NAME) == []
    assert teachers_room not in [r["room_id"] for r in pupil["rooms"]]
