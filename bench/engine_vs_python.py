#!/usr/bin/env python3
"""bench: engine_vs_python -- the C engine's decide() against the pure-Python
reference model, and the whole adapter callback.

Usage (with the virtualenv that has the module installed):

    VENV=~/.cache/synapse-school-policy/venv-synapse-1.163.2-py3.11
    $VENV/bin/python bench/engine_vs_python.py            # ~15 seconds
    $VENV/bin/python bench/engine_vs_python.py --quick    # a few seconds

Options: --users N (100000: roster size), --rounds N (11), --iterations N
(20000 decisions per case, implementation and round), --calls N (20000 timed
adapter callbacks per round).

Part 1, decisions: the same roster of --users users (90% in gym-nord, which
has opted in, 10% in gs-sued, which has not) is loaded into the engine
(Engine.roster_upsert) and into tests/reference_policy/'s ReferencePolicy.
For each request kind both make the same decision (checked first, for every
actor used), then each is timed in a perf_counter_ns loop over 4,096 different
actors, engine and Python interleaved round by round (E P E P ...). Printed:
median ns per decision over the rounds and the ratio python/engine. The
engine's time is decide() as Python calls it: the CPython binding's argument
conversion (including reading the room's policy and power levels mappings)
plus ssp_decide itself (bench/callgrind_decide.sh measures ssp_decide alone).

Part 2, the whole callback: SchoolPolicy is instantiated with a fake, minimal
ModuleApi (microbenchmark only: get_room_state and is_user_admin return at
once, so Synapse's own lookups are NOT included; bench/hot_path.py measures
those in a real Synapse). Each callback coroutine is driven with
coro.send(None) to completion and timed one by one: p50/p99/mean in us.

GC is disabled inside timed loops. Ratios are meaningful only within one run
(2 noisy cores).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

from engine_call import PARAMS, decide_args  # noqa: E402
from reference_policy import NEED_ADMIN, NEED_ROOM, SYNC_POWER_LEVELS, ReferencePolicy  # noqa: E402
from synapse_school_policy import _core  # noqa: E402
from benchlib import log, percentile  # noqa: E402

SERVER = "school.test"
POLICY_TYPE = "org.synapse_school_policy.room"
ROOM_ID = "!announcements:school.test"
SCHOOLS = {"gym-nord": {"messenger": True}, "gs-sued": {"messenger": False}}
TWO_WAY_POLICY = {"school": "gym-nord", "kind": "course", "two_way": True}
SERVICE_USER = f"@sync:{SERVER}"
CREATE_CONTENT = {"room_version": "12"}
N_ACTORS = 4096
TIME_LIMIT = 280.0  # seconds, whole run



def uid(i: int) -> str:
    return f"@u{i}:{SERVER}"


def school_of(i: int) -> str:
    return "gs-sued" if i % 10 == 9 else "gym-nord"



def power_levels(users: int) -> dict:
    """A realistic managed room's power levels: the creator is implicit
    (room v12), a few teachers at 50."""
    return {
        "users": {uid(i): 50 for i in range(0, users * 10, 10)[:5]},
        "users_default": 0, "events_default": 0, "state_default": 50,
        "ban": 50, "kick": 50, "redact": 50, "invite": 0,
        "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.redaction": 0},
    }


def normalise_engine(outcome: Any) -> Any:
    if outcome == _core.NEED_ROOM:
        return NEED_ROOM
    if outcome == _core.NEED_ADMIN:
        return NEED_ADMIN
    if outcome == _core.SYNC_POWER_LEVELS:
        return SYNC_POWER_LEVELS
    if outcome is None:
        return None
    rule, _message, enforced, school = outcome
    return (rule, enforced, school or None)


# ---- the request kinds ----------------------------------------------------------

def cases(pl: dict, allowed: list[str], denied: list[str]) -> list[dict]:
    content = {"msgtype": "m.text", "body": "Hausaufgaben bis Freitag"}
    message = dict(callback="check_event_for_spam", room_id=ROOM_ID, event_type="m.room.message",
                   content=content)
    return [
        dict(name="message, two-way room, allowed", actors=allowed, room_known=True,
             room_policy=TWO_WAY_POLICY, power_levels=pl, actor_admin=None, **message),
        dict(name="message, room not looked up yet", actors=allowed, room_known=False,
             room_policy=None, power_levels=None, actor_admin=None, **message),
        dict(name="message, denied -> NEED_ADMIN", actors=denied, room_known=False,
             room_policy=None, power_levels=None, actor_admin=None, **message),
        dict(name="message, denied (final, audited)", actors=denied, room_known=False,
             room_policy=None, power_levels=None, actor_admin=False, **message),
        dict(name="login, allowed", actors=allowed, callback="check_login_for_spam", room_id=None,
             event_type=None, content=None, room_known=False, room_policy=None, power_levels=None,
             actor_admin=None),
    ]


CALLBACKS = {"check_event_for_spam": _core.CB_CHECK_EVENT_FOR_SPAM,
             "check_login_for_spam": _core.CB_CHECK_LOGIN_FOR_SPAM}
FACT = {None: _core.FACT_UNKNOWN, False: _core.FACT_NO, True: _core.FACT_YES}


def room_facts(case: dict) -> tuple | None:
    """decide()'s room argument: None until looked up, else (policy content,
    policy sender, power levels, m.room.create content, creator). The rooms
    are the service user's, so their policy event counts (D8)."""
    if not case["room_known"]:
        return None
    return (case["room_policy"], SERVICE_USER, case["power_levels"], CREATE_CONTENT, SERVICE_USER)


def engine_args(case: dict, actor: str) -> tuple:
    return decide_args(
        callback=CALLBACKS[case["callback"]], actor=actor, room_id=case["room_id"],
        event_type=case["event_type"], content=case["content"], room=room_facts(case),
        actor_admin=FACT[case["actor_admin"]],
    )


def reference_args(case: dict, actor: str) -> tuple:
    # decide(callback, actor, target, room_id, event_type, state_key, content, room, actor_admin)
    return (case["callback"], actor, None, case["room_id"], case["event_type"], None, case["content"],
            room_facts(case), case["actor_admin"])


def time_loop(fn, arg_lists: list[tuple], iterations: int) -> float:
    """ns per call of fn(*args), cycling through arg_lists."""
    n = len(arg_lists)
    seq = [arg_lists[i % n] for i in range(iterations)]
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for args in seq:
            fn(*args)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / iterations


def part1(engine, reference, pl, allowed, denied, args, deadline) -> list[dict]:
    results = []
    kinds = cases(pl, allowed, denied)
    for case in kinds:
        eargs = [engine_args(case, a) for a in case["actors"]]
        rargs = [reference_args(case, a) for a in case["actors"]]
        # Same decision for every actor used (the denied-final case audits;
        # checking it once per actor is fine).
        outcomes = set()
        for e, r in zip(eargs, rargs):
            mine, theirs = normalise_engine(engine.decide(*e)), reference.decide(*r)
            if mine != theirs:
                raise AssertionError(f"{case['name']}: engine {mine!r} != reference {theirs!r} for {e[1]}")
            outcomes.add(mine if not isinstance(mine, tuple) else mine[0])
        case["eargs"], case["rargs"], case["outcome"] = eargs, rargs, "/".join(sorted(map(str, outcomes)))
    noop = lambda *a: None  # noqa: E731 - the loop's own cost
    samples = {c["name"]: {"engine": [], "python": [], "noop": []} for c in kinds}
    for r in range(args.rounds):
        if time.monotonic() > deadline:
            log("time limit: fewer rounds")
            break
        for case in kinds:
            s = samples[case["name"]]
            s["engine"].append(time_loop(engine.decide, case["eargs"], args.iterations))
            s["python"].append(time_loop(reference.decide, case["rargs"], args.iterations))
            s["noop"].append(time_loop(noop, case["eargs"], args.iterations))
    for case in kinds:
        s = samples[case["name"]]
        e, p, z = (statistics.median(s[k]) for k in ("engine", "python", "noop"))
        ratios = [pp / ee for pp, ee in zip(s["python"], s["engine"])]
        results.append(dict(name=case["name"], outcome=case["outcome"], engine=e, python=p, noop=z,
                            ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios)))
    return results


# ---- part 2: the whole adapter callback ------------------------------------------

class FakeEvent:
    def __init__(self, sender, room_id, type_, content, state_key=None, event_id="$bench"):
        self.sender, self.room_id, self.type = sender, room_id, type_
        self.content, self._state_key, self.event_id = content, state_key, event_id

    def is_state(self) -> bool:
        return self._state_key is not None

    def get_state_key(self):
        return self._state_key


class _Unset:
    """Stands in for ``api._hs.config``, read by the module's start-up
    self-check: any attribute path, false, except the settings the check
    wants on (so that it stays quiet)."""

    _ON = {"limit_profile_requests_to_users_who_share_rooms", "require_auth_for_profile_requests"}

    def __getattr__(self, name: str) -> Any:
        return True if name in self._ON else self

    def __bool__(self) -> bool:
        return False


class _Store:
    """The store queries synapse_compat checks at start-up; not called here."""

    async def get_mutual_rooms_between_users(self, users):
        return frozenset()

    async def get_rooms_for_user(self, user_id):
        return frozenset()


class FakeApi:
    """Just enough ModuleApi for SchoolPolicy; every lookup returns at once."""

    worker_name = None  # the main process
    worker_app = None
    _hs = _Unset()
    _store = _Store()

    def __init__(self, server_name: str, state: dict):
        self.server_name = server_name
        self._state = state
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        # Anything else (register_*, looping_background_call, ...) is accepted
        # and does nothing; the names are reported with the results. A method
        # whose result the callback path awaits would fail loudly in drive().
        if name.startswith("__"):
            raise AttributeError(name)
        stubbed = self.__dict__.setdefault("stubbed", set())
        stubbed.add(name)
        return lambda *a, **k: None

    async def get_room_state(self, room_id, event_filter=None):
        self.calls["get_room_state"] = self.calls.get("get_room_state", 0) + 1
        if event_filter is None:
            return dict(self._state)
        return {key: self._state[key] for key in event_filter if key in self._state}

    async def is_user_admin(self, user_id):
        self.calls["is_user_admin"] = self.calls.get("is_user_admin", 0) + 1
        return False


def drive(coro) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the callback suspended: the fake api must not")


def time_calls(make_coro, arg_lists: list[tuple], calls: int) -> list[float]:
    """Per-call wall time in us of driving make_coro(*args) to completion."""
    out = []
    n = len(arg_lists)
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            a = arg_lists[i % n]
            t = clock()
            drive(make_coro(*a))
            out.append((clock() - t) / 1000)
    finally:
        gc.enable()
    return out


def part2(roster_body: str, pl: dict, allowed: list[str], args, deadline) -> tuple[list[dict], float]:
    from synapse.util.frozenutils import freeze

    from synapse_school_policy.module import SchoolPolicy

    data_dir = tempfile.mkdtemp(prefix="ssp-bench-adapter-")
    try:
        config = {"service_users": [f"@sync:{SERVER}"], "data_dir": data_dir, "schools": SCHOOLS,
                  "strict_homeserver_config": False}
        state = {(POLICY_TYPE, ""): FakeEvent("@sync:" + SERVER, ROOM_ID, POLICY_TYPE, freeze(TWO_WAY_POLICY), ""),
                 ("m.room.power_levels", ""): FakeEvent("@sync:" + SERVER, ROOM_ID, "m.room.power_levels",
                                                        freeze(pl), ""),
                 ("m.room.create", ""): FakeEvent("@sync:" + SERVER, ROOM_ID, "m.room.create",
                                                  freeze(CREATE_CONTENT), "")}
        api = FakeApi(SERVER, state)
        policy = SchoolPolicy(SchoolPolicy.parse_config(config), api)
        policy._engine.roster_upsert(roster_body)  # noqa: SLF001
        content = freeze({"msgtype": "m.text", "body": "Hausaufgaben bis Freitag"})
        events = [(FakeEvent(a, ROOM_ID, "m.room.message", content),) for a in allowed]
        kinds = [
            ("check_event_for_spam (message, two-way room)", policy.check_event_for_spam, events),
            ("_decide(check_event_for_spam) coroutine",
             lambda actor: policy._decide(_core.CB_CHECK_EVENT_FOR_SPAM, actor, room_id=ROOM_ID,  # noqa: SLF001
                                          event_type="m.room.message", content=content),
             [(a,) for a in allowed]),
            ("check_login_for_spam", lambda actor: policy.check_login_for_spam(actor, None, None, []),
             [(a,) for a in allowed]),
        ]
        for name, make, arg_lists in kinds:
            result = drive(make(*arg_lists[0]))
            if result != "NOT_SPAM":
                raise AssertionError(f"{name}: expected NOT_SPAM, got {result!r}")
        samples: dict[str, list[float]] = {name: [] for name, _, _ in kinds}
        for r in range(args.rounds):
            if time.monotonic() > deadline:
                break
            for name, make, arg_lists in kinds:
                samples[name] += time_calls(make, arg_lists, args.calls)
        lookups = api.calls.get("get_room_state", 0)
        log(f"ModuleApi members the adapter used that the fake only stubs: {sorted(api.__dict__.get('stubbed', ()))}")
        out = [dict(name=name, n=len(s), p50=percentile(s, 50), p99=percentile(s, 99),
                    mean=statistics.fmean(s)) for name, s in samples.items()]
        total_events = sum(len(samples[n]) for n, _, _ in kinds[:2]) + 2
        return out, lookups / total_events
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="users 10000, rounds 3, iterations 5000")
    args = parser.parse_args()
    if args.quick:
        args.users, args.rounds, args.iterations, args.calls = 10_000, 3, 5_000, 5_000
    for name, hi in (("users", 1_000_000), ("rounds", 100), ("iterations", 1_000_000), ("calls", 1_000_000)):
        if not 1 <= getattr(args, name) <= hi:
            parser.error(f"--{name} out of range")
    deadline = time.monotonic() + TIME_LIMIT
    t0 = time.monotonic()
    rng = random.Random(20261124)

    roster = [{"user_id": uid(i), "schools": [{"school": school_of(i), "role": "teacher" if i % 50 == 0 else "student"}]}
              for i in range(args.users)]
    roster_body = json.dumps({"users": roster})
    allowed = [uid(i) for i in rng.sample(range(args.users), min(N_ACTORS, args.users)) if school_of(i) == "gym-nord"]
    denied = [uid(i) for i in rng.sample(range(args.users), min(N_ACTORS * 10, args.users)) if school_of(i) == "gs-sued"]
    denied = denied[:N_ACTORS]
    pl = power_levels(args.users)

    data_dir = tempfile.mkdtemp(prefix="ssp-bench-engine-")
    try:
        config = {"service_users": [f"@sync:{SERVER}"], "data_dir": data_dir, "schools": SCHOOLS}
        engine = _core.Engine(json.dumps(config), SERVER, "main")
        engine.open()
        t = time.perf_counter()
        engine.roster_upsert(roster_body)
        load_s = time.perf_counter() - t
        reference = ReferencePolicy(
            server_name=SERVER, schools=SCHOOLS, service_users=frozenset(config["service_users"]),
            roster={e["user_id"]: [(m["school"], m["role"]) for m in e["schools"]] for e in roster},
        )
        log(f"roster: {engine.roster_size()} users in the engine (upsert {load_s:.2f}s, journal fsync included), "
            f"{len(reference.roster)} in the reference; decide{tuple(PARAMS)}")
        r1 = part1(engine, reference, pl, allowed, denied, args, deadline)
        engine.audit_flush()
        audit = engine.audit_stats()
        del engine
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    log("part 1 done; part 2 (adapter)")
    r2, lookups_per_event = part2(roster_body, pl, allowed, args, deadline)

    print()
    print(f"== decide(): C engine (via the CPython binding) vs pure-Python ReferencePolicy; "
          f"{args.users} users on the roster, {len(allowed)} allowed / {len(denied)} denied actors cycled, "
          f"{args.iterations} decisions x {args.rounds} rounds interleaved ==")
    print(f"{'request':<36} {'outcome':<22} {'engine ns':>10} {'python ns':>10} {'py/engine':>10} "
          f"{'(min..max)':>14} {'loop ns':>8}")
    for x in r1:
        print(f"{x['name']:<36} {x['outcome']:<22} {x['engine']:10.0f} {x['python']:10.0f} {x['ratio']:10.1f} "
              f"{'(' + format(x['ratio_min'], '.1f') + '..' + format(x['ratio_max'], '.1f') + ')':>14} {x['noop']:8.0f}")
    print("  engine/python ns: median over rounds of (loop time / decisions), loop and call overhead included;")
    print("  'loop ns' is the same loop calling a no-op with the same arguments.")
    print(f"  audit records written by the engine during the run: {audit.get('written')} "
          f"(queued {audit.get('queued')}, write errors {audit.get('write_errors')})")
    print()
    print(f"== whole callback: SchoolPolicy with a fake ModuleApi (instant get_room_state / is_user_admin), "
          f"coro.send(None) to completion, {args.calls} calls x {args.rounds} rounds ==")
    print(f"{'callback':<48} {'n':>7} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}")
    for x in r2:
        print(f"{x['name']:<48} {x['n']:7d} {x['p50']:8.2f} {x['p99']:8.2f} {x['mean']:8.2f}")
    print(f"  get_room_state calls per message callback: {lookups_per_event:.2f} "
          f"(NEED_ROOM, then decide again with the room's state)")
    print()
    allowed_msg = next(x for x in r1 if x["name"].startswith("message, two-way"))
    cb = r2[0]
    print("targets:")
    print(f"  engine decision < 1 us (binding call, allowed message):  {allowed_msg['engine'] / 1000:.2f} us  "
          f"{'met' if allowed_msg['engine'] < 1000 else 'NOT met'}")
    print(f"  whole callback < 10 us p99 (fake api):                   {cb['p99']:.2f} us  "
          f"{'met' if cb['p99'] < 10 else 'NOT met'}")
    worst = min(x["ratio"] for x in r1)
    print(f"  engine >= 20x faster than pure Python (per request kind): {worst:.1f}x .. "
          f"{max(x['ratio'] for x in r1):.1f}x  {'met' if worst >= 20 else 'NOT met'}")
    print(f"\ntotal runtime {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
