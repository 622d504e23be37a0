"""The C engine and the pure-Python reference model must make the same
decision on every generated input."""
import json
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_policy import NEED_ADMIN, NEED_ROOM, ReferencePolicy
from synapse_school_policy import _core

SERVER = "school.test"
SCHOOLS = ["gym-nord", "gs-sued", "rs-west"]
LOCAL_USERS = [f"@u{i}:{SERVER}" for i in range(6)]
USERS = LOCAL_USERS + ["@remote:other.test"]
CALLBACKS = {
    "check_login_for_spam": _core.CB_CHECK_LOGIN_FOR_SPAM,
    "user_may_join_room": _core.CB_USER_MAY_JOIN_ROOM,
    "user_may_invite": _core.CB_USER_MAY_INVITE,
    "user_may_create_room": _core.CB_USER_MAY_CREATE_ROOM,
    "check_event_for_spam": _core.CB_CHECK_EVENT_FOR_SPAM,
    "federated_user_may_invite": _core.CB_FEDERATED_USER_MAY_INVITE,
}
FACT = {None: _core.FACT_UNKNOWN, False: _core.FACT_NO, True: _core.FACT_YES}

school_settings = st.fixed_dictionaries({}, optional={"messenger": st.booleans(), "enforce": st.booleans()})
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
requests = st.fixed_dictionaries(
    {
        "callback": st.sampled_from(sorted(CALLBACKS)),
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
    if outcome == _core.NEED_ADMIN:
        return NEED_ADMIN
    if outcome is None:
        return None
    rule, _message, enforced, school = outcome
    return (rule, enforced, school or None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, roster=rosters, reqs=st.lists(requests, min_size=1, max_size=20))
def test_engine_agrees_with_reference_model(config, roster, reqs):
    with tempfile.TemporaryDirectory() as data_dir:
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
        )
        for req in reqs:
            expected = reference.decide(
                req["callback"], req["actor"], req["target"], req["room_id"],
                req["room_known"], req["room_policy"], req["actor_admin"],
            )
            actual = normalise_engine(
                engine.decide(
                    CALLBACKS[req["callback"]], req["actor"], req["target"], req["room_id"], None, None, None,
                    req["room_known"], req["room_policy"] if req["room_known"] else None, None,
                    FACT[req["actor_admin"]],
                )
            )
            assert actual == expected, (req, roster, config)
        del engine
