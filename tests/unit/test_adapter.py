"""The adapter's decision loop against a fake ModuleApi (unit level; the
integration tests cover the real Synapse). It must ask Synapse only for the
facts the engine requests, and only when it requests them."""
import asyncio
import json
from types import SimpleNamespace

import pytest
from synapse.module_api import NOT_SPAM

from synapse_school_policy.module import SchoolPolicy

POLICY_TYPE = "org.synapse_school_policy.room"


class FakeEvent(SimpleNamespace):
    def is_state(self):
        return self.state_key is not None

    def get_state_key(self):
        return self.state_key


class FakeApi:
    """Just the ModuleApi members the adapter uses, recording the lookups."""

    server_name = "school.test"
    worker_name = None
    worker_app = None

    def __init__(self, room_state=None, admins=(), mutual_rooms=(), profiles=None, events_state=None):
        self.room_state = room_state or {}
        self.admins = set(admins)
        self.lookups = []
        self.background = []
        self.threads = []
        self.sent = []
        self.memberships = []
        self.third_party_callbacks = {}
        self.looping = {}
        self.profiles = profiles or {}
        # The after-the-fact tests: each room's current state as Synapse's
        # events, and the current state delta stream.
        self.events_state = events_state or {}
        self.deltas = []
        self._hs = SimpleNamespace(get_room_member_handler=lambda: None, config=SimpleNamespace(
            userdirectory=SimpleNamespace(user_directory_search_all_users=False),
            server=SimpleNamespace(limit_profile_requests_to_users_who_share_rooms=True,
                                   require_auth_for_profile_requests=True),
            registration=SimpleNamespace(allow_guest_access=False, enable_registration=False,
                                         registration_requires_token=False),
        ))
        mutual = frozenset(mutual_rooms)

        async def get_mutual_rooms_between_users(users):
            self.lookups.append(("mutual_rooms", tuple(sorted(users))))
            return mutual

        async def get_rooms_for_user(user_id):
            return frozenset()

        async def get_partial_current_state_deltas(since, until):
            deltas = [d for d in self.deltas if since < d.stream_id <= until][:2]
            return (deltas[-1].stream_id if deltas else until), deltas

        async def get_event(event_id, allow_none=False):
            for state in self.events_state.values():
                for event in state.values():
                    if event.event_id == event_id:
                        return event
            return None

        self._store = SimpleNamespace(
            get_mutual_rooms_between_users=get_mutual_rooms_between_users,
            get_rooms_for_user=get_rooms_for_user,
            get_room_max_stream_ordering=lambda: max((d.stream_id for d in self.deltas), default=0),
            get_partial_current_state_deltas=get_partial_current_state_deltas,
            get_event=get_event,
        )

    def register_spam_checker_callbacks(self, **callbacks):
        self.spam_callbacks = callbacks

    def register_third_party_rules_callbacks(self, **callbacks):
        self.third_party_callbacks.update(callbacks)


    async def get_profile_for_user(self, localpart):
        self.lookups.append(("profile", localpart))
        display_name, avatar_url = self.profiles.get(localpart, (None, None))
        return SimpleNamespace(display_name=display_name, avatar_url=avatar_url)

    async def create_and_send_event_into_room(self, event_dict):
        self.sent.append(event_dict)

    async def update_room_membership(self, sender, target, room_id, membership, content=None):
        self.memberships.append((sender, target, room_id, membership))

    def register_web_resource(self, path, resource):
        self.resource = resource

    def register_account_validity_callbacks(self, **callbacks):
        self.account_validity_callbacks = callbacks

    async def get_room_state(self, room_id, event_filter):
        """Every room given is one the sync created and whose state it set."""
        self.lookups.append(("room_state", room_id))
        if room_id in self.events_state:
            return {key: event for key, event in self.events_state[room_id].items()
                    if any(key[0] == t and k in (None, key[1]) for t, k in event_filter)}
        state = self.room_state.get(room_id)
        if state is None:
            return {}
        state = {"m.room.create": {"room_version": "12"}, **state}
        return {
            key: SimpleNamespace(content=state[key[0]], event_id="$p", sender="@sync:school.test")
            for key in event_filter if key[0] in state
        }

    async def is_user_admin(self, user_id):
        self.lookups.append(("is_admin", user_id))
        return user_id in self.admins

    def looping_background_call(self, f, msec, *args, desc=None, **kwargs):
        self.looping[desc] = (f, msec)

    async def sleep(self, seconds):
        pass

    async def defer_to_threadpool(self, pool, f, *args):
        """The module's store calls (a thread of its own pools in Synapse)."""
        result = f(*args)
        self.threads.append((pool.name, f.__name__))
        return result

    def run_as_background_process(self, desc, func, *args):
        self.background.append((desc, args))


def run(coro):
    return asyncio.run(coro)


class FakeDurable:
    """The reactor's wait for an audit record (durable.py, tested with a
    fake reactor in test_durable.py), as a blocking wait: asyncio here runs
    no Twisted reactor. `stalled` plays a store that writes nothing."""

    def __init__(self, engine):
        self.engine = engine
        self.waits = []
        self.stalled = False

    async def wait(self, audit_id, timeout):
        durable = not self.stalled and self.engine.wait_durable(audit_id, int(timeout * 1000))
        self.waits.append((audit_id, durable))
        return durable


@pytest.fixture
def make_policy(tmp_path):
    def make(api, **overrides):
        config = {
            "data_dir": str(tmp_path / "store"),
            "service_users": ["@sync:school.test"],
            "schools": {"gym-nord": {"messenger": True}},
            **overrides,
        }
        policy = SchoolPolicy(SchoolPolicy.parse_config(config), api)
        policy._durable.stop()
        policy._durable = FakeDurable(policy._engine)
        policy._engine.roster_put("@pupil:school.test", json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
        policy._engine.roster_put("@teacher:school.test", json.dumps({"schools": [{"school": "gym-nord", "role": "teacher"}]}))
        return policy
    return make


def test_an_enforced_denial_waits_for_its_audit_record_and_nothing_else_does(make_policy):
    api = FakeApi()
    policy = make_policy(api, schools={"gym-nord": {"messenger": True}, "rs-ost": {"messenger": False, "enforce": False}})
    policy._engine.roster_put("@dora:school.test", json.dumps({"schools": [{"school": "rs-ost", "role": "student"}]}))
    assert run(policy.check_login_for_spam("@pupil:school.test", None, None, [], None)) is NOT_SPAM
    assert run(policy.check_login_for_spam("@dora:school.test", None, None, [], None)) is NOT_SPAM  # report-only
    assert policy._durable.waits == []
    code, fields = run(policy.check_login_for_spam("@nobody:school.test", None, None, [], None))
    assert fields["school_policy"] == {"rule": "not_on_roster"}
    # One wait, and it returned with the record written; no thread taken.
    assert [durable for _, durable in policy._durable.waits] == [True]
    assert api.threads == []
    records = policy._engine.audit_query(user="@nobody:school.test")["records"]
    assert [r["rule"] for r in records] == ["not_on_roster"]


def test_allowed_login_asks_synapse_nothing(make_policy):
    api = FakeApi()
    policy = make_policy(api)
    assert run(policy.check_login_for_spam("@pupil:school.test", None, None, [], None)) is NOT_SPAM
    assert api.lookups == []


def test_admin_status_is_looked_up_only_before_a_denial(make_policy):
    api = FakeApi(admins={"@root:school.test"})
    policy = make_policy(api)
    assert run(policy.check_login_for_spam("@root:school.test", None, None, [], None)) is NOT_SPAM
    assert api.lookups == [("is_admin", "@root:school.test")]
    code, fields = run(policy.check_login_for_spam("@nobody:school.test", None, None, [], None))
    assert fields["school_policy"] == {"rule": "not_on_roster"}


def test_a_message_reads_the_rooms_policy_and_power_levels_once(make_policy):
    api = FakeApi(room_state={"!r": {POLICY_TYPE: {"school": "gym-nord", "kind": "course", "two_way": False},
                                     "m.room.power_levels": {"users": {"@teacher:school.test": 50}}}})
    policy = make_policy(api)
    event = FakeEvent(sender="@teacher:school.test", room_id="!r", type="m.room.message", state_key=None,
                      content={"body": "hi"}, event_id="$e")
    assert run(policy.check_event_for_spam(event)) is NOT_SPAM
    assert api.lookups == [("room_state", "!r")]
    pupil_event = FakeEvent(sender="@pupil:school.test", room_id="!r", type="m.room.message", state_key=None,
                            content={"body": "hi"}, event_id="$e2")
    code, fields = run(policy.check_event_for_spam(pupil_event))
    assert fields["school_policy"] == {"rule": "one_way"}


def test_a_flip_of_two_way_schedules_the_power_levels_update(make_policy):
    api = FakeApi(room_state={"!r": {POLICY_TYPE: {"school": "gym-nord", "kind": "course", "two_way": False},
                                     "m.room.power_levels": {"events_default": 50, "events": {"m.room.redaction": 0},
                                                             "users": {"@teacher:school.test": 50}}}})
    policy = make_policy(api)
    event = FakeEvent(sender="@teacher:school.test", room_id="!r", type=POLICY_TYPE, state_key="",
                      content={"school": "gym-nord", "kind": "course", "two_way": True}, event_id="$flip")
    assert run(policy.check_event_for_spam(event)) is NOT_SPAM
    assert api.background == [("school_policy_sync_power_levels", ("!r", "$flip"))]


def test_invites_read_the_shared_rooms_only_when_rule_1_passes(make_policy):
    api = FakeApi(room_state={"!course": {POLICY_TYPE: {"school": "gym-nord", "kind": "course"}}}, mutual_rooms={"!course"})
    policy = make_policy(api)
    assert run(policy.user_may_invite("@teacher:school.test", "@pupil:school.test", "!dm")) is NOT_SPAM
    assert ("mutual_rooms", ("@pupil:school.test", "@teacher:school.test")) in api.lookups
    api.lookups.clear()
    code, fields = run(policy.user_may_invite("@teacher:school.test", "@stranger:school.test", "!dm"))
    assert fields["school_policy"] == {"rule": "not_on_roster"}
    assert not any(kind == "mutual_rooms" for kind, _ in api.lookups)


def test_directory_hides_users_without_a_shared_room(make_policy):
    api = FakeApi(mutual_rooms=set())
    policy = make_policy(api)
    hidden = run(policy.check_username_for_spam({"user_id": "@pupil:school.test"}, "@teacher:school.test"))
    assert hidden is True
    assert policy._durable.waits == []  # no refusal is shown: no wait for the record


def test_on_create_room_closes_guest_access_and_federation_of_managed_rooms(make_policy):
    policy = make_policy(FakeApi())
    body = {"preset": "private_chat", "initial_state": [
        {"type": POLICY_TYPE, "state_key": "", "content": {"school": "gym-nord", "kind": "course", "two_way": False}}]}
    run(policy.on_create_room(None, body, False))
    assert {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}} in body["initial_state"]
    assert body["creation_content"]["m.federate"] is False
    assert body["power_level_content_override"]["events_default"] == 50
    assert body["power_level_content_override"]["events"] == {"m.room.redaction": 0}


def test_strict_self_check_refuses_a_bad_homeserver_config(make_policy):
    from synapse.config._base import ConfigError

    api = FakeApi()
    api._hs.config.userdirectory.user_directory_search_all_users = True
    with pytest.raises(ConfigError, match="user_directory.search_all_users: must be false"):
        make_policy(api)


@pytest.mark.parametrize("space", ["\u00a0", "\u202f", "\u3000", "\u2007", " "])
def test_a_school_id_with_any_unicode_white_space_stops_synapse_naming_the_code_point(
    tmp_path, space
):
    from synapse.config._base import ConfigError

    config = {"data_dir": str(tmp_path / "store"), "schools": {f"gym{space}nord": {}}}
    with pytest.raises(ConfigError, match=f"contains a space \\(U\\+{ord(space):04X}\\)"):
        SchoolPolicy.parse_config(config)


def test_tokens_of_users_rule_1_refuses_expire_and_others_ask_nothing(make_policy):
    api = FakeApi(admins={"@root:school.test"})
    policy = make_policy(api)
    assert run(policy.is_user_expired("@pupil:school.test")) is None
    assert run(policy.is_user_expired("@sync:school.test")) is None
    assert api.lookups == []
    assert run(policy.is_user_expired("@nobody:school.test")) is True
    assert run(policy.is_user_expired("@root:school.test")) is None
    assert api.account_validity_callbacks["is_user_expired"] == policy.is_user_expired


def test_a_joined_members_profile_change_reads_their_membership_only_then(make_policy):
    api = FakeApi(room_state={"!r": {POLICY_TYPE: {"school": "gym-nord", "kind": "course"}}})
    policy = make_policy(api)
    # Invited into their own school's room: no membership lookup.
    assert run(policy.user_may_join_room("@pupil:school.test", "!r", True)) is NOT_SPAM
    assert api.lookups == [("room_state", "!r")]
    api.lookups.clear()
    # Synapse's join->join (no inviter): the membership decides, and the fake
    # room has none for the pupil, so this is a join without an invite.
    code, fields = run(policy.user_may_join_room("@pupil:school.test", "!r", False))
    assert fields["school_policy"] == {"rule": "join_forbidden"}
    assert api.lookups[:2] == [("room_state", "!r"), ("room_state", "!r")]


MANAGED = {"type": POLICY_TYPE, "state_key": "", "content": {"school": "gym-nord", "kind": "course", "two_way": False}}
GUEST_FORBIDDEN = {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}


def test_on_create_room_closes_federation_even_when_asked_to_open_it(make_policy):
    policy = make_policy(FakeApi())
    body = {"initial_state": [MANAGED], "creation_content": {"m.federate": True, "type": "x"}}
    run(policy.on_create_room(None, body, False))
    assert body["creation_content"] == {"m.federate": False, "type": "x"}
    body = {"initial_state": [MANAGED], "creation_content": ["not", "an", "object"]}
    run(policy.on_create_room(None, body, False))
    assert body["creation_content"] == {"m.federate": False}


def test_on_create_room_aligns_the_power_levels_synapse_uses(make_policy):
    """An m.room.power_levels entry in initial_state replaces Synapse's
    defaults and its power_level_content_override: the patch goes there."""
    policy = make_policy(FakeApi())
    levels = {"users": {"@sync:school.test": 100}, "events": {"m.room.name": 50}}
    body = {"initial_state": [MANAGED, {"type": "m.room.power_levels", "content": levels}],
            "power_level_content_override": {"events_default": 0}}
    run(policy.on_create_room(None, body, False))
    assert body["initial_state"][1]["content"] == {
        "users": {"@sync:school.test": 100}, "events": {"m.room.name": 50, "m.room.redaction": 0}, "events_default": 50}
    assert body["power_level_content_override"] == {"events_default": 0}
    assert levels == {"users": {"@sync:school.test": 100}, "events": {"m.room.name": 50}}, "the caller's map is copied"
    # An override whose events is not a map is mended, not a crash.
    body = {"initial_state": [MANAGED], "power_level_content_override": {"events": [1]}}
    run(policy.on_create_room(None, body, False))
    assert body["power_level_content_override"] == {"events": {"m.room.redaction": 0}, "events_default": 50}


@pytest.mark.parametrize("initial_state, expected", [
    ({}, [GUEST_FORBIDDEN]),  # Synapse reads {} and "" as no state: the preset would open guest access
    ("", [GUEST_FORBIDDEN]),
    (None, [GUEST_FORBIDDEN]),
    ((), [GUEST_FORBIDDEN]),  # ModuleApi.create_room callers may pass a tuple
    ([{"type": "m.room.guest_access", "state_key": "x", "content": {"guest_access": "can_join"}}],
     [{"type": "m.room.guest_access", "state_key": "x", "content": {"guest_access": "can_join"}}, GUEST_FORBIDDEN]),
    ([{"type": "m.room.guest_access", "content": "can_join"}],
     [{"type": "m.room.guest_access", "content": "can_join"}, GUEST_FORBIDDEN]),
    ([{"type": "m.room.guest_access", "content": {}}], [{"type": "m.room.guest_access", "content": {}}]),
    (["not an event", 5], ["not an event", 5, GUEST_FORBIDDEN]),
    ("not a list", "not a list"),  # Synapse refuses it itself
])
def test_on_create_room_closes_guest_access_whatever_the_initial_state(make_policy, initial_state, expected):
    policy = make_policy(FakeApi())
    body = {"preset": "private_chat", "initial_state": initial_state}
    run(policy.on_create_room(None, body, False))
    assert body["initial_state"] == expected
    assert "creation_content" not in body and "power_level_content_override" not in body


def test_a_denial_whose_record_is_not_durable_in_time_is_a_503_for_a_local_user(make_policy):
    """Never a 403 without its record, never an allow: a local client is told
    to try again; a remote server's event keeps its denial (no user sees a
    403 for it)."""
    from synapse.api.errors import SynapseError

    api = FakeApi(room_state={"!r": {POLICY_TYPE: {"school": "gym-nord", "kind": "course", "two_way": False},
                                     "m.room.power_levels": {"users": {}}}})
    policy = make_policy(api)
    policy._durable.stalled = True
    with pytest.raises(SynapseError) as raised:
        run(policy.check_login_for_spam("@nobody:school.test", None, None, [], None))
    error = raised.value
    assert error.code == 503 and error.headers == {"Retry-After": "5"}
    assert error.error_dict(None)["school_policy"] == {"rule": "not_on_roster", "audit": "not_durable"}
    with pytest.raises(SynapseError):
        run(policy.is_user_expired("@nobody:school.test"))
    remote = FakeEvent(sender="@rita:remote.test", room_id="!r", type="m.room.message", state_key=None,
                       content={"body": "hi"}, event_id="$e")
    code, fields = run(policy.check_event_for_spam(remote))
    assert fields["school_policy"] == {"rule": "one_way"}
    # The records stay queued and are written once the store writes again.
    records = policy._engine.audit_query(user="@nobody:school.test")["records"]
    assert [(r["rule"], r["callback"]) for r in records] == [
        ("not_on_roster", "is_user_expired"), ("not_on_roster", "check_login_for_spam")]


def test_store_calls_run_in_the_modules_own_thread_pool(make_policy):
    api = FakeApi()
    policy = make_policy(api)
    run(policy.on_user_registration("@pupil:school.test"))
    assert api.threads == [("school_policy_store", "reconcile_mark")]


def test_a_denial_past_the_flood_limit_is_synapses_own_429_with_the_rule(make_policy):
    """Past the flood limit a local user's denial is Synapse's 429
    M_LIMIT_EXCEEDED (Retry-After, retry_after_ms, the pause Synapse takes
    before answering), still naming the rule, and waits for no record; a
    directory search or a refused token answers as before."""
    from synapse.api.errors import LimitExceededError

    api = FakeApi()
    policy = make_policy(api, audit={"flood": {"denials_per_minute": 1, "burst": 1}})
    code, fields = run(policy.check_login_for_spam("@nobody:school.test", None, None, [], None))
    assert fields["school_policy"] == {"rule": "not_on_roster"}
    with pytest.raises(LimitExceededError) as raised:
        run(policy.check_login_for_spam("@nobody:school.test", None, None, [], None))
    error = raised.value
    # paused until the next token (here a minute away), at most 2 s
    assert error.code == 429 and error.pause == 2.0
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    body = error.error_dict(None)
    assert body["errcode"] == "M_LIMIT_EXCEEDED" and 0 < body["retry_after_ms"] <= 60001
    assert body["school_policy"] == {"rule": "not_on_roster", "limited": True}
    assert "roster" in body["error"]
    assert len(policy._durable.waits) == 1, "only the first denial waited for its record"
    # The bool callbacks answer as ever.
    assert run(policy.is_user_expired("@nobody:school.test")) is True
    # The summary is written when its span ends (here: the shutdown's flush).
    policy._flush_audit()
    records = policy._engine.audit_query(user="@nobody:school.test", rule="not_on_roster")["records"]
    assert sum(r["count"] for r in records if r["callback"] == "check_login_for_spam") == 2


def test_a_remote_servers_denial_past_the_flood_limit_is_a_refusal_in_the_body(make_policy):
    api = FakeApi()
    policy = make_policy(api, audit={"flood": {"denials_per_minute": 1, "burst": 1}})
    event = SimpleNamespace(sender="@rita:remote.test", room_id="!r", get_state_key=lambda: "@pupil:school.test")
    first = run(policy.federated_user_may_invite(event))
    code, fields = run(policy.federated_user_may_invite(event))
    assert first[1]["school_policy"]["rule"] == fields["school_policy"]["rule"]
    assert code == "M_LIMIT_EXCEEDED" and fields["retry_after_ms"] > 0
    assert fields["school_policy"]["limited"] is True


# ---- after the fact: the changes of rooms' state -----------------------------------------

def synapse_event(event_type, sender, content, state_key=None, stream_ordering=1, room_id="!course"):
    """A real Synapse event (its Rust event class), as Synapse's store gives it."""
    from synapse.api.room_versions import RoomVersions
    from synapse.events import make_event_from_dict

    fields = {"type": event_type, "sender": sender, "room_id": room_id, "content": content,
              "origin_server_ts": stream_ordering, "auth_events": [], "prev_events": [],
              "depth": stream_ordering, "hashes": {"sha256": "x"}, "signatures": {}}
    if state_key is not None:
        fields["state_key"] = state_key
    event = make_event_from_dict(fields, RoomVersions.V10)
    event.internal_metadata.stream_ordering = stream_ordering
    return event


def course_state(*members):
    """The current state of a one-way course the sync created, with `members`' member events."""
    state = {
        ("m.room.create", ""): synapse_event("m.room.create", "@sync:school.test", {"room_version": "10"}, ""),
        (POLICY_TYPE, ""): synapse_event(POLICY_TYPE, "@sync:school.test",
                                         {"school": "gym-nord", "kind": "course", "two_way": False}, ""),
        ("m.room.power_levels", ""): synapse_event(
            "m.room.power_levels", "@sync:school.test",
            {"users": {"@sync:school.test": 100, "@teacher:school.test": 50}, "events_default": 50}, ""),
    }
    for member in members:
        state[("m.room.member", member.get_state_key())] = member
    return state


def test_after_the_fact_runs_on_the_background_tasks_process_and_registers_no_on_new_event(make_policy):
    api = FakeApi()
    make_policy(api)
    assert api.looping["school_policy_after_the_fact"][1] == 500
    assert set(api.third_party_callbacks) == {"on_create_room"}


def test_a_local_message_asks_synapse_nothing(make_policy):
    api = FakeApi(events_state={"!course": course_state()})
    policy = make_policy(api)
    message = synapse_event("m.room.message", "@pupil:school.test", {"body": "hi"})
    run(policy._after_the_fact.after_event(message))
    assert api.lookups == [] and api.sent == []


def test_pupils_room_name_is_taken_back_and_their_profile_restored(make_policy):
    rename = synapse_event("m.room.member", "@pupil:school.test",
                           {"membership": "join", "displayname": "Herr X ist doof"}, "@pupil:school.test", 7)
    api = FakeApi(profiles={"pupil": ("Paula", None)}, events_state={"!course": course_state(rename)})
    policy = make_policy(api)
    run(policy._after_the_fact.after_event(rename))
    assert api.lookups == [("room_state", "!course"), ("profile", "pupil"), ("is_admin", "@pupil:school.test")]
    [redaction] = api.sent
    assert redaction["type"] == "m.room.redaction" and redaction["sender"] == "@sync:school.test"
    assert redaction["content"]["redacts"] == rename.event_id == redaction["redacts"]
    assert api.memberships == [("@pupil:school.test", "@pupil:school.test", "!course", "join")]
    records = policy._engine.audit_query(user="@pupil:school.test")["records"]
    assert [(r["rule"], r["callback"]) for r in records] == [("one_way", "after_the_fact")]
    # The rejoin carries the global profile: nothing more to take back.
    restored = synapse_event("m.room.member", "@pupil:school.test", {"membership": "join", "displayname": "Paula"},
                             "@pupil:school.test", 8)
    api.events_state["!course"] = course_state(restored)
    run(policy._after_the_fact.after_event(restored))
    assert len(api.sent) == 1


def test_report_only_school_audits_member_text_and_takes_nothing_back(make_policy):
    leave = synapse_event("m.room.member", "@pupil:school.test", {"membership": "leave", "reason": "bye"},
                          "@pupil:school.test")
    api = FakeApi(events_state={"!course": course_state(leave)})
    policy = make_policy(api, schools={"gym-nord": {"messenger": True, "enforce": False}})
    run(policy._after_the_fact.after_event(leave))
    assert api.sent == [] and api.memberships == []
    records = policy._engine.audit_query(user="@pupil:school.test")["records"]
    assert [(r["rule"], r["enforced"]) for r in records] == [("one_way", False)]


def test_a_third_invite_into_a_direct_chat_is_withdrawn_by_its_inviter(make_policy):
    def member(user, membership, order):
        return synapse_event("m.room.member", "@pupil:school.test" if user != "@pupil:school.test" else user,
                             {"membership": membership}, user, order, room_id="!dm")

    create = synapse_event("m.room.create", "@pupil:school.test", {"room_version": "12"}, "", 1, room_id="!dm")
    first, second = member("@teacher:school.test", "invite", 3), member("@other:school.test", "invite", 4)
    state = {("m.room.create", ""): create, ("m.room.member", "@pupil:school.test"): member("@pupil:school.test", "join", 2),
             ("m.room.member", "@teacher:school.test"): first, ("m.room.member", "@other:school.test"): second}
    api = FakeApi(events_state={"!dm": state})
    policy = make_policy(api)
    run(policy._after_the_fact.after_event(first))
    assert api.memberships == []
    run(policy._after_the_fact.after_event(second))
    assert api.memberships == [("@pupil:school.test", "@other:school.test", "!dm", "leave")]


def test_a_service_users_upgrade_carries_the_policy_into_the_new_room(make_policy):
    tombstone = synapse_event("m.room.tombstone", "@sync:school.test",
                              {"body": "moved", "replacement_room": "!new"}, "")
    api = FakeApi(events_state={"!course": course_state()})
    policy = make_policy(api)
    run(policy._after_the_fact.after_event(tombstone))
    assert api.sent == [{"type": POLICY_TYPE, "room_id": "!new", "sender": "@sync:school.test", "state_key": "",
                         "content": {"school": "gym-nord", "kind": "course", "two_way": False}}]


def test_the_poll_follows_the_state_delta_stream_from_start_up_on(make_policy):
    before = synapse_event("m.room.member", "@pupil:school.test", {"membership": "leave", "reason": "old"},
                           "@pupil:school.test", 1)
    after = [synapse_event("m.room.member", "@pupil:school.test", {"membership": "leave", "reason": f"new {i}"},
                           "@pupil:school.test", 2 + i) for i in range(3)]
    state = course_state()
    for i, event in enumerate([before, *after]):
        state[("m.room.member", f"@x{i}:school.test")] = event  # the fake store finds events in the state
    api = FakeApi(events_state={"!course": state})
    policy = make_policy(api)
    delta = lambda stream_id, event: SimpleNamespace(stream_id=stream_id, room_id="!course",  # noqa: E731
                                                    event_type="m.room.member", state_key=event.get_state_key(),
                                                    event_id=event.event_id, prev_event_id=None)
    api.deltas = [delta(1, before)]
    run(policy._after_the_fact.poll())  # start-up: from here on
    api.deltas += [delta(2 + i, event) for i, event in enumerate(after)] + [
        SimpleNamespace(stream_id=5, room_id="!course", event_type="m.room.topic", state_key="", event_id=None,
                        prev_event_id="$gone")]
    run(policy._after_the_fact.poll())  # in pages of two
    assert [event["redacts"] for event in api.sent] == [event.event_id for event in after]
    run(policy._after_the_fact.poll())
    assert len(api.sent) == 3


def test_upgrade_asks_for_the_predecessors_policy(make_policy):
    api = FakeApi(room_state={"!old": {POLICY_TYPE: {"school": "gym-nord", "kind": "course"}}})
    policy = make_policy(api)
    body = {"creation_content": {"room_version": "12", "predecessor": {"room_id": "!old"}},
            "initial_state": [{"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}]}
    code, fields = run(policy.user_may_create_room("@teacher:school.test", body))
    assert fields["school_policy"] == {"rule": "policy_event_locked"}
    assert ("room_state", "!old") in api.lookups
    # Without guest access in the copied state, even the service user is refused.
    body["initial_state"] = []
    code, fields = run(policy.user_may_create_room("@sync:school.test", body))
    assert fields["school_policy"] == {"rule": "guest_access_forbidden"}
