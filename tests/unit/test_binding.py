"""The CPython binding: multi-phase init, reference counting, leaks, and
argument handling. No Synapse needed."""
import collections.abc
import gc
import importlib.util
import json
import sys
import tracemalloc

import pytest

from synapse_school_policy import _core

SERVER = "school.test"


class FrozenMapping(collections.abc.Mapping):
    """Stands in for Synapse's read-only event.content, which is no dict."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


@pytest.fixture
def engine(tmp_path):
    config = {
        "data_dir": str(tmp_path / "store"),
        "service_users": ["@sync:school.test"],
        "schools": {"gym-nord": {"messenger": True}, "gs-sued": {}},
    }
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    engine.roster_put("@t:school.test", json.dumps({"schools": [{"school": "gym-nord", "role": "teacher"}]}))
    engine.roster_put("@off:school.test", json.dumps({"schools": [{"school": "gs-sued", "role": "student"}]}))
    return engine


CREATE = FrozenMapping({"room_version": "10"})


def decide(engine, actor, room=None, room_known=False, admin=_core.FACT_UNKNOWN, cb=_core.CB_CHECK_EVENT_FOR_SPAM):
    """room is the policy content of a room the service user created and set
    the policy of; room_known False = not looked up yet."""
    facts = (room, "@sync:school.test", None, CREATE, "@sync:school.test") if room_known else None
    return engine.decide(cb, actor, None, "!r:school.test", "m.room.message", None, None, facts, admin, None, None,
                         None, None)


def test_module_can_be_loaded_twice_with_separate_state():
    spec = importlib.util.find_spec("synapse_school_policy._core")
    first = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(first)
    second = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(second)
    assert first.Engine is not second.Engine
    assert first.InputError is not second.InputError
    assert first.RULE_IDS == second.RULE_IDS == _core.RULE_IDS


def test_rule_ids_are_the_documented_ones():
    with open("docs/rules.md", encoding="utf-8") as f:
        documented = f.read()
    for rule in _core.RULE_IDS:
        assert f"`{rule}`" in documented, rule


def test_decide_asks_for_the_room_then_denies_in_a_frozen_room(engine):
    assert decide(engine, "@t:school.test") == _core.NEED_ROOM
    room = FrozenMapping({"school": "gs-sued", "kind": "course", "two_way": False})
    assert decide(engine, "@t:school.test", room, True) == _core.NEED_ADMIN
    rule, message, enforced, school = decide(engine, "@t:school.test", room, True, _core.FACT_NO)
    assert (rule, enforced, school) == ("room_school_not_enabled", True, "gs-sued")
    assert decide(engine, "@t:school.test", room, True, _core.FACT_YES) is None


def test_empty_policy_content_means_unmanaged(engine):
    assert decide(engine, "@t:school.test", FrozenMapping({}), True) is None


def test_policy_values_of_the_wrong_type_fail_closed(engine):
    room = FrozenMapping({"school": 42, "kind": ["course"], "two_way": "yes"})
    assert decide(engine, "@t:school.test", room, True, _core.FACT_NO)[0] == "room_school_not_enabled"


def test_bad_arguments_raise_instead_of_crashing(engine):
    cb, actor = _core.CB_CHECK_EVENT_FOR_SPAM, "@t:school.test"

    def call(*args):
        return engine.decide(*args)

    with pytest.raises(TypeError):
        call(cb, None, None, None, None, None, None, None, 0, None, None, None, None)
    with pytest.raises(ValueError):
        call(99, actor, None, None, None, None, None, None, 0, None, None, None, None)
    with pytest.raises(TypeError):  # room is no tuple
        call(cb, actor, None, "!r", None, None, None, 5, 0, None, None, None, None)
    with pytest.raises(TypeError):  # policy content is no mapping
        call(cb, actor, None, "!r", None, None, None, (5, None, None, None, None), 0, None, None, None, None)
    with pytest.raises(TypeError):  # power levels are no mapping
        call(cb, actor, None, "!r", None, None, None, (None, None, 5, None, None), 0, None, None, None, None)
    with pytest.raises((TypeError, ValueError)):  # a room tuple of the wrong length
        call(cb, actor, None, "!r", None, None, None, (None, None, None), 0, None, None, None, None)
    with pytest.raises(TypeError):  # membership is no str
        call(_core.CB_USER_MAY_JOIN_ROOM, actor, None, "!r", None, None, None, None, 0, True, None, 5, None)
    with pytest.raises(TypeError):  # member count is no int
        call(_core.CB_USER_MAY_INVITE, actor, "@x:school.test", "!r", None, None, None, None, 0, None, None, None, "2")
    with pytest.raises(TypeError):
        call(cb, actor)
    with pytest.raises(_core.InputError):
        engine.roster_put("@t:school.test", b"{}")
    with pytest.raises(_core.JsonSyntaxError):
        engine.roster_put("@t:school.test", b"{")
    with pytest.raises(_core.InputError):
        _core.Engine("{}", SERVER, "main")  # no data_dir


def test_decide_does_not_leak_references(engine):
    actor = "@t:school.test"
    room = FrozenMapping({"school": "gs-sued", "kind": "course"})
    levels = {"users": {actor: 50}, "users_default": 0}  # the actor's level: looked up by the actor's str
    before = (sys.getrefcount(actor), sys.getrefcount(room), sys.getrefcount(None))
    for _ in range(10_000):
        decide(engine, actor, room, True, _core.FACT_NO)
        decide(engine, actor)
        engine.decide(_core.CB_CHECK_EVENT_FOR_SPAM, actor, None, "!r:school.test", "m.room.message", None, None,
                      (room, "@sync:school.test", levels, CREATE, "@sync:school.test"), _core.FACT_NO, None, None,
                      None, None)
    after = (sys.getrefcount(actor), sys.getrefcount(room), sys.getrefcount(None))
    assert after[:2] == before[:2]
    assert abs(after[2] - before[2]) < 10


def test_a_denial_names_its_audit_record_and_can_wait_for_it(engine):
    room = FrozenMapping({"school": "gs-sued", "kind": "course", "two_way": False})
    first = decide(engine, "@t:school.test", room, True, _core.FACT_NO)
    rule, _message, enforced, school = first  # still a 4-tuple
    assert isinstance(first, _core.Denial) and first == (first.rule, first.message, first.enforced, first.school)
    assert (first.rule, first.enforced, first.school) == ("room_school_not_enabled", True, "gs-sued")
    second = decide(engine, "@off:school.test", None, False, _core.FACT_NO, cb=_core.CB_CHECK_LOGIN_FOR_SPAM)
    assert first.audit_id > 0 and second.audit_id == first.audit_id + 1
    assert first.retry_after_ms == 0 and second.retry_after_ms == 0
    assert engine.wait_durable(second.audit_id, 5000) is True
    assert engine.wait_durable(0, 0) is True  # nothing queued: nothing to wait for
    # Written means readable: the records are in the audit with those ids.
    records = engine.audit_query()["records"]
    assert [r["id"] for r in records[:2]] == [second.audit_id, first.audit_id]
    with pytest.raises(TypeError):
        engine.wait_durable("1", 10)


@pytest.mark.parametrize("kind", [dict, FrozenMapping, type("DictSubclass", (dict,), {})])
def test_contents_decide_alike_as_dict_mapping_or_dict_subclass(tmp_path, kind):
    """decide() reads dicts with one probe and other Mappings through
    __getitem__: the answers are the same."""
    config = {"data_dir": str(tmp_path / "store"), "service_users": ["@sync:school.test"],
              "schools": {"gym-nord": {"messenger": True}}, "one_way_allowed_events": ["m.reaction"]}
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    engine.roster_put("@t:school.test", json.dumps({"schools": [{"school": "gym-nord", "role": "teacher"}]}))
    engine.roster_put("@p:school.test", json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    one_way = kind({"school": "gym-nord", "kind": "course", "two_way": False})
    levels = kind({"users": kind({"@t:school.test": 50}), "users_default": 0, "events_default": 50})

    def send(actor, event_type="m.room.message", state_key=None, content=None):
        facts = (one_way, "@sync:school.test", levels, CREATE, "@sync:school.test")
        return engine.decide(_core.CB_CHECK_EVENT_FOR_SPAM, actor, None, "!r:school.test", event_type, state_key,
                             content, facts, _core.FACT_NO, None, None, None, None)

    assert send("@t:school.test") is None  # a moderator by the users map
    assert send("@p:school.test")[0] == "one_way"
    reaction = kind({"m.relates_to": kind({"rel_type": "m.annotation", "event_id": "$e", "key": "👍"})})
    assert send("@p:school.test", "m.reaction", None, reaction) is None
    text = kind({"m.relates_to": kind({"rel_type": "m.annotation", "event_id": "$e", "key": "ja"})})
    assert send("@p:school.test", "m.reaction", None, text)[0] == "one_way"
    lowered = kind({"users": kind({"@t:school.test": 50}), "users_default": 0, "events_default": 0})
    assert send("@t:school.test", "m.room.power_levels", "", lowered)[0] == "power_levels_locked"


class Exploding(collections.abc.Mapping):
    """A Mapping whose every read raises, nested in a dict content."""

    def __getitem__(self, key):
        raise RuntimeError("unreadable")

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


def test_power_levels_and_create_content_are_read_when_a_rule_needs_them(engine):
    """A dict room's power levels and create content are read by the engine
    on first use: a message in a two-way room reads neither, a message in a
    one-way room reads the actor's level. An error while reading them is
    raised, and the decision it interrupted queues no audit record."""
    two_way = {"school": "gym-nord", "kind": "course", "two_way": True}
    one_way = {"school": "gym-nord", "kind": "course", "two_way": False}
    unreadable = {"users": Exploding(), "users_default": 0}
    create = {"room_version": "10"}

    def send(policy, levels, actor="@t:school.test", create_content=create):
        facts = (policy, "@sync:school.test", levels, create_content, "@sync:school.test")
        return engine.decide(_core.CB_CHECK_EVENT_FOR_SPAM, actor, None, "!r:school.test", "m.room.message", None,
                             None, facts, _core.FACT_NO, None, None, None, None)

    assert send(two_way, unreadable) is None  # the rules of a two-way room read no level
    queued = engine.audit_stats()["queued"]
    with pytest.raises(RuntimeError, match="unreadable"):
        send(one_way, unreadable)  # the actor's level is read, and reading it fails
    assert engine.audit_stats()["queued"] == queued  # nothing audited for the void decision
    # Read in full when needed: the teacher is a moderator by the users map.
    assert send(one_way, {"users": {"@t:school.test": 50}, "users_default": 0}) is None
    assert send(one_way, {"users": {}, "users_default": 0})[0] == "one_way"
    # An additional creator has power in room version 12, read from the create content.
    v12 = {"room_version": "12", "additional_creators": ["@t:school.test"]}
    assert send(one_way, {"users": {}, "users_default": 0}, create_content=v12) is None
    assert send(one_way, {"users": {}, "users_default": 0}, create_content={"room_version": "10",
                "additional_creators": ["@t:school.test"]})[0] == "one_way"
    # Not dicts: read before deciding, as before.
    with pytest.raises(RuntimeError, match="unreadable"):
        send(two_way, FrozenMapping({"users": Exploding(), "users_default": 0}))
    with pytest.raises(TypeError):  # no Mapping: refused before deciding, needed or not
        send(two_way, {"users": {}}, create_content=5)


def test_repeated_calls_do_not_grow_memory(engine):
    room = FrozenMapping({"school": "gym-nord", "kind": "course"})
    body = json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]})

    def churn():
        for i in range(2_000):
            decide(engine, "@t:school.test", room, True)
            engine.roster_get("@t:school.test")
            try:
                engine.roster_put("@x:school.test", b'{"schools": 1}')
            except _core.InputError:
                pass
        engine.roster_put("@p:school.test", body)

    churn()
    gc.collect()
    objects_before = len(gc.get_objects())
    tracemalloc.start()
    snapshot_before = tracemalloc.take_snapshot()
    churn()
    gc.collect()
    snapshot_after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(stat.size_diff for stat in snapshot_after.compare_to(snapshot_before, "filename"))
    assert growth < 64 * 1024, growth
    assert len(gc.get_objects()) - objects_before < 100


def test_engine_can_be_collected_and_flushes_its_audit(tmp_path):
    config = json.dumps({"data_dir": str(tmp_path / "store"), "schools": {}})
    engine = _core.Engine(config, SERVER, "w1")
    engine.open()
    assert decide(engine, "@nobody:school.test", admin=_core.FACT_NO, cb=_core.CB_CHECK_LOGIN_FOR_SPAM)[0] == "not_on_roster"
    del engine
    gc.collect()
    reopened = _core.Engine(config, SERVER, "w1")
    reopened.open()
    records = reopened.audit_query(limit=10)["records"]
    assert [(r["rule"], r["worker"]) for r in records] == [("not_on_roster", "w1")]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e.roster_put("@a\0:school.test", b'{"schools": []}'), "user_id: contains a NUL character"),
        (lambda e: e.roster_put("@a\ud800:school.test", b'{"schools": []}'), "user_id: not valid Unicode"),
        (lambda e: e.roster_get("@a:school.test\0"), "user_id: contains a NUL character"),
        (lambda e: e.roster_delete("\0"), "user_id: contains a NUL character"),
        (lambda e: e.roster_put("@eve:evil.test", b'{"schools": []}'), "user_id: @eve:evil.test is a user of another server"),
        (lambda e: e.audit_query(since=2**63), "since: expected an integer from 0 to 9223372036854775807"),
        (lambda e: e.audit_query(until=-1), "until: expected an integer from 0"),
        (lambda e: e.audit_query(before=10**30), "from: expected an integer from 0"),
        (lambda e: e.audit_query(limit=2**64), "limit: expected an integer from 0"),
        (lambda e: e.audit_query(limit=0), "limit: expected an integer from 1 to 1000"),
        (lambda e: e.audit_query(user="@a\0"), "user: contains a NUL character"),
        (lambda e: e.audit_query(school="gym\0"), "school: contains a NUL character"),
        (lambda e: e.audit_query(rule="\0"), "rule: contains a NUL character"),
        (lambda e: e.audit_query(kind="actions"), "kind: expected denial or action"),
        (lambda e: e.audit_action({"action": "member_removed", "why": "x"}), "why: unknown key"),
        (lambda e: e.audit_action({"reason": "x"}), "action: expected a short id"),
        (lambda e: e.audit_action({"action": "Removed!"}), "action: expected a short id"),
        (lambda e: e.audit_action({"action": "member_removed", "target": "bob"}),
         "target: expected a Matrix user id"),
        (lambda e: e.audit_action({"action": "member_removed", "reason": "x" * 513}),
         "reason: expected 1 to 512 bytes"),
        (lambda e: e.audit_action({"action": "member_removed", "group": "g\0"}),
         "group: contains a NUL character"),
    ],
)
def test_roster_and_audit_arguments_the_engine_cannot_take_are_input_errors(engine, call, message):
    # InputError is what the admin API answers with 400; a ValueError or
    # OverflowError would be a 500.
    with pytest.raises(_core.InputError) as info:
        call(engine)
    assert str(info.value).startswith(message)


def test_audit_action_queues_a_record_of_what_the_module_did(engine):
    denial = decide(engine, "@off:school.test", None, False, _core.FACT_NO, cb=_core.CB_CHECK_LOGIN_FOR_SPAM)
    action_id = engine.audit_action({
        "action": "member_removed", "target": "@off:school.test", "room_id": "!mathe:school.test",
        "group": "course-5f0c7a3f", "school": "gs-sued", "reason": "not listed in version 18",
        "actor": None,
    })
    assert action_id == denial.audit_id + 1
    assert engine.wait_durable(action_id, 5000) is True
    action, single = engine.audit_query()["records"]
    assert action == {
        "id": action_id, "ts": action["ts"], "kind": "action", "count": 1, "action": "member_removed",
        "actor": "@school-policy:school.test", "target": "@off:school.test",
        "room_id": "!mathe:school.test", "event_type": None, "group": "course-5f0c7a3f",
        "school": "gs-sued", "reason": "not listed in version 18", "worker": "main",
    }
    assert (single["kind"], single["count"], single["rule"]) == ("denial", 1, "school_not_enabled")
    assert "last_ts" not in single and "action" not in single
    assert [r["id"] for r in engine.audit_query(kind="action")["records"]] == [action_id]
    assert [r["id"] for r in engine.audit_query(kind="denial")["records"]] == [denial.audit_id]
    with pytest.raises(TypeError):
        engine.audit_action([("action", "member_removed")])
    with pytest.raises(TypeError):
        engine.audit_action({"action": 1})


def test_a_denial_past_the_flood_limit_has_no_record_and_says_when_to_retry(tmp_path):
    config = {"data_dir": str(tmp_path / "store"), "schools": {"gym-nord": {"messenger": True}},
              "audit": {"flood": {"denials_per_minute": 6, "burst": 2, "summary_seconds": 10}}}
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    denials = [decide(engine, "@nobody:school.test", None, False, _core.FACT_NO, cb=_core.CB_CHECK_LOGIN_FOR_SPAM)
               for _ in range(5)]
    assert all(d.rule == "not_on_roster" and d.enforced for d in denials)
    assert [d.audit_id > 0 for d in denials] == [True, True, False, False, False]
    assert all(0 < d.retry_after_ms <= 10001 for d in denials[2:])
    assert engine.flood_stats() == {"limited": 3, "summaries": 0, "evicted": 0, "open_summaries": 1}
    assert engine.audit_close_summaries() == 0  # its 10 s have not passed
    assert engine.audit_close_summaries(all=True) == 1
    engine.audit_flush()
    assert [r["count"] for r in engine.audit_query()["records"]] == [3, 1, 1]


def test_audit_query_takes_the_largest_int64(engine):
    assert engine.audit_query(since=0, until=2**63 - 1, before=2**63 - 1, limit=1000)["records"] == []


def test_roster_check_is_the_admin_apis_validator():
    body = {"users": [{"user_id": "@a:school.test", "schools": [{"school": "gym-nord", "role": "teacher"}]}]}
    assert _core.roster_check(json.dumps(body), SERVER) == body["users"]
    body["users"].append(body["users"][0])
    with pytest.raises(_core.InputError, match=r"^users\[1\]\.user_id: duplicate of users\[0\]$"):
        _core.roster_check(json.dumps(body), SERVER)
    with pytest.raises(_core.InputError, match="another server"):
        _core.roster_check(json.dumps({"users": [body["users"][0]]}), "other.test")
    with pytest.raises(_core.JsonSyntaxError):
        _core.roster_check(b"{\xff", SERVER)


def test_structured_results_are_python_objects(engine):
    """One convention across the binding: no JSON text for the caller to parse."""
    assert engine.roster_get("@t:school.test") == {"user_id": "@t:school.test",
                                                   "schools": [{"school": "gym-nord", "role": "teacher"}]}
    assert isinstance(engine.roster_put("@n:school.test", b'{"schools": []}'), dict)
    assert engine.audit_query(limit=1) == {"records": [], "next": None}
    assert isinstance(engine.reconcile_plan("gym-nord", "@t:school.test")["rooms"], list)
    assert engine.roster_feed_status() is None
    assert engine.reconcile_status()["schools"]["gym-nord"]["messenger"] is True
    assert engine.audit_view(json.dumps({"op": "rules", "reader": "@sync:school.test", "server_admin": False,
                                         "query": {}}))["status"] == 200
    assert isinstance(engine.reconcile_due(0, 10), list)
    from synapse_school_policy.homeserver_check import settings_from_yaml

    settings = settings_from_yaml({"allow_guest_access": True, "limit_profile_requests_to_users_who_share_rooms": True,
                                   "require_auth_for_profile_requests": True})
    result = _core.check_homeserver(json.dumps(settings))
    finding = result["findings"][0]
    assert finding["setting"] == "allow_guest_access" and finding["verdict"] == "refuse"
    assert isinstance(finding["problem"], str) and isinstance(result["hardened_block"], str)
    status = engine.store_status()
    assert status["postgres"] is False and status["last_error"] == "" and isinstance(status["connects"], int)
    assert set(engine.audit_stats()) == {"queued", "written", "queue_depth", "write_errors"}
    assert engine.power_levels_update({"school": "gym-nord", "kind": "course"}, {"events_default": 50}) == {
        "events": {"m.room.redaction": 0}}


def test_room_shape_takes_any_json_value_and_refuses_what_is_no_json(engine):
    guest = {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}
    assert engine.room_shape({}) == [{"op": "add", "path": "/initial_state", "value": [guest]}]
    assert engine.room_shape([]) == [] and engine.room_shape(None) == [] and engine.room_shape("x") == []
    # Read-only Mappings, tuples, lone surrogates, NUL characters, ints beyond int64, nan: read as JSON.
    odd = FrozenMapping({"initial_state": ({"type": "m.room.guest_access", "state_key": "\ud800", "content": {}},
                                           {"type": "m.room.guest_access\0", "content": {}}),
                         "x": [2**80, float("nan"), {1: "one"}]})
    assert engine.room_shape(odd) == [{"op": "add", "path": "/initial_state/-", "value": guest}]
    with pytest.raises(TypeError, match="is not JSON"):
        engine.room_shape({"initial_state": {1, 2}})
    loop: dict = {}
    loop["loop"] = loop
    with pytest.raises(RecursionError):
        engine.room_shape(loop)


def _rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_room_shape_and_json_results_do_not_leak(engine):
    """Python references (the argument, the results) and the C side's JSON."""
    body = {"initial_state": [{"type": "org.synapse_school_policy.room", "content": {"school": "gym-nord"}},
                              {"type": "m.room.power_levels", "content": {"events": [1]}}],
            "creation_content": {"m.federate": True}, "power_level_content_override": {"x": "\ud800"}}

    def churn(n):
        for _ in range(n):
            engine.room_shape(body)
            engine.reconcile_status()
            engine.roster_get("@t:school.test")

    churn(2_000)
    gc.collect()
    refs, objects, rss = sys.getrefcount(body), len(gc.get_objects()), _rss_bytes()
    churn(20_000)
    gc.collect()
    assert sys.getrefcount(body) == refs
    assert len(gc.get_objects()) - objects < 100
    assert _rss_bytes() - rss < 4 * 1024 * 1024, "60,000 calls grew the process by 4 MB or more"


def test_a_worker_process_cannot_open_the_embedded_store(tmp_path):
    """The embedded store belongs to one process: the engine itself refuses
    a worker's open, naming the key to set (not the adapter)."""
    config = {"data_dir": str(tmp_path / "store"), "schools": {}}
    engine = _core.Engine(json.dumps(config), SERVER, "worker1")
    with pytest.raises(_core.InputError, match=r"database: required when Synapse runs with workers "
                                               r"\(this process is the worker 'worker1'\)"):
        engine.open(worker=True)
    assert not (tmp_path / "store").exists(), "nothing was created in data_dir"
    _core.Engine(json.dumps(config), SERVER, "main").open()  # one process: opens


# ---- after_event: Synapse's events, as the after-the-fact adapter hands them over ----------

class _Metadata:
    def __init__(self, stream_ordering):
        self.stream_ordering = stream_ordering

    def is_outlier(self):
        return False


class _Event:
    """The attributes after_event reads of a Synapse event (its Rust Event
    in Synapse: tests/unit/test_adapter.py uses those)."""

    def __init__(self, event_type, sender, content, state_key=None, event_id="$e", room_id="!r:school.test"):
        self.type, self.sender, self.content, self.event_id, self.room_id = event_type, sender, content, event_id, room_id
        self._state_key = state_key
        self.internal_metadata = _Metadata(3)

    def is_state(self):
        return self._state_key is not None

    def get_state_key(self):
        return self._state_key


def test_after_event_asks_for_each_fact_and_does_not_leak(engine):
    engine.roster_put("@p:school.test", json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    sync = "@sync:school.test"
    policy = FrozenMapping({"school": "gym-nord", "kind": "course", "two_way": False})
    state = {("m.room.create", ""): _Event("m.room.create", sync, {"room_version": "10"}, ""),
             ("org.synapse_school_policy.room", ""): _Event("org.synapse_school_policy.room", sync, policy, "")}
    profile = ("Paula", None)
    message = _Event("m.room.message", "@p:school.test", FrozenMapping({"body": "hi"}))
    assert engine.after_event(message) is None
    before = (sys.getrefcount(message), sys.getrefcount(state), sys.getrefcount(policy), sys.getrefcount(profile))
    for i in range(5_000):
        assert engine.after_event(message) is None
        rename = _Event("m.room.member", "@p:school.test",
                        FrozenMapping({"membership": "join", "displayname": "Paula"}), "@p:school.test", f"$r{i}")
        assert engine.after_event(rename) == _core.NEED_ROOM
        assert engine.after_event(rename, state) == _core.NEED_PROFILE
        assert engine.after_event(rename, state, None, profile) is None
    after = (sys.getrefcount(message), sys.getrefcount(state), sys.getrefcount(policy), sys.getrefcount(profile))
    assert after == before
    leave = _Event("m.room.member", "@p:school.test", {"membership": "leave", "reason": "bye"}, "@p:school.test", "$l")
    assert engine.after_event(leave, state) == _core.NEED_ADMIN
    action = engine.after_event(leave, state, None, None, False)
    assert (action.kind, action.rule, action.event_id, action.user_id, action.state) == (
        "redact", "one_way", "$l", None, ())
    assert engine.after_event(leave, state, None, None, False) is None  # acted on once
    with pytest.raises(TypeError):
        engine.after_event(leave, state, None, "not a profile")
    with pytest.raises(TypeError):
        engine.after_event()


def test_decide_refuses_the_after_the_fact_callback(engine):
    with pytest.raises(ValueError, match="after_event"):
        engine.decide(_core.CB_AFTER_THE_FACT, "@p:school.test", None, None, None, None, None, None, _core.FACT_NO,
                      None, None, None, None)
