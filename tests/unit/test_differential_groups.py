"""Group rooms: the C engine and the reference model decide alike on
group_closed, group_archived, the cross-school join and rule 3 in group
rooms (reference_policy/groups.py against csrc/rules/groups.c).

The schools: gym-nord and rs-west have opted in, gs-sued has not. Groups
are drawn (closed or open; active, archived, deleted, or archived by a date
that has passed or has not; of gym-nord or of rs-west; their members any of
the local users) and sent to the engine as the school cloud sends them.
Rooms name one of them, an id nobody sent, or a `group` that is no string;
their policy event's sender and the room's creator are mostly the
reconciler, so that the policy counts. The strategies and the runner are
differential.py's."""
import tempfile
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .differential import (
    ACTORS,
    CALLBACKS,
    LOCAL_USERS,
    POLICY_TYPE,
    RECONCILER,
    ROOM_DOORS,
    SCALE,
    create_contents,
    engine_and_reference,
    event,
    events,
    make_room,
    power_levels,
    requests,
    run_request,
    senders,
)
from .test_differential_after import after_cases, run_after_event

GROUP_CONFIG = {
    "schools": {
        "gym-nord": {"messenger": True},
        "rs-west": {"messenger": True, "enforce": False},
        "gs-sued": {"messenger": False},
    },
    "service_users": [LOCAL_USERS[5]],
    "one_way_allowed_events": ["m.reaction"],
}
GROUP_ROSTER = {
    LOCAL_USERS[0]: [("gym-nord", "teacher")],
    LOCAL_USERS[1]: [("gym-nord", "student")],
    LOCAL_USERS[2]: [("rs-west", "student")],                         # a cross-school member
    LOCAL_USERS[3]: [("gs-sued", "student")],                         # listed, school not opted in
    LOCAL_USERS[4]: [("rs-west", "teacher"), ("gs-sued", "teacher")],
}
GROUP_IDS = ["g-a", "g-b", "g-c", "g-d"]
PAST, FUTURE = 1, 4_102_444_800_000  # 1970, 2100

members = st.lists(
    st.builds(lambda user, role: {"user_id": user, "role": role},
              st.sampled_from(LOCAL_USERS[:5] + [RECONCILER]), st.sampled_from(["moderator", "member"])),
    max_size=5, unique_by=lambda m: m["user_id"],
)
group_fields = st.fixed_dictionaries(
    {"school": st.sampled_from(["gym-nord", "gym-nord", "rs-west"]),
     "kind": st.sampled_from(["course", "team", "class"]),
     "members": members},
    optional={
        "closed": st.booleans(),
        "state": st.sampled_from(["active", "active", "archived", "deleted"]),
        "archive_at_ms": st.sampled_from([PAST, FUTURE]),
        "two_way": st.booleans(),
    },
)


@st.composite
def group_sets(draw):
    """Some of GROUP_IDS, each with a drawn group."""
    chosen = draw(st.lists(st.sampled_from(GROUP_IDS), min_size=1, max_size=len(GROUP_IDS), unique=True))
    return [{"group": group_id, "name": group_id, **draw(group_fields)} for group_id in chosen]


# The policy's `group`: a group that may exist, an id nobody sent, "", no string.
group_values = st.one_of(st.sampled_from(GROUP_IDS), st.sampled_from(GROUP_IDS), st.sampled_from(GROUP_IDS),
                         st.sampled_from(["g-unknown", "", 5, None, ["g-a"], "\ud800"]))
group_policies = st.fixed_dictionaries(
    {"school": st.sampled_from(["gym-nord"] * 4 + ["rs-west", "gs-sued"]), "group": group_values},
    optional={"kind": st.sampled_from(["course", "team", "class", "teachers"]), "two_way": st.booleans()},
)
policy_senders = st.one_of(st.just(RECONCILER), st.just(RECONCILER), senders)
group_rooms = st.builds(
    make_room,
    policy=st.one_of(st.tuples(group_policies, policy_senders), st.tuples(group_policies, policy_senders),
                     st.none()),
    pl=st.one_of(st.none(), power_levels),
    create=st.tuples(create_contents, st.sampled_from([RECONCILER, RECONCILER, *LOCAL_USERS])),
    with_event_id=st.booleans(),
)
shared_group_rooms = st.lists(
    st.builds(lambda policy, sender, creator: (policy, sender, creator),
              st.one_of(group_policies, st.just({"school": "gym-nord", "kind": "course"})),
              policy_senders, st.sampled_from([RECONCILER, RECONCILER, LOCAL_USERS[0]])),
    max_size=3,
)
# Events: the usual ones, and policy events that keep, change, add or drop the group.
policy_events_with_group = st.tuples(st.just(POLICY_TYPE), group_policies)
group_events = st.one_of(events, policy_events_with_group)
GROUP_DOORS = ["user_may_join_room", "user_may_join_room", "user_may_invite", "user_may_invite",
               "check_event_for_spam", "check_username_for_spam", "user_may_create_room"]


# The users of the roster above most of the time, so that decisions get past rule 1.
group_actors = st.one_of(st.sampled_from(LOCAL_USERS[:5]), st.sampled_from(ACTORS))


def group_requests(callbacks=st.sampled_from(GROUP_DOORS)):
    return requests(callbacks, room_facts=group_rooms, shared_facts=shared_group_rooms,
                    event_facts=group_events, actors=group_actors)


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=group_sets(), reqs=st.lists(group_requests(), min_size=1, max_size=25),
       moderator_level=st.sampled_from([50, 0, 100]))
def test_engine_agrees_with_reference_model_on_groups(groups, reqs, moderator_level):
    config = {**GROUP_CONFIG, "moderator_level": moderator_level}
    with tempfile.TemporaryDirectory() as data_dir:
        engine, reference = engine_and_reference(config, GROUP_ROSTER, data_dir, groups)
        for req in reqs:
            run_request(engine, reference, req, {"groups": groups})
        del engine


# ---- one fixed set of groups, many requests -------------------------------------------------

FIXED_GROUPS = [
    {"group": "g-a", "name": "closed team", "school": "gym-nord", "kind": "team", "two_way": True,
     "members": [{"user_id": LOCAL_USERS[0], "role": "moderator"}, {"user_id": LOCAL_USERS[1], "role": "member"},
                 {"user_id": LOCAL_USERS[2], "role": "member"}, {"user_id": LOCAL_USERS[3], "role": "member"}]},
    {"group": "g-b", "name": "open course", "school": "gym-nord", "kind": "course", "closed": False,
     "members": [{"user_id": LOCAL_USERS[0], "role": "moderator"}]},
    {"group": "g-c", "name": "archived course", "school": "gym-nord", "kind": "course", "state": "archived",
     "members": [{"user_id": LOCAL_USERS[1], "role": "member"}, {"user_id": LOCAL_USERS[2], "role": "member"}]},
    {"group": "g-d", "name": "dated class", "school": "gym-nord", "kind": "class", "archive_at_ms": PAST,
     "members": [{"user_id": LOCAL_USERS[2], "role": "member"}]},
]


@pytest.fixture(scope="module")
def fixed_groups(tmp_path_factory):
    engine, reference = engine_and_reference(GROUP_CONFIG, GROUP_ROSTER, str(tmp_path_factory.mktemp("groups")),
                                             FIXED_GROUPS)
    yield engine, reference
    del engine


@settings(max_examples=int(3000 * SCALE), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(req=group_requests(st.one_of(st.sampled_from(GROUP_DOORS), st.sampled_from(GROUP_DOORS),
                                    st.sampled_from(sorted(CALLBACKS)), st.sampled_from(ROOM_DOORS))))
def test_engine_agrees_with_reference_model_on_fixed_groups(fixed_groups, req):
    engine, reference = fixed_groups
    run_request(engine, reference, req, {})


# Who gets into a group room: trusted rooms of gym-nord naming one of the
# fixed groups (or an unknown one), invites and joins by the roster's users.
school_group_rooms = st.builds(
    make_room,
    policy=st.tuples(
        st.fixed_dictionaries({"school": st.just("gym-nord"),
                               "group": st.sampled_from(GROUP_IDS + ["g-unknown"])},
                              optional={"kind": st.sampled_from(["course", "team", "class"]),
                                        "two_way": st.booleans()}),
        st.just(RECONCILER)),
    pl=st.one_of(st.none(), st.just({"users": {LOCAL_USERS[0]: 50, LOCAL_USERS[4]: 50}})),
    create=st.just(({"room_version": "12"}, RECONCILER)),
)
membership_requests = requests(
    st.sampled_from(["user_may_join_room", "user_may_invite"]), room_facts=school_group_rooms,
    shared_facts=shared_group_rooms, actors=st.sampled_from(LOCAL_USERS[:5] + [RECONCILER]),
)


@settings(max_examples=int(2000 * SCALE), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(req=membership_requests)
def test_engine_agrees_with_reference_model_on_group_membership(fixed_groups, req):
    engine, reference = fixed_groups
    run_request(engine, reference, req, {})


# ---- the cases the issue names, spelled out ------------------------------------------------

TEAM_ROOM = ({"school": "gym-nord", "kind": "team", "two_way": True, "group": "g-a"}, RECONCILER,
             {"users": {LOCAL_USERS[0]: 50}}, {"room_version": "12"}, RECONCILER)
ARCHIVED_ROOM = ({"school": "gym-nord", "kind": "course", "two_way": True, "group": "g-c"}, RECONCILER,
                 None, {"room_version": "12"}, RECONCILER)
FORGED_ROOM = ({"school": "gym-nord", "kind": "team", "two_way": True, "group": "g-forged"}, RECONCILER,
               {"users": {LOCAL_USERS[0]: 50}}, {"room_version": "12"}, RECONCILER)
DM_ROOM = (None, None, None, {"room_version": "12"}, LOCAL_USERS[2])
ALL_KNOWN = {"actor_admin": False, "actor_membership": "", "member_count": 1}


def ask(callback, actor, room, target=None, is_invited=None, shared=(), event_type=None, content=None):
    req = {"callback": callback, "actor": actor, "target": target, "room_id": "!room:school.test",
           "event_type": event_type, "state_key": None, "content": content, "is_invited": is_invited,
           "facts": {"room": room, "shared_rooms": list(shared), **ALL_KNOWN}}
    req["known"] = {fact: True for fact in req["facts"]}
    return req


CASES = [
    # group_closed: the teacher's invite into a closed team; the reconciler's is allowed.
    (ask("user_may_invite", LOCAL_USERS[0], TEAM_ROOM, LOCAL_USERS[1], shared=[TEAM_ROOM[:2] + (RECONCILER,)]),
     ("group_closed", True, "gym-nord")),
    (ask("user_may_invite", RECONCILER, TEAM_ROOM, LOCAL_USERS[2]), None),
    # the cross-school join: listed, of an opted-in school; listed, school not opted in; not listed.
    (ask("user_may_join_room", LOCAL_USERS[2], TEAM_ROOM, is_invited=True), None),
    (ask("user_may_join_room", LOCAL_USERS[3], TEAM_ROOM, is_invited=True), ("school_not_enabled", True, "gs-sued")),
    (ask("user_may_join_room", LOCAL_USERS[4], TEAM_ROOM, is_invited=True), ("join_forbidden", False, "rs-west")),
    # group_archived: a message in the archived course.
    (ask("check_event_for_spam", LOCAL_USERS[1], ARCHIVED_ROOM, event_type="m.room.message",
         content={"msgtype": "m.text", "body": "hi"}), ("group_archived", True, "gym-nord")),
    # rule 3: the rs-west pupil reaches the gym-nord pupil through the active team, not the archived course.
    (ask("user_may_invite", LOCAL_USERS[2], DM_ROOM, LOCAL_USERS[1], shared=[TEAM_ROOM[:2] + (RECONCILER,)]), None),
    (ask("user_may_invite", LOCAL_USERS[2], DM_ROOM, LOCAL_USERS[1], shared=[ARCHIVED_ROOM[:2] + (RECONCILER,)]),
     ("no_shared_room", False, "rs-west")),
    # a forged group id: closed, and no cross-school join.
    (ask("user_may_invite", LOCAL_USERS[0], FORGED_ROOM, LOCAL_USERS[1], shared=[TEAM_ROOM[:2] + (RECONCILER,)]),
     ("group_closed", True, "gym-nord")),
    (ask("user_may_join_room", LOCAL_USERS[2], FORGED_ROOM, is_invited=True), ("join_forbidden", False, "rs-west")),
]


@pytest.mark.parametrize("req, expected", CASES, ids=[f"{c[0]['callback']}-{i}" for i, c in enumerate(CASES)])
def test_group_cases(fixed_groups, req, expected):
    engine, reference = fixed_groups
    assert run_request(engine, reference, req, {}) == expected
    event(f"group case: {expected[0] if expected else 'allowed'}")


@settings(max_examples=int(1500 * SCALE), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=after_cases(groups=group_values))
def test_after_event_agrees_with_reference_model_in_group_rooms(fixed_groups, case):
    """After the fact: text in member events of an archived group's room is
    taken back from everyone (group_archived), as one_way takes it back from
    pupils in one-way rooms."""
    engine, reference = fixed_groups
    run_after_event(engine, reference, case)


class _ReadOnlyContent(Mapping):
    """Synapse's event.content since about 1.155: a read-only Mapping, no dict."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


@pytest.mark.parametrize("group_value, expected", [
    ("g-a", ("group_closed", True, "gym-nord")),       # the closed team
    ("g-b", None),                                      # the open course: the moderator invites
    ("g-forged", ("group_closed", True, "gym-nord")),  # unknown: closed
    (5, ("group_closed", True, "gym-nord")),           # no string: unknown
])
def test_the_binding_reads_the_group_of_read_only_content(fixed_groups, group_value, expected):
    """The policy's `group` read out of a read-only Mapping, as Synapse hands
    the room's state over, for the room and for the rooms two users share."""
    engine, reference = fixed_groups
    policy = {"school": "gym-nord", "kind": "course", "two_way": True, "group": group_value}
    room = (_ReadOnlyContent(policy), RECONCILER, _ReadOnlyContent({"users": {LOCAL_USERS[0]: 50}}),
            _ReadOnlyContent({"room_version": "12"}), RECONCILER)
    shared = [(_ReadOnlyContent(policy), RECONCILER, RECONCILER)]
    req = ask("user_may_invite", LOCAL_USERS[0], room, LOCAL_USERS[1], shared=shared)
    assert run_request(engine, reference, req, {}) == expected
