"""The worlds the rule files share: each is one Synapse with the module on
PostgreSQL, started when a test of this folder first asks for it and stopped
after the folder's last test (package scope), so that a rule family's file
can use any of them without starting another server.

- `school`: the default world for a rule test. Two opted-in schools,
  gym-nord (teachers' room on) and rs-west, and gs-sued, which has not
  opted in; a cast on the roster in each; a one-way gym-nord course that
  all of gym-nord's cast share (`school.course`, teacher as moderator) and
  a two-way rs-west course (`school.course_b`); `m.reaction` allowed in
  one-way rooms. Its Synapse has delayed events on (MSC4140) and may reach
  127.0.0.1 over HTTP (a test's push gateway): `SCHOOL_SYNAPSE_CONFIG`. `closed_course`, `pupil_dm` and `teacher_room` are rooms
  in it.
- `one_way_school` with `course`: gym-nord with a teacher and two pupils;
  each test gets a fresh one-way course.
- `two_schools`: gym-nord and rs-west, both opted in, with a two-way course
  each (`course_a`, `course_b`) and a pupil of gym-nord ready to leave
  theirs.

- `before_the_module`: a homeserver that ran without the module first,
  federating with a second (vanilla) one, with the rooms it made then: one
  with a remote member who holds power, one without an m.room.guest_access
  event (threat model R9, R13, R16); then started with the module.

Worlds that one file alone uses are defined in that file."""
import pytest

from harness.client import register_user
from harness.factory import SynapseFactory
from harness.synapse import start_servers
from support import (
    DEFAULT_VERSION_GIVES_CREATORS_POWER,
    GYM,
    MODERATOR_LEVEL,
    PASSWORD,
    TEXT,
    WEST,
    School,
    assert_denied,
    base_config,
    direct_chat,
    membership,
    set_policy,
    uid,
    wait_for_state,
)


@pytest.fixture(scope="package")
def package_synapse_factory(postgres, tmp_path_factory):
    """Like module_synapse_factory, for the worlds this folder shares."""
    factory = SynapseFactory(postgres, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()


# ---- school: two opted-in schools and a cast --------------------------------------------

ROSTER = {
    "teacher": (GYM, "teacher"),
    "teacher2": (GYM, "teacher"),
    "pupil": (GYM, "student"),
    "pupil2": (GYM, "student"),
    "pupil3": (GYM, "student"),
    "pupil4": (GYM, "student"),
    "leaver": (GYM, "student"),
    "teacher_b": (WEST, "teacher"),
    "pupil_b": (WEST, "student"),
}


def school_config(store_dir, **overrides):
    config = base_config(store_dir, one_way_allowed_events=["m.reaction"], **overrides)
    config["schools"][WEST] = {"messenger": True, "teachers_room": False}
    config["reconciler"] = {"actions_per_second": 200}
    return config


# What the school world's Synapse adds to homeserver.yaml: delayed events
# (MSC4140, off unless a maximum delay is set) and loopback as an outbound
# HTTP target, so that an HTTP pusher can reach a push gateway the test runs.
SCHOOL_SYNAPSE_CONFIG = {
    "max_event_delay_duration": "1h",
    "ip_range_whitelist": ["127.0.0.1/32"],
}


def load_roster(world: School, roster: dict) -> None:
    users = [{"user_id": uid(name), "schools": [membership(s, r)]} for name, (s, r) in roster.items()]
    status, body = world.admin_api("POST", "/roster", {"users": users})
    assert status == 200 and body == {"upserted": len(users), "groups": 0}, body


@pytest.fixture(scope="package")
def school(package_synapse_factory, tmp_path_factory):
    world = School(package_synapse_factory(school_config(tmp_path_factory.mktemp("policy") / "store"),
                                           extra_config=dict(SCHOOL_SYNAPSE_CONFIG)))
    world.register("sync")
    world.register("root", admin=True)
    for name in ROSTER:
        world.register(name)
    # Users are registered first and then put on the roster: a user not on
    # the roster cannot use their token at all (rule 1's expired tokens).
    load_roster(world, ROSTER)
    # The gym-nord course every pupil and teacher shares: one-way, created by
    # the school cloud's service user, teacher as moderator.
    members = ["teacher", "teacher2", "pupil", "pupil2", "pupil3", "pupil4", "leaver"]
    world.course = world.managed_room(GYM, invite=members, moderators=["teacher"])
    for name in members:
        assert world.users[name].join(world.course)[0] == 200, name
    world.course_b = world.managed_room(WEST, invite=["teacher_b", "pupil_b"], moderators=["teacher_b"], two_way=True)
    for name in ("teacher_b", "pupil_b"):
        assert world.users[name].join(world.course_b)[0] == 200
    return world


@pytest.fixture(scope="package")
def closed_course(school):
    """A course that was two-way while the pupil posted, then closed: the pupil
    has messages of their own to redact. Returns (room_id, [event ids])."""
    sync, teacher, pupil = school.sync, school.users["teacher"], school.users["pupil"]
    room_id = school.managed_room(GYM, invite=["teacher", "pupil"], moderators=["teacher"], two_way=True)
    assert teacher.join(room_id)[0] == 200 and pupil.join(room_id)[0] == 200
    event_ids = []
    for i in range(6):
        status, body = pupil.send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"pupil message {i}"})
        assert status == 200, body
        event_ids.append(body["event_id"])
    assert set_policy(sync, room_id, two_way=False)[0] == 200
    wait_for_state(pupil, room_id, "m.room.power_levels", lambda pl: pl.get("events_default") == MODERATOR_LEVEL)
    assert_denied(pupil.send(room_id, "m.room.message", TEXT), "one_way")
    return room_id, event_ids


@pytest.fixture(scope="package")
def pupil_dm(school):
    """pupil's direct chat with their classmate pupil2 (both joined)."""
    room_id = direct_chat(school.users["pupil"], uid("pupil2"))
    assert school.users["pupil2"].join(room_id)[0] == 200
    return room_id


@pytest.fixture(scope="package")
def teacher_room(school):
    """A group room the teacher created (teachers may create group rooms)."""
    status, body = school.users["teacher"].create_room(preset="private_chat", name="Staff", invite=[uid("teacher2")])
    assert status == 200, body
    return body["room_id"]


# ---- one_way_school: one school, a fresh one-way course per test --------------------------


@pytest.fixture(scope="package")
def one_way_school(package_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("policy") / "store", one_way_allowed_events=["m.reaction"])
    world = School(package_synapse_factory(config))
    world.register("sync")
    for name in ("teacher", "pupil", "pupil2"):
        world.register(name)
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("pupil", membership("gym-nord", "student"))
    world.put_roster("pupil2", membership("gym-nord", "student"))
    return world


@pytest.fixture
def course(one_way_school):
    room_id = one_way_school.managed_room("gym-nord", invite=["teacher", "pupil"], moderators=["teacher"])
    assert one_way_school.users["teacher"].join(room_id)[0] == 200
    assert one_way_school.users["pupil"].join(room_id)[0] == 200
    return room_id


# ---- two_schools: a pupil of each, two-way courses ------------------------------------------


@pytest.fixture(scope="package")
def two_schools(package_synapse_factory, tmp_path_factory):
    config = base_config(tmp_path_factory.mktemp("policy") / "store")
    config["schools"]["rs-west"] = {"messenger": True}
    world = School(package_synapse_factory(config))
    world.register("sync")
    for name in ("teacher_a", "pupil_a", "pupil_a2", "leaver", "pupil_b"):
        world.register(name)
    world.put_roster("teacher_a", membership("gym-nord", "teacher"))
    for name in ("pupil_a", "pupil_a2", "leaver"):
        world.put_roster(name, membership("gym-nord", "student"))
    world.put_roster("pupil_b", membership("rs-west", "student"))
    world.course_a = world.managed_room("gym-nord", invite=["teacher_a", "pupil_a", "leaver"], two_way=True)
    for name in ("teacher_a", "pupil_a", "leaver"):
        assert world.users[name].join(world.course_a)[0] == 200
    world.course_b = world.managed_room("rs-west", invite=["pupil_b"], two_way=True)
    assert world.users["pupil_b"].join(world.course_b)[0] == 200
    return world


# ---- before_the_module: rooms made before the module, a remote member -----------------------


@pytest.fixture(scope="package")
def before_the_module(package_synapse_factory, tmp_path_factory):
    """The school's server (`world.server`, with `sync` and the teacher
    `owner`) and `remote` with its user `stranger`. `world.old_room` is the
    owner's room from before the module, the stranger in it at level 100;
    `world.room_without_guest_access` is the sync's room from before the
    module that has no m.room.guest_access event (the public_chat preset
    adds none), its join rule invite."""
    school_server, remote = package_synapse_factory.federation_pair(start=False)
    start_servers((school_server, remote))  # no module yet
    world = School(school_server)
    sync, owner = world.register("sync"), world.register("owner")
    stranger = register_user(remote, "stranger", PASSWORD)
    users = {stranger.user_id: 100}
    if not DEFAULT_VERSION_GIVES_CREATORS_POWER:
        users[owner.user_id] = 100
    status, body = owner.create_room(preset="private_chat", invite=[stranger.user_id],
                                     power_level_content_override={"users": users})
    assert status == 200, body
    world.old_room = body["room_id"]
    stranger.wait_for_invite(world.old_room)
    assert stranger.join_via(world.old_room, [school_server.server_name])[0] == 200
    status, body = sync.create_room(preset="public_chat", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}}])
    assert status == 200, body
    world.room_without_guest_access = body["room_id"]
    assert sync.get_state(world.room_without_guest_access, "m.room.guest_access")[0] == 404
    config = base_config(tmp_path_factory.mktemp("policy-before") / "store")
    config["service_users"] = [sync.user_id]
    school_server.restart(module_config=config)
    status, body = world.admin_api("PUT", f"/users/{owner.user_id}", {"schools": [membership(GYM, "teacher")]})
    assert status == 200, body
    world.remote, world.stranger = remote, stranger
    return world
