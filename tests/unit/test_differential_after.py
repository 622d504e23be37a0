"""After the fact: Engine.after_event against ReferencePolicy.after_event, on
generated events and room states, in one fixed school and in random ones."""
import itertools
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_policy import NEED_ADMIN, NEED_PROFILE
from synapse_school_policy import _core

from .differential import (
    configs,
    create_contents,
    engine_and_reference,
    event,
    fixed_school_pair,
    guest_access_contents,
    history_visibility_contents,
    join_rule_contents,
    LOCAL_USERS,
    opt_in_gym_nord,
    POLICY_TYPE,
    power_levels,
    RECONCILER,
    REMOTE_USERS,
    ROOM_ID,
    room_policies,
    rosters,
    SCALE,
    senders,
)


# Events and the room's current state as the adapter hands them over:
# objects with its event attributes. Every event gets an id of its own, so
# that the engine's memory of what it acted on and the model's agree across
# examples.

_event_ids = itertools.count()


class _Metadata:
    def __init__(self, stream_ordering, outlier):
        self.stream_ordering = stream_ordering
        self._outlier = outlier

    def is_outlier(self):
        return self._outlier


class _Event:
    def __init__(self, event_type, sender, content, state_key=None, stream_ordering=0, outlier=False,
                 room_id=ROOM_ID):
        self.type, self.sender, self.content, self.room_id = event_type, sender, content, room_id
        self._state_key = state_key
        self.event_id = f"$e{next(_event_ids)}"
        self.internal_metadata = _Metadata(stream_ordering, outlier)

    def is_state(self):
        return self._state_key is not None

    def get_state_key(self):
        return self._state_key

    def __repr__(self):
        return (f"_Event({self.type!r}, {self.sender!r}, {self.content!r}, {self._state_key!r}, "
                f"{self.internal_metadata.stream_ordering}, {self.event_id})")


AFTER_USERS = LOCAL_USERS[:4] + [RECONCILER, REMOTE_USERS[0]]
TEXT_VALUES = [None, "", "Paul", "Herr X ist doof", "mxc://school.test/a", 5, True, {"x": "y"}]
member_contents = st.fixed_dictionaries(
    {"membership": st.sampled_from(["join", "join", "invite", "leave", "ban", 5])},
    optional={
        "displayname": st.sampled_from(TEXT_VALUES),
        "avatar_url": st.sampled_from(TEXT_VALUES),
        "reason": st.sampled_from(TEXT_VALUES),
        "is_direct": st.sampled_from([True, False, "yes", None]),
        "join_authorised_via_users_server": st.sampled_from(AFTER_USERS),
        "io.pupil.note": st.sampled_from(["hi", 1]),
    },
)
door_contents = {
    "m.room.join_rules": join_rule_contents,
    "m.room.history_visibility": history_visibility_contents,
    "m.room.guest_access": guest_access_contents,
}


@st.composite
def after_cases(draw, groups=None):
    """(event, state, profile facts, admin fact, how often to show it).
    `groups`: a strategy of the `group` a course's policy names (none
    without it)."""
    state = {}
    order = itertools.count(1)

    def put(event_type, sender, content, state_key=""):
        event_ = _Event(event_type, sender, content, state_key, next(order))
        state[(event_type, state_key)] = event_
        return event_

    room = draw(st.sampled_from(["course", "direct chat", "old room", "any"]))
    if room == "course":  # a managed one-way room of the school cloud's, mostly
        put("m.room.create", RECONCILER, {"room_version": draw(st.sampled_from(["10", "12"]))})
        policy = {"school": "gym-nord", "kind": draw(st.sampled_from(["course", "announcement"] * 3 + ["teachers"])),
                  "two_way": draw(st.sampled_from([False] * 5 + [True]))}
        if groups is not None:
            policy["group"] = draw(groups)
        put(POLICY_TYPE, draw(st.sampled_from([RECONCILER] * 5 + [LOCAL_USERS[1]])), policy)
        put("m.room.power_levels", RECONCILER, {"users": {LOCAL_USERS[0]: 50}, "events_default": 50})
    elif room == "direct chat":  # a pupil's, or a teacher's room
        put("m.room.create", draw(st.sampled_from(LOCAL_USERS[:5] + [LOCAL_USERS[1]] * 3)), {"room_version": "12"})
    elif room == "old room":  # a room made here before the module, with remote members
        put("m.room.create", draw(st.sampled_from(LOCAL_USERS[:5])), {"room_version": "10"})
        for door, contents in door_contents.items():
            if draw(st.booleans()):
                put(door, draw(st.sampled_from([REMOTE_USERS[0], REMOTE_USERS[0], LOCAL_USERS[0]])), draw(contents))
    else:
        creator = draw(st.sampled_from(AFTER_USERS + [None]))
        if creator is not None:
            put("m.room.create", creator, draw(create_contents))
        if draw(st.booleans()):
            put(POLICY_TYPE, draw(senders), draw(room_policies))
        if draw(st.booleans()):
            put("m.room.power_levels", draw(senders), draw(power_levels))
        for door, contents in door_contents.items():
            if draw(st.booleans()):
                put(door, draw(st.sampled_from(AFTER_USERS)), draw(contents))
    for user in draw(st.lists(st.sampled_from(AFTER_USERS), max_size=4, unique=True)):
        put("m.room.member", draw(st.sampled_from([user, user, *AFTER_USERS])), draw(member_contents), user)
    kind = draw(st.sampled_from(["member"] * 5 + ["message", "tombstone", "door"]))
    # gym-nord's pupil (LOCAL_USERS[1] in the fixed school) most often
    sender = draw(st.sampled_from(AFTER_USERS + [LOCAL_USERS[1]] * 4))
    stream_ordering = draw(st.integers(0, 12))
    outlier = draw(st.sampled_from([False] * 5 + [True]))
    if kind == "member":
        state_key = draw(st.sampled_from([sender, sender, *AFTER_USERS]))
        event_ = _Event("m.room.member", sender, draw(member_contents), state_key, stream_ordering, outlier)
        if draw(st.booleans()):
            state[("m.room.member", state_key)] = event_  # the room's current member event
    elif kind == "message":
        event_ = _Event("m.room.message", sender, {"body": "hi"}, None, stream_ordering, outlier)
    elif kind == "tombstone":
        content = draw(st.sampled_from([{"replacement_room": "!new:school.test"}, {}, {"replacement_room": 5}]))
        event_ = _Event("m.room.tombstone", sender, content, draw(st.sampled_from(["", "x"])), stream_ordering,
                        outlier)
    else:
        door = draw(st.sampled_from(sorted(door_contents)))
        event_ = _Event(door, sender, draw(door_contents[door]), "", stream_ordering, outlier)
    profile = draw(st.tuples(st.sampled_from(TEXT_VALUES[:5]), st.sampled_from(TEXT_VALUES[:5])))
    return event_, state, profile, draw(st.booleans()), draw(st.sampled_from([1, 1, 2]))


def normalise_action(outcome):
    if outcome is None:
        return None
    if outcome == _core.NEED_PROFILE:
        return NEED_PROFILE
    if outcome == _core.NEED_ADMIN:
        return NEED_ADMIN
    return (outcome.kind, outcome.rule, outcome.enforced, outcome.school or None, outcome.event_id,
            outcome.room_id, outcome.user_id, outcome.sender, outcome.state)


def run_after_event(engine, reference, case):
    """Asks both, supplying the profile and the admin fact when asked, as the adapter does."""
    event_, state, profile_fact, admin_fact, times = case
    for _ in range(times):  # an event may be shown twice
        profile = admin = None
        steps = []
        for _ in range(3):
            expected = reference.after_event(event_, state, profile, admin)
            actual = normalise_action(engine.after_event(event_, state, state, profile, admin))
            steps.append(expected)
            assert actual == expected, {"event": event_, "state": state, "steps": steps}
            if expected == NEED_PROFILE:
                assert profile is None, "asked for the profile again"
                profile = profile_fact
            elif expected == NEED_ADMIN:
                assert admin is None, "asked whether the sender is an admin again"
                admin = admin_fact
            else:
                asked = "".join(f" after {step}" for step in steps[:-1])
                event(f"after {event_.type}: {expected[0] if isinstance(expected, tuple) else expected}{asked}")
                break


@pytest.fixture(scope="module")
def fixed_school(tmp_path_factory):
    engine, reference = fixed_school_pair(tmp_path_factory)
    yield engine, reference
    del engine


@settings(max_examples=int(2000 * SCALE), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=after_cases())
def test_after_event_agrees_with_reference_model_in_one_school(fixed_school, case):
    engine, reference = fixed_school
    run_after_event(engine, reference, case)


@settings(max_examples=int(200 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, roster=rosters, cases=st.lists(after_cases(), min_size=1, max_size=10))
def test_after_event_agrees_with_reference_model(config, roster, cases):
    config = opt_in_gym_nord(config)
    with tempfile.TemporaryDirectory() as data_dir:
        engine, reference = engine_and_reference(config, roster, data_dir)
        for case in cases:
            run_after_event(engine, reference, case)
        del engine
