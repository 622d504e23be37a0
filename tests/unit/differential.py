"""What the differential tests share (test_differential*.py): the generated
configs, rosters, rooms, createRoom bodies, events and requests, and the
runner that asks the C engine and the pure-Python reference model the same
questions. The C engine and the reference model must make the same
decision on every generated input.

Each generated request starts with a random subset of the facts the adapter
can look up (the room, whether the actor is a server admin, the rooms actor
and target share, the actor's membership, the room's member count); when the
engine answers NEED_*, the test supplies that fact and asks again, as the
adapter does, comparing engine and reference at every step."""

import json
import os

from hypothesis import currently_in_test_context
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from reference_policy import (
    NEED_ADMIN,
    NEED_MEMBER_COUNT,
    NEED_MEMBERSHIP,
    NEED_ROOM,
    NEED_SHARED_ROOMS,
    SYNC_POWER_LEVELS,
    ReferencePolicy,
    create_room_invitees,
)
from synapse_school_policy import _core

SERVER = "school.test"
SCHOOLS = ["gym-nord", "gs-sued", "rs-west"]
LOCAL_USERS = [f"@u{i}:{SERVER}" for i in range(6)]
RECONCILER = f"@school-policy:{SERVER}"  # the special rooms' owner (default reconciler user)
REMOTE_USERS = ["@remote:other.test", "@u0:other.test"]
USERS = LOCAL_USERS + REMOTE_USERS
ACTORS = USERS + [RECONCILER]
ROOM_ID = "!room:school.test"
POLICY_TYPE = "org.synapse_school_policy.room"
# The callbacks decide() answers; after_the_fact is after_event()'s (below).
CALLBACKS = {name: number for number, name in enumerate(_core.CALLBACK_NAMES) if name != "after_the_fact"}
FACT = {None: _core.FACT_UNKNOWN, False: _core.FACT_NO, True: _core.FACT_YES}
FACTS = ("room", "actor_admin", "shared_rooms", "actor_membership", "member_count")
NEED_TO_FACT = {
    NEED_ROOM: "room",
    NEED_ADMIN: "actor_admin",
    NEED_SHARED_ROOMS: "shared_rooms",
    NEED_MEMBERSHIP: "actor_membership",
    NEED_MEMBER_COUNT: "member_count",
}
ENGINE_OUTCOMES = {
    _core.NEED_ROOM: NEED_ROOM,
    _core.NEED_ADMIN: NEED_ADMIN,
    _core.NEED_SHARED_ROOMS: NEED_SHARED_ROOMS,
    _core.NEED_MEMBERSHIP: NEED_MEMBERSHIP,
    _core.NEED_MEMBER_COUNT: NEED_MEMBER_COUNT,
    _core.SYNC_POWER_LEVELS: SYNC_POWER_LEVELS,
}
MISSING = object()  # a key left out of a generated dict


def event(label):
    """hypothesis.event, also callable from the plain regression tests."""
    if currently_in_test_context():
        hypothesis_event(label)
# SSP_DIFFERENTIAL_SCALE=10 runs ten times the examples (a deeper search than CI's ~30 s per test).
SCALE = float(os.environ.get("SSP_DIFFERENTIAL_SCALE", "1"))


def without_missing(d):
    return {k: v for k, v in d.items() if v is not MISSING}


# ---- config and roster -----------------------------------------------------------------

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
    optional={
        "unlisted_users": st.sampled_from(["deny", "allow"]),
        "enforce": st.booleans(),
        "audit": st.fixed_dictionaries({"readers": st.lists(st.sampled_from(LOCAL_USERS), max_size=2, unique=True)}),
    },
)
rosters = st.one_of(
    st.dictionaries(
        st.sampled_from(LOCAL_USERS),
        st.lists(
            st.tuples(st.sampled_from(SCHOOLS + ["unknown-school"]), st.sampled_from(["teacher", "student", "admin"])),
            max_size=3,
            unique_by=lambda m: m[0],
        ),
        max_size=6,
    ),
    # Most users in gym-nord, so that decisions get past rule 1 to the room rules.
    st.dictionaries(
        st.sampled_from(LOCAL_USERS),
        st.lists(
            st.tuples(st.sampled_from(["gym-nord", "gym-nord", "gs-sued"]), st.sampled_from(["teacher", "student"])),
            min_size=1,
            max_size=2,
            unique_by=lambda m: m[0],
        ),
        min_size=4,
        max_size=6,
    ),
)

# ---- rooms -----------------------------------------------------------------------------

room_policies = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "school": st.one_of(st.sampled_from(SCHOOLS + ["unknown-school"]), st.integers()),
            "kind": st.sampled_from(["course", "team", "teachers", "announcement", "bogus"]),
            "two_way": st.booleans(),
        },
    ),
    # Rooms of gym-nord, which the tests often opt in, so that decisions get past rule 1.
    st.fixed_dictionaries(
        {"school": st.just("gym-nord")},
        optional={"kind": st.sampled_from(["course", "team", "teachers", "announcement", "bogus"]),
                  "two_way": st.booleans()},
    ),
)
# Senders of the policy event and of m.room.create: local users (some of them
# service users), the reconciler user, remote users.
senders = st.one_of(st.just(RECONCILER), st.sampled_from(LOCAL_USERS + [RECONCILER] + REMOTE_USERS))
levels = st.one_of(st.integers(-5, 120), st.sampled_from(["50", "0", "x", None, True]))
power_levels = st.fixed_dictionaries(
    {},
    optional={
        "users": st.dictionaries(st.sampled_from(ACTORS), levels, max_size=4),
        "users_default": levels,
        "events_default": levels,
        "state_default": levels,
        "events": st.dictionaries(st.sampled_from(["m.reaction", "m.room.redaction", "m.room.name"]), levels, max_size=3),
    },
)
ROOM_VERSIONS = ["1", "9", "10", "11", "12", "13", "org.matrix.hydra.11", "org.matrix.msc3757.10",
                 "org.matrix.msc3757.11", "org.matrix.msc3757.12", "unknown-version"]
create_contents = st.fixed_dictionaries(
    {},
    optional={
        "room_version": st.sampled_from(ROOM_VERSIONS),
        "additional_creators": st.one_of(
            st.lists(st.one_of(st.sampled_from(ACTORS), st.just(5)), max_size=2),
            st.sampled_from(ACTORS),  # not a list: no additional creators
        ),
        "m.federate": st.booleans(),
    },
)


POLICY_EVENT_ID = "$policy"


def make_room(policy, pl, create, with_event_id=True):
    policy_content, policy_sender = policy if policy is not None else (None, None)
    create_content, create_sender = create if create is not None else (None, None)
    room = (policy_content, policy_sender, pl, create_content, create_sender)
    # The policy event's id may be left out of the tuple (then redactions of
    # it cannot be recognised).
    return (*room, POLICY_EVENT_ID if policy is not None else None) if with_event_id else room


rooms = st.one_of(
    st.builds(
        make_room,
        policy=st.one_of(st.none(), st.tuples(room_policies, senders)),
        pl=st.one_of(st.none(), power_levels),
        create=st.one_of(st.none(), st.tuples(create_contents, senders)),
        with_event_id=st.booleans(),
    ),
    # Local rooms: gym-nord's managed rooms, and direct chats or group rooms of local users.
    st.builds(
        make_room,
        policy=st.one_of(
            st.none(),
            st.tuples(
                st.fixed_dictionaries({"school": st.just("gym-nord"),
                                       "kind": st.sampled_from(["course", "teachers", "announcement"])},
                                      optional={"two_way": st.booleans()}),
                senders,
            ),
        ),
        pl=st.one_of(st.none(), power_levels),
        create=st.tuples(create_contents, st.sampled_from(LOCAL_USERS + [RECONCILER])),
        with_event_id=st.booleans(),
    ),
)
A_COURSE = ({"school": "gym-nord", "kind": "course"}, RECONCILER, RECONCILER)  # qualifies when gym-nord opted in
shared_room_lists = st.one_of(st.just([A_COURSE]), st.lists(
    st.builds(
        lambda policy, create_sender: (*(policy if policy is not None else (None, None)), create_sender),
        st.one_of(st.none(), st.tuples(room_policies, senders)),
        st.one_of(st.none(), senders),
    ),
    max_size=3,
))
memberships = st.sampled_from(["join", "invite", "leave", "ban", "knock", ""])

# ---- createRoom bodies -----------------------------------------------------------------

state_key_choices = st.sampled_from(["", "x", MISSING])


def state_event(event_type, contents, state_keys=state_key_choices):
    return st.builds(
        lambda sk, c: without_missing({"type": event_type, "state_key": sk, "content": c}), state_keys, contents
    )


JOIN_RULE_VALUES = ["public", "knock", "restricted", "knock_restricted", "private", "invite", "Invite", 5, None]
join_rule_contents = st.one_of(
    st.builds(lambda v: {"join_rule": v}, st.sampled_from(JOIN_RULE_VALUES)),
    st.just({}),
    st.just({"join_rule": "invite", "allow": [{"type": "m.room_membership", "room_id": "!x:school.test"}]}),
)
history_visibility_contents = st.one_of(
    st.builds(lambda v: {"history_visibility": v},
              st.sampled_from(["world_readable", "shared", "joined", "invited", "World_Readable", 5])),
    st.just({}),
)
guest_access_contents = st.builds(lambda v: {"guest_access": v}, st.sampled_from(["can_join", "forbidden", 1]))
initial_state_events = st.one_of(
    state_event("m.room.join_rules", join_rule_contents),
    state_event("m.room.history_visibility", history_visibility_contents),
    state_event("m.room.guest_access", guest_access_contents),
    state_event("m.room.member", st.builds(lambda m: {"membership": m}, st.sampled_from(["invite", "join", "leave"])),
                st.one_of(st.sampled_from(ACTORS), st.just(5), st.just(MISSING))),
    state_event("m.room.third_party_invite", st.just({"display_name": "a", "key_validity_url": "https://x",
                                                      "public_key": "k"}), st.just("token")),
    state_event("m.room.topic", st.just({"topic": "t"})),
    state_event("m.room.encryption", st.just({"algorithm": "m.megolm.v1.aes-sha2"})),
    state_event(POLICY_TYPE, st.just({"school": "gym-nord"})),
)
create_bodies = st.fixed_dictionaries(
    {},
    optional={
        "is_direct": st.sampled_from([True, False, "true"]),
        "invite": st.one_of(st.lists(st.one_of(st.sampled_from(ACTORS), st.just(7)), max_size=3), st.just("@u1:school.test")),
        "preset": st.sampled_from(["private_chat", "public_chat", "trusted_private_chat"]),
        "visibility": st.sampled_from(["private", "public"]),
        "room_alias_name": st.sampled_from(["class", None]),
        "invite_3pid": st.lists(st.just({"medium": "email", "address": "a@b.c", "id_server": "x"}), max_size=1),
        "initial_state": st.lists(initial_state_events, max_size=3),
        # A room upgrade's body (no preset) names the room it replaces.
        "creation_content": st.sampled_from([{"predecessor": {"room_id": ROOM_ID}}, {"predecessor": {}},
                                             {"m.federate": False}]),
    },
)

# ---- events ----------------------------------------------------------------------------

EMOJI_KEYS = [
    "👍", "❤️", "❤", "1️⃣", "1\u20e3", "#️⃣", "*\u20e3", "12\u20e3", "x\u20e3", "\u20e3", "\ufe0f", "\u200d",
    "👨‍👩‍👧", "🏳️‍🌈", "🇩🇪", "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "©", "™️", "⬆",
    "1", "#", "*", "a", "ok", "👍 ok", "", "👍" * 16, "👍" * 17, "©" * 32, "©" * 33, "+1", ":)", "\u00a0",
    # text in disguise: digits before one keycap, circled digits, enclosed
    # letters, lone or tripled regional indicators, two emoji in a row
    "01761234567\u20e3", "\u2780\u2786", "\U0001f17c\U0001f174", "\U0001f170\ufe0f", "\U0001f1e9",
    "\U0001f1e9\U0001f1ea\U0001f1e9", "👍👍", "👍\U0001f3fd", "\U0001f3fd", "👍\u200d", "\u200d👍",
    "👍" + "\u200d👍" * 8, "👍" + "\u200d👍" * 9,
]
# Code points at and around the edges of the ranges a reaction key may use.
BOUNDARY_CODE_POINTS = [
    0xA8, 0xA9, 0xAA, 0xAD, 0xAE, 0xAF, 0x203B, 0x203C, 0x203D, 0x2048, 0x2049, 0x204A, 0x2121, 0x2122, 0x2123,
    0x2138, 0x2139, 0x213A, 0x2193, 0x2194, 0x2199, 0x219A, 0x21A8, 0x21A9, 0x21AA, 0x21AB, 0x2319, 0x231A, 0x23FF,
    0x2400, 0x24C1, 0x24C2, 0x24C3, 0x259F, 0x25A0, 0x27BF, 0x27C0, 0x28FF, 0x2900, 0x2BFF, 0x2C00, 0x302F, 0x3030,
    0x3031, 0x303C, 0x303D, 0x303E, 0x3296, 0x3297, 0x3298, 0x3299, 0x329A, 0x1EFFF, 0x1F000, 0x1F44D, 0x1FAFF,
    0x1FB00, 0x200C, 0x200D, 0x200E, 0xFE0D, 0xFE0E, 0xFE0F, 0xFE10, 0x20E2, 0x20E3, 0x20E4, 0xE001F, 0xE0020,
    0xE007F, 0xE0080, ord("0"), ord("9"), ord("#"), ord("*"), ord("/"), ord("a"), ord(" "), 0,
]
emoji_keys = st.one_of(
    st.sampled_from(EMOJI_KEYS),
    st.text(st.sampled_from([chr(c) for c in BOUNDARY_CODE_POINTS]), min_size=1, max_size=4),
    st.text(st.sampled_from([chr(c) for c in BOUNDARY_CODE_POINTS]), min_size=10, max_size=40),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=5),
    st.sampled_from([5, None, ["👍"]]),
)


def make_reaction(key, rel_type, event_id, extra_top, extra_rel):
    relation = without_missing({"rel_type": rel_type, "event_id": event_id, "key": key})
    relation.update(extra_rel)
    content = {"m.relates_to": relation}
    content.update(extra_top)
    return content


reaction_contents = st.one_of(
    st.builds(
        make_reaction,
        key=emoji_keys,
        rel_type=st.sampled_from(["m.annotation"] * 6 + ["m.reference", "m.thread", "m.replace", 5, MISSING]),
        event_id=st.sampled_from(["$event"] * 6 + [5, MISSING]),
        extra_top=st.sampled_from([{}] * 6 + [{"body": "x"}, {"m.new_content": {}}, {"shortcode": "thumbsup"}]),
        extra_rel=st.sampled_from([{}] * 6 + [{"is_falling_back": True}, {"m.in_reply_to": {"event_id": "$e"}}]),
    ),
    st.sampled_from([{}, {"m.relates_to": None}, {"m.relates_to": 5}, {"m.relates_to": "x"},
                     {"m.relates_to": ["$event"]}, {"body": "👍"}]),
)
redaction_contents = st.sampled_from([
    {}, {"redacts": "$event"}, {"redacts": "$event", "reason": "spam"}, {"reason": "spam"},
    {"redacts": "$event", "x": 1}, {"redacts": 5}, {"redacts": "$event", "reason": ""},
    {"redacts": POLICY_EVENT_ID}, {"redacts": "meet me at 5"},
])
EVENT_CONTENTS = {
    "m.room.message": st.just({"msgtype": "m.text", "body": "hi"}),
    "m.room.encrypted": st.just({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"}),
    "m.sticker": st.just({"body": "s", "url": "mxc://school.test/x"}),
    "io.custom.type": st.just({}),
    "m.room.redaction": redaction_contents,
    "m.reaction": reaction_contents,
    POLICY_TYPE: room_policies,
    "m.room.power_levels": power_levels,
    "m.room.join_rules": join_rule_contents,
    "m.room.history_visibility": history_visibility_contents,
    "m.room.guest_access": guest_access_contents,
    "m.room.third_party_invite": st.sampled_from([{"display_name": "a", "key_validity_url": "https://x",
                                                   "public_key": "k"}, {}]),
}
events = st.sampled_from(sorted(EVENT_CONTENTS)).flatmap(
    lambda t: st.tuples(st.just(t), st.one_of(EVENT_CONTENTS[t], EVENT_CONTENTS[t], st.sampled_from(
        [{"msgtype": "m.text", "body": "hi"}, {}, {"join_rule": "public"}]))))
state_keys = st.sampled_from([None, None, "", "", "x"])

# ---- requests --------------------------------------------------------------------------

WITH_TARGET = {"user_may_invite", "check_username_for_spam", "federated_user_may_invite"}
# Sign-in callbacks: the identity provider's id, none, or (never judged) a user's id.
WITH_PROVIDER = {"check_login_for_spam", "on_user_login", "check_registration_for_spam", "is_user_expired"}
WITH_ROOM = {"user_may_join_room", "user_may_invite", "check_event_for_spam", "federated_user_may_invite",
             "user_may_publish_room", "user_may_send_3pid_invite"}
ROOM_DOORS = ["user_may_join_room", "user_may_invite", "user_may_create_room", "check_event_for_spam"]


@st.composite
def requests(draw, callbacks, room_facts=None, shared_facts=None, event_facts=None, actors=None):
    """A request of one of `callbacks`, with the facts the adapter could look
    up; the actor, rooms, shared rooms and events from the strategies given
    (the ones above unless said)."""
    callback = draw(callbacks)
    actor = draw(st.sampled_from(ACTORS) if actors is None else actors)
    req = {"callback": callback, "actor": actor, "target": None, "room_id": None, "event_type": None,
           "state_key": None, "content": None, "is_invited": None}
    if callback in WITH_TARGET:
        req["target"] = draw(st.sampled_from(ACTORS))
    if callback in WITH_PROVIDER:
        req["target"] = draw(st.sampled_from([None, None, "oidc-school-cloud", *ACTORS]))
    if callback in WITH_ROOM:
        req["room_id"] = ROOM_ID
    if callback == "user_may_create_room_alias":
        req["room_id"] = "#class:school.test"
    if callback == "user_may_join_room":
        req["is_invited"] = draw(st.booleans())
    if callback == "user_may_create_room":
        body = draw(create_bodies)
        req["content"] = body
        # As the adapter does: the predecessor an upgrade's body names.
        predecessor = body.get("creation_content", {}).get("predecessor", {}).get("room_id")
        req["room_id"] = predecessor if draw(st.booleans()) else None
        invitees = create_room_invitees(body, actor)
        if invitees:  # the adapter asks once with no target, then once per invitee
            req["target"] = draw(st.one_of(st.none(), st.sampled_from(invitees)))
    if callback == "check_event_for_spam":
        req["event_type"], req["content"] = draw(events if event_facts is None else event_facts)
        req["state_key"] = draw(state_keys)
        if req["event_type"] == "m.room.redaction":  # what it redacts, as Synapse reads it
            req["redacts"] = draw(st.sampled_from(["$event", POLICY_EVENT_ID, None]))
    req["facts"] = {
        "room": draw(rooms if room_facts is None else room_facts),
        "actor_admin": draw(st.booleans()),
        "shared_rooms": draw(shared_room_lists if shared_facts is None else shared_facts),
        "actor_membership": draw(memberships),
        "member_count": draw(st.integers(0, 3)),
    }
    req["known"] = draw(st.fixed_dictionaries({f: st.sampled_from([False, False, True]) for f in FACTS}))
    return req


def normalise_engine(outcome):
    if outcome is None:
        return None
    if isinstance(outcome, int):
        return ENGINE_OUTCOMES[outcome]
    rule, _message, enforced, school = outcome
    return (rule, enforced, school or None)


def engine_and_reference(config, roster, data_dir, groups=()):
    """The C engine and the reference model, built from the same config,
    roster and groups (each as the school cloud sends it)."""
    engine = _core.Engine(json.dumps({**config, "data_dir": data_dir}), SERVER, "main")
    engine.open()
    users = [
        {"user_id": user, "schools": [{"school": s, "role": r} for s, r in memberships]}
        for user, memberships in roster.items()
    ]
    engine.roster_upsert(json.dumps({"users": users}))
    if groups:
        engine.roster_upsert(json.dumps({"groups": list(groups)}))
    reference = ReferencePolicy(
        server_name=SERVER,
        schools=config["schools"],
        service_users=frozenset(config["service_users"]),
        unlisted_allow=config.get("unlisted_users") == "allow",
        enforce=config.get("enforce", True),
        roster={user: list(m) for user, m in roster.items()},
        moderator_level=config.get("moderator_level", 50),
        one_way_allowed_events=frozenset(config.get("one_way_allowed_events", ())),
        audit_readers=frozenset(config.get("audit", {}).get("readers", ())),
        groups={g["group"]: g for g in groups},
    )
    assert engine.reconciler_user == reference.reconciler_user
    return engine, reference


def run_request(engine, reference, req, context):
    """Asks both, supplying the facts they ask for, until a final answer."""
    known = {f: req["facts"][f] if req["known"][f] else None for f in FACTS}
    steps = []
    for _ in range(len(FACTS) + 1):
        expected = reference.decide(
            req["callback"], req["actor"], req["target"], req["room_id"], req["event_type"], req["state_key"],
            req["content"], known["room"], known["actor_admin"], req["is_invited"], known["shared_rooms"],
            known["actor_membership"], known["member_count"], req.get("redacts"),
        )
        raw = engine.decide(
            CALLBACKS[req["callback"]], req["actor"], req["target"], req["room_id"], req["event_type"],
            req["state_key"], req["content"], known["room"], FACT[known["actor_admin"]], req["is_invited"],
            known["shared_rooms"], known["actor_membership"], known["member_count"], req.get("redacts"),
        )
        actual = normalise_engine(raw)
        steps.append(expected)
        assert actual == expected, {"request": req, "facts_given": known, "steps": steps, **context}
        room = known["room"]
        if expected is None and room is not None and reference._is_creator(room[3], room[4], req["actor"]) \
                and room[0] and reference._one_way(room[0]) and req["event_type"] == "m.room.message":
            event("a creator posts in a one-way room")
        if expected not in NEED_TO_FACT:
            asked = "".join(f" after {step}" for step in steps[:-1] if step in (NEED_MEMBERSHIP, NEED_MEMBER_COUNT))
            what = req["callback"] if req["event_type"] is None else f"{req['event_type']} (state_key {req['state_key']!r})"
            event(f"{what}: {expected[0] if isinstance(expected, tuple) else expected}{asked}")
            return expected
        fact = NEED_TO_FACT[expected]
        assert known[fact] is None, f"asked for {fact} again"
        known[fact] = req["facts"][fact]
    raise AssertionError(f"no final answer after {steps}")


def opt_in_gym_nord(config):
    schools = dict(config["schools"])
    schools["gym-nord"] = {**schools.get("gym-nord", {}), "messenger": True}
    return {**config, "schools": schools}


# ---- one fixed school, many requests -----------------------------------------------------
# One engine for all examples (no engine per example), so that the tests on
# it search the request space far more densely.

FIXED_CONFIG = {
    "schools": {
        "gym-nord": {"messenger": True, "announcement_room": True},
        "gs-sued": {"messenger": False},
        "rs-west": {"messenger": True, "room_creation": "everyone", "enforce": False},
    },
    "service_users": [LOCAL_USERS[5]],
    "one_way_allowed_events": ["m.reaction"],
}
FIXED_ROSTER = {
    LOCAL_USERS[0]: [("gym-nord", "teacher")],
    LOCAL_USERS[1]: [("gym-nord", "student")],
    LOCAL_USERS[2]: [("gs-sued", "student")],
    LOCAL_USERS[3]: [("gym-nord", "admin"), ("rs-west", "student")],
    LOCAL_USERS[4]: [("rs-west", "student")],
}


def fixed_school_pair(tmp_path_factory):
    """The engine and the reference model of the fixed school."""
    return engine_and_reference(FIXED_CONFIG, FIXED_ROSTER, str(tmp_path_factory.mktemp("fixed")))
