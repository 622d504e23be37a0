"""The C engine and the pure-Python reference model must make the same
decision on every generated input."""
import json
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reference_policy import NEED_ADMIN, NEED_ROOM, NEED_SHARED_ROOMS, SYNC_POWER_LEVELS, ReferencePolicy
from synapse_school_policy import _core

SERVER = "school.test"
SCHOOLS = ["gym-nord", "gs-sued", "rs-west"]
LOCAL_USERS = [f"@u{i}:{SERVER}" for i in range(6)]
USERS = LOCAL_USERS + ["@remote:other.test"]
CALLBACKS = {name: number for number, name in enumerate(_core.CALLBACK_NAMES)}
FACT = {None: _core.FACT_UNKNOWN, False: _core.FACT_NO, True: _core.FACT_YES}

school_settings = st.fixed_dictionaries(
    {},
    optional={
        "messenger": st.booleans(),
        "enforce": st.booleans(),
        "announcement_room": st.booleans(),
        "room_creation": st.sampled_from(["service_users", "teachers", "everyone"]),
    },
)
configs = st.fixed_dictionaries(
    {
        "schools": st.dictionaries(st.sampled_from(SCHOOLS), school_settings, max_size=3),
        "service_users": st.lists(st.sampled_from(LOCAL_USERS), max_size=2, unique=True),
    },
    optional={"unlisted_users": st.sampled_from(["deny", "allow"]), "enforce": st.booleans()},
)
rosters = st.dictionaries(
    st.sampled_from(LOCAL_USERS),
    st.lists(
        st.tuples(st.sampled_from(SCHOOLS + ["unknown-school"]), st.sampled_from(["teacher", "student", "admin"])),
        max_size=3,
        unique_by=lambda m: m[0],
    ),
    max_size=6,
)
room_policies = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "school": st.one_of(st.sampled_from(SCHOOLS + ["unknown-school"]), st.integers()),
            "kind": st.sampled_from(["course", "team", "teachers", "announcement", "bogus"]),
            "two_way": st.booleans(),
        },
    ),
)
create_bodies = st.fixed_dictionaries(
    {},
    optional={
        "is_direct": st.booleans(),
        "invite": st.lists(st.sampled_from(USERS), max_size=2),
        "preset": st.sampled_from(["private_chat", "public_chat", "trusted_private_chat"]),
        "visibility": st.sampled_from(["private", "public"]),
        "room_alias_name": st.sampled_from(["class", None]),
        "invite_3pid": st.lists(st.just({"medium": "email", "address": "a@b.c", "id_server": "x"}), max_size=1),
        "initial_state": st.lists(
            st.sampled_from([
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
                {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "can_join"}},
                {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
                {"type": "m.room.topic", "state_key": "", "content": {"topic": "t"}},
                {"type": "org.synapse_school_policy.room", "state_key": "", "content": {"school": "gym-nord"}},
            ]),
            max_size=2,
        ),
    },
)
shared_room_lists = st.one_of(
    st.none(), st.lists(st.one_of(st.none(), room_policies.filter(lambda p: p is not None)), max_size=3)
)
requests = st.fixed_dictionaries(
    {
        "callback": st.sampled_from(sorted(CALLBACKS)),
        "is_invited": st.sampled_from([None, False, True]),
        "shared_rooms": shared_room_lists,
        "create_body": create_bodies,
        "actor": st.sampled_from(USERS),
        "target": st.one_of(st.none(), st.sampled_from(USERS)),
        "room_id": st.one_of(st.none(), st.just("!room:school.test")),
        "room_known": st.booleans(),
        "room_policy": room_policies,
        "actor_admin": st.sampled_from([None, False, True]),
    }
)


def normalise_engine(outcome):
    if outcome == _core.NEED_ROOM:
        return NEED_ROOM
    if outcome == _core.NEED_SHARED_ROOMS:
        return NEED_SHARED_ROOMS
    if outcome == _core.SYNC_POWER_LEVELS:
        return SYNC_POWER_LEVELS
    if outcome == _core.NEED_ADMIN:
        return NEED_ADMIN
    if outcome is None:
        return None
    rule, _message, enforced, school = outcome
    return (rule, enforced, school or None)


def engine_and_reference(config, roster, data_dir):
    """The C engine and the reference model, built from the same config and roster."""
    engine = _core.Engine(json.dumps({**config, "data_dir": data_dir}), SERVER, "main")
    engine.open()
    users = [
        {"user_id": user, "schools": [{"school": s, "role": r} for s, r in memberships]}
        for user, memberships in roster.items()
    ]
    engine.roster_upsert(json.dumps({"users": users}))
    reference = ReferencePolicy(
        server_name=SERVER,
        schools=config["schools"],
        service_users=frozenset(config["service_users"]),
        unlisted_allow=config.get("unlisted_users") == "allow",
        enforce=config.get("enforce", True),
        roster={user: list(m) for user, m in roster.items()},
        moderator_level=config.get("moderator_level", 50),
        one_way_allowed_events=frozenset(config.get("one_way_allowed_events", ())),
    )
    return engine, reference


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, roster=rosters, reqs=st.lists(requests, min_size=1, max_size=20), opted_in=st.booleans())
def test_engine_agrees_with_reference_model(config, roster, reqs, opted_in):
    if opted_in:  # half the examples get past rule 1 to rule 3
        config = {**config, "schools": {**config["schools"], "gym-nord": {"messenger": True, **config["schools"].get("gym-nord", {})} | {"messenger": True}}}
    with tempfile.TemporaryDirectory() as data_dir:
        engine, reference = engine_and_reference(config, roster, data_dir)
        for req in reqs:
            body = req["create_body"] if req["callback"] == "user_may_create_room" else None
            is_invited = req["is_invited"] if req["callback"] == "user_may_join_room" else None
            expected = reference.decide(
                req["callback"], req["actor"], req["target"], req["room_id"],
                req["room_known"], req["room_policy"], req["actor_admin"],
                content=body, is_invited=is_invited, shared_rooms=req["shared_rooms"],
            )
            actual = normalise_engine(
                engine.decide(
                    CALLBACKS[req["callback"]], req["actor"], req["target"], req["room_id"], None, None, body,
                    req["room_known"], req["room_policy"] if req["room_known"] else None, None,
                    FACT[req["actor_admin"]], is_invited, req["shared_rooms"],
                )
            )
            assert actual == expected, (req, roster, config)
            event(f"outcome={expected[0] if isinstance(expected, tuple) else expected}")
        del engine


POLICY_TYPE = "org.synapse_school_policy.room"
EVENT_TYPES = ["m.room.message", "m.room.encrypted", "m.reaction", "m.room.redaction", "m.sticker",
               "io.custom.type", POLICY_TYPE, "m.room.power_levels"]
levels = st.one_of(st.integers(-5, 120), st.sampled_from(["50", "0", "x", None, True]))
power_levels = st.fixed_dictionaries(
    {},
    optional={
        "users": st.dictionaries(st.sampled_from(USERS), levels, max_size=4),
        "users_default": levels,
        "events_default": levels,
        "state_default": levels,
        "events": st.dictionaries(st.sampled_from(["m.reaction", "m.room.redaction", "m.room.name"]), levels, max_size=3),
    },
)
# Rooms of an opted-in school, so that decisions get past rule 1 to rule 2.
enabled_room_policies = st.one_of(
    room_policies,
    st.fixed_dictionaries(
        {"school": st.just("gym-nord")},
        optional={"kind": st.sampled_from(["course", "team", "teachers", "bogus"]), "two_way": st.booleans()},
    ),
)
rule2_requests = st.fixed_dictionaries(
    {
        "actor": st.sampled_from(USERS),
        "event_type": st.sampled_from(EVENT_TYPES + ["m.room.join_rules", "m.room.guest_access"]),
        "state_key": st.sampled_from([None, "", "x"]),
        "room_policy": enabled_room_policies,
        "power_levels": st.one_of(st.none(), power_levels),
        "content": st.one_of(
            enabled_room_policies.filter(lambda p: p is not None),
            power_levels,
            st.sampled_from([{"join_rule": "public"}, {"join_rule": "invite"}, {"guest_access": "can_join"}]),
        ),
        "actor_admin": st.sampled_from([None, False, True]),
    }
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=configs,
    roster=rosters,
    allowed=st.lists(st.sampled_from(["m.reaction", "m.sticker"]), unique=True),
    moderator_level=st.integers(0, 100),
    reqs=st.lists(rule2_requests, min_size=1, max_size=20),
)
def test_engine_agrees_with_reference_model_on_events(config, roster, allowed, moderator_level, reqs):
    config = {**config, "schools": {**config["schools"], "gym-nord": {"messenger": True}}, "unlisted_users": "allow"}
    full_config = {**config, "one_way_allowed_events": allowed, "moderator_level": moderator_level}
    with tempfile.TemporaryDirectory() as data_dir:
        engine, reference = engine_and_reference(full_config, roster, data_dir)
        for req in reqs:
            for room_known in (False, True):
                expected = reference.decide(
                    "check_event_for_spam", req["actor"], None, "!room:school.test",
                    room_known, req["room_policy"], req["actor_admin"],
                    event_type=req["event_type"], state_key=req["state_key"],
                    content=req["content"], power_levels=req["power_levels"],
                )
                actual = normalise_engine(
                    engine.decide(
                        _core.CB_CHECK_EVENT_FOR_SPAM, req["actor"], None, "!room:school.test",
                        req["event_type"], req["state_key"], req["content"], room_known,
                        req["room_policy"] if room_known else None,
                        req["power_levels"] if room_known else None, FACT[req["actor_admin"]],
                        None, None,
                    )
                )
                assert actual == expected, (req, room_known, roster, full_config)
                event(f"outcome={expected[0] if isinstance(expected, tuple) else expected}")
        del engine
