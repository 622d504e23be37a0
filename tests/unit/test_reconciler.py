"""The reconciler (stage 2) against a real engine and a fake Synapse that
keeps rooms in memory (tests/rules/test_special_rooms.py runs the real
Synapse). It must act only on differences, find a room again instead of
creating a second one, back off when Synapse refuses, and pace its actions."""
import asyncio
import itertools
import json
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from support import uid
from synapse_school_policy import _core
from synapse_school_policy.reconciler import Reconciler

SERVER = "school.test"
OWNER = f"@school-policy:{SERVER}"
POLICY = "org.synapse_school_policy.room"


def reconcile_failures() -> float:
    return REGISTRY.get_sample_value("synapse_school_policy_reconcile_failures_total") or 0.0


class FakeSynapse:
    """Rooms as dicts of state; every action is recorded."""

    def __init__(self, users=()):
        self.users = set(users)
        self.rooms: dict[str, dict] = {}
        self.actions: list[tuple] = []
        self.sleeps: list[float] = []
        self.refuse: set[str] = set()
        self.configs: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self.admins: set[str] = set()
        self._store = SimpleNamespace(get_rooms_for_user=self._rooms_for_user)
        # synapse_compat.update_membership: the room member handler, without rate limits.
        self._hs = SimpleNamespace(get_room_member_handler=lambda: SimpleNamespace(
            update_membership=self._update_membership))

    async def _update_membership(self, requester, target, room_id, action, content, ratelimit):
        assert ratelimit is False
        await self.update_room_membership(requester.user.to_string(), target.to_string(), room_id, action)

    async def is_user_admin(self, user_id):
        return user_id in self.admins

    async def _rooms_for_user(self, user_id):
        return frozenset(r for r, state in self.rooms.items()
                         if state.get(("m.room.member", user_id), {}).get("membership") == "join")

    async def check_user_exists(self, user_id):
        return user_id if user_id in self.users else None

    async def register_user(self, localpart, displayname=None):
        self.users.add(f"@{localpart}:{SERVER}")
        return f"@{localpart}:{SERVER}"

    async def defer_to_thread(self, fn, *args):
        return fn(*args)

    async def sleep(self, seconds):
        self.sleeps.append(seconds)

    def add_room(self, creator, policy):
        room_id = f"!r{next(self._ids)}:{SERVER}"
        self.rooms[room_id] = {("m.room.member", creator): {"membership": "join"},
                               (POLICY, ""): dict(policy), ("m.room.power_levels", ""): {"users": {}}}
        return room_id

    async def create_room(self, user_id, config, ratelimit=True):
        assert ratelimit is False
        self.actions.append(("create", config["initial_state"][0]["content"]["kind"]))
        room_id = self.add_room(user_id, config["initial_state"][0]["content"])
        for event in config["initial_state"][1:]:
            self.rooms[room_id][(event["type"], event["state_key"])] = dict(event["content"])
        if "name" in config:
            self.rooms[room_id][("m.room.name", "")] = {"name": config["name"]}
        if "topic" in config:
            self.rooms[room_id][("m.room.topic", "")] = {"topic": config["topic"]}
        self.configs[room_id] = config
        return room_id, None

    async def get_room_state(self, room_id, event_filter):
        state = self.rooms[room_id]
        found = {}
        for event_type, state_key in event_filter:
            for key, content in state.items():
                if key[0] == event_type and (state_key is None or key[1] == state_key):
                    found[key] = SimpleNamespace(content=content)
        return found

    async def update_room_membership(self, sender, target, room_id, membership):
        if target in self.refuse:
            raise RuntimeError(f"refused {membership} of {target}")
        self.actions.append((membership, target, room_id))
        self.rooms[room_id][("m.room.member", target)] = {"membership": membership}

    async def create_and_send_event_into_room(self, event):
        kind = "power_levels" if event["type"] == "m.room.power_levels" else event["type"]
        self.actions.append((kind, event["room_id"]))
        self.rooms[event["room_id"]][(event["type"], event["state_key"])] = event["content"]


async def gather(func, items, limit):
    """asyncio stand-in for Synapse's concurrently_execute."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item):
        async with semaphore:
            await func(item)

    await asyncio.gather(*(one(item) for item in items))


def reconciler(synapse, engine):
    # settle_ms=0: the tests take marks at once (the engine here applies a
    # change before the test's next line).
    return Reconciler(synapse, engine, concurrently=gather, settle_ms=0)


def engine_for(tmp_path, announcement=True, rate=1000):
    config = {"data_dir": str(tmp_path), "reconciler": {"actions_per_second": rate},
              "schools": {"gym-nord": {"messenger": True, "announcement_room": announcement}}}
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    engine.roster_upsert(json.dumps({"users": [
        {"user_id": uid("tina"), "schools": [{"school": "gym-nord", "role": "teacher"}]},
        {"user_id": uid("paul"), "schools": [{"school": "gym-nord", "role": "student"}]},
    ]}).encode())
    return engine


def members(synapse, room_id):
    return {key[1] for key, content in synapse.rooms[room_id].items()
            if key[0] == "m.room.member" and content["membership"] == "join"}


def status(engine):
    return engine.reconcile_status()["schools"]["gym-nord"]


def test_rooms_are_created_once_and_filled_and_a_second_round_does_nothing(tmp_path):
    engine = engine_for(tmp_path)
    synapse = FakeSynapse(users={uid("tina"), uid("paul")})
    rec = reconciler(synapse, engine)
    asyncio.run(rec.run_once())
    s = status(engine)
    assert s["pending"] == 0 and s["last_error"] is None
    assert members(synapse, s["teachers_room"]) == {OWNER, uid("tina")}
    assert members(synapse, s["announcement_room"]) == {OWNER, uid("tina"), uid("paul")}
    assert synapse.rooms[s["announcement_room"]][("m.room.power_levels", "")]["users"] == {uid("tina"): 50}
    assert [a for a in synapse.actions if a[0] == "create"] == [("create", "teachers"), ("create", "announcement")]
    done = len(synapse.actions)
    engine.reconcile_mark("gym-nord", ["", uid("tina"), uid("paul")])
    asyncio.run(rec.run_once())
    assert len(synapse.actions) == done, synapse.actions[done:]
    assert status(engine)["pending"] == 0


def test_a_room_created_but_not_recorded_before_a_crash_is_found_again(tmp_path):
    engine = engine_for(tmp_path, announcement=False)
    synapse = FakeSynapse(users={uid("tina"), uid("paul")})
    orphan = synapse.add_room(OWNER, {"school": "gym-nord", "kind": "teachers", "two_way": True})
    asyncio.run(reconciler(synapse, engine).run_once())
    assert status(engine)["teachers_room"] == orphan
    assert not [a for a in synapse.actions if a[0] == "create"]
    assert members(synapse, orphan) == {OWNER, uid("tina")}


def test_a_refused_action_is_retried_with_backoff_and_reported(tmp_path):
    engine = engine_for(tmp_path, announcement=False)
    synapse = FakeSynapse(users={uid("tina"), uid("paul")})
    synapse.refuse.add(uid("tina"))
    rec = reconciler(synapse, engine)
    failures_before = reconcile_failures()
    asyncio.run(rec.run_once())
    s = status(engine)
    assert s["pending"] == 1
    # Counted for the ReconcileFailing alert (contrib/prometheus/alerts.yml).
    assert reconcile_failures() == failures_before + 1
    assert "refused invite of @tina:school.test" in s["last_error"]
    # Not due again before its backoff (1 s after the first failure).
    import time
    now_ms = int(time.time() * 1000)
    assert engine.reconcile_due(now_ms, 10) == []
    due = engine.reconcile_due(now_ms + 1500, 10)
    assert [(m["user_id"], m["attempts"]) for m in due] == [(uid("tina"), 1)]
    synapse.refuse.clear()
    engine.reconcile_mark("gym-nord", [uid("tina")])  # a new mark is due at once
    asyncio.run(rec.run_once())
    s = status(engine)
    assert s["pending"] == 0 and s["last_error"] is None
    assert members(synapse, s["teachers_room"]) == {OWNER, uid("tina")}


def test_users_without_an_account_are_skipped_until_they_register(tmp_path):
    engine = engine_for(tmp_path, announcement=False)
    synapse = FakeSynapse(users={uid("tina")})
    engine.roster_put(uid("late"), json.dumps({"schools": [{"school": "gym-nord", "role": "teacher"}]}).encode())
    asyncio.run(reconciler(synapse, engine).run_once())
    s = status(engine)
    assert s["pending"] == 0
    assert members(synapse, s["teachers_room"]) == {OWNER, uid("tina")}


def test_actions_are_paced_at_actions_per_second(tmp_path):
    engine = engine_for(tmp_path, rate=5)
    synapse = FakeSynapse(users={uid("tina"), uid("paul")})
    asyncio.run(reconciler(synapse, engine).run_once())
    # The fake sleep returns at once, so each wait is the full distance to
    # its slot: slot k is k/5 s after the first action.
    n_actions = len(synapse.actions)
    assert n_actions >= 8
    assert synapse.sleeps[-1] == pytest.approx((n_actions - 1) / 5, abs=0.15)


def test_power_levels_of_a_batch_go_out_as_one_event_per_room(tmp_path):
    engine = engine_for(tmp_path)
    teachers = [uid(f"t{i}") for i in range(5)]
    engine.roster_upsert(json.dumps({"users": [
        {"user_id": t, "schools": [{"school": "gym-nord", "role": "teacher"}]} for t in teachers]}).encode())
    synapse = FakeSynapse(users={uid("tina"), uid("paul"), *teachers})
    asyncio.run(reconciler(synapse, engine).run_once())
    s = status(engine)
    assert synapse.rooms[s["announcement_room"]][("m.room.power_levels", "")]["users"] == {
        t: 50 for t in [uid("tina"), *teachers]}
    assert [a for a in synapse.actions if a[0] == "power_levels"] == [("power_levels", s["announcement_room"])]
