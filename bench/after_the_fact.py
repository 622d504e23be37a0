#!/usr/bin/env python3
"""bench: after_the_fact -- what taking things back after the fact costs.

Usage (the virtualenv with Synapse and the module installed):

    $VENV/bin/python bench/after_the_fact.py              # ~1 min: engine, binding, adapter
    $VENV/bin/python bench/after_the_fact.py --synapse    # + a real Synapse: on_new_event's price (~2 min)

1. `Engine.after_event` as the adapter calls it, on Synapse's own (Rust)
   event objects, ns per call (perf_counter_ns loops, 5 rounds of 20,000),
   and the memory blocks a call leaves allocated (sys.getallocatedblocks):
   - a local message (decided on is_state() and the sender),
   - a local state event that is no member event (a room name),
   - a pupil's join under their global name in a one-way course, with the
     room's state and the profile supplied (nothing to take back),
   - a remote member's message in a room made here whose doors are closed.
2. The adapter: `AfterTheFact.after_event` for that join, as the poller
   awaits it, with a ModuleApi whose lookups answer at once (p50/p99), and
   one poll of the state delta stream with nothing new.
3. With --synapse: one throwaway PostgreSQL and Synapse (tests/harness)
   with bench/on_new_event_probe.py, which registers a no-op
   third-party-rules on_new_event and times Synapse's dispatcher around it:
   Synapse fetches the event and the room's whole current state before the
   callback. A room with --state custom state events (2,000: the size of
   a 2,000-member announcement room's state) and one with ~10 get
   --messages messages each; printed: the dispatcher's time per message.
   The module's poller costs a message nothing (messages change no state).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

from benchlib import log, percentile  # noqa: E402

SERVER = "school.test"
SYNC = f"@sync:{SERVER}"
PUPIL = f"@pupil:{SERVER}"
POLICY_TYPE = "org.synapse_school_policy.room"


def synapse_event(event_type, sender, content, state_key=None, order=1, room_id="!course:school.test"):
    from synapse.api.room_versions import RoomVersions
    from synapse.events import make_event_from_dict

    fields = {"type": event_type, "sender": sender, "room_id": room_id, "content": content,
              "origin_server_ts": order, "auth_events": [], "prev_events": [], "depth": order,
              "hashes": {"sha256": "x"}, "signatures": {}}
    if state_key is not None:
        fields["state_key"] = state_key
    event = make_event_from_dict(fields, RoomVersions.V10)
    event.internal_metadata.stream_ordering = order
    return event


def course_state(join):
    return {
        ("m.room.create", ""): synapse_event("m.room.create", SYNC, {"room_version": "10"}, ""),
        (POLICY_TYPE, ""): synapse_event(POLICY_TYPE, SYNC, {"school": "gym-nord", "kind": "announcement",
                                                             "two_way": False}, ""),
        ("m.room.power_levels", ""): synapse_event("m.room.power_levels", SYNC,
                                                   {"users": {SYNC: 100}, "events_default": 50}, ""),
        ("m.room.join_rules", ""): synapse_event("m.room.join_rules", SYNC, {"join_rule": "invite"}, ""),
        ("m.room.member", PUPIL): join,
    }


def engine(data_dir):
    from synapse_school_policy import _core

    config = {"service_users": [SYNC], "data_dir": data_dir, "schools": {"gym-nord": {"messenger": True}}}
    eng = _core.Engine(json.dumps(config), SERVER, "bench")
    eng.open()
    eng.roster_put(PUPIL, json.dumps({"schools": [{"school": "gym-nord", "role": "student"}]}))
    return eng


def bench_engine(eng, rounds, calls):
    message = synapse_event("m.room.message", PUPIL, {"msgtype": "m.text", "body": "hi"})
    name = synapse_event("m.room.name", SYNC, {"name": "7b"}, "")
    join = synapse_event("m.room.member", PUPIL, {"membership": "join", "displayname": "Paula"}, PUPIL, 7)
    state = course_state(join)
    old_room = {("m.room.create", ""): synapse_event("m.room.create", PUPIL, {"room_version": "10"}, "",
                                                     room_id="!old:school.test"),
                ("m.room.join_rules", ""): synapse_event("m.room.join_rules", PUPIL, {"join_rule": "invite"}, "",
                                                         room_id="!old:school.test")}
    remote = synapse_event("m.room.message", "@stranger:remote.example", {"body": "hi"}, room_id="!old:school.test")
    cases = [
        ("a local message", lambda: eng.after_event(message)),
        ("a local room name", lambda: eng.after_event(name)),
        ("a pupil's join, global name, one-way room (state, profile given)",
         lambda: eng.after_event(join, state, None, ("Paula", None))),
        ("a remote member's message, room made here, doors closed", lambda: eng.after_event(remote, old_room)),
    ]
    print(f"\n{'Engine.after_event, on Synapse events':<66} {'ns/call (min..max of rounds)':>30} {'blocks left':>12}")
    for label, call in cases:
        assert call() is None, label
        per_round = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(calls):
                call()
            per_round.append((time.perf_counter_ns() - start) / calls)
        blocks = sys.getallocatedblocks()
        for _ in range(calls):
            call()
        left = sys.getallocatedblocks() - blocks
        print(f"{label:<66} {min(per_round):>12.0f} .. {max(per_round):<14.0f} {left:>12}")


class FakeApi:
    """The ModuleApi members the after-the-fact adapter awaits, answering at once."""

    server_name = SERVER

    def __init__(self, state):
        self._state = state
        self._store = SimpleNamespace(get_room_max_stream_ordering=lambda: 7,
                                      get_partial_current_state_deltas=self._deltas)

    async def _deltas(self, since, until):
        return until, []

    async def get_room_state(self, room_id, event_filter):
        return {k: v for k, v in self._state.items() if any(k[0] == t and s in (None, k[1]) for t, s in event_filter)}

    async def get_profile_for_user(self, localpart):
        return SimpleNamespace(display_name="Paula", avatar_url=None)

    async def is_user_admin(self, user_id):
        return False


def bench_adapter(eng, rounds, calls):
    from synapse_school_policy.after_the_fact import AfterTheFact

    join = synapse_event("m.room.member", PUPIL, {"membership": "join", "displayname": "Paula"}, PUPIL, 7)
    api = FakeApi(course_state(join))
    adapter = AfterTheFact(api, eng, [SYNC])
    print(f"\n{'the adapter, lookups answering at once':<66} {'p50 us':>8} {'p99 us':>8}")

    async def run():
        for label, make in (("AfterTheFact.after_event: a pupil's join (state + profile looked up)",
                             lambda: adapter.after_event(join)),
                            ("AfterTheFact.poll: nothing new", adapter.poll)):
            await make()
            samples = []
            for _ in range(rounds * calls // 10):
                start = time.perf_counter_ns()
                await make()
                samples.append((time.perf_counter_ns() - start) / 1000)
            print(f"{label:<66} {percentile(samples, 50):>8.2f} {percentile(samples, 99):>8.2f}")

    asyncio.run(run())


def bench_synapse(args):
    from harness.client import CS, q, register_user, request
    from harness.postgres import PostgresCluster
    from harness.synapse import MODULE_PATH, SynapseServer

    with tempfile.TemporaryDirectory() as work:
        pg = PostgresCluster()
        pg.start()
        server = None
        try:
            store = os.path.join(work, "store")
            module_config = {"service_users": [SYNC], "data_dir": store, "schools": {"gym-nord": {"messenger": True}}}
            server = SynapseServer(
                os.path.join(work, "synapse"), module_config=module_config,
                database=pg.create_database("bench_after"),
                env={"PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")},
                extra_config={"modules": [{"module": MODULE_PATH, "config": module_config},
                                          {"module": "on_new_event_probe.OnNewEventProbe", "config": {}}]},
            )
            server.start()
            sync = register_user(server, "sync", "bench password")
            rooms = {}
            for label, extra in (("small", 0), ("large", args.state)):
                status, body = sync.create_room(preset="private_chat")
                assert status == 200, body
                room_id = body["room_id"]
                started = time.monotonic()
                for i in range(extra):
                    status, body = sync.put_state(room_id, "x.bench.state", f"k{i}", {"i": i})
                    assert status == 200, body
                log(f"{label} room: {extra} extra state events in {time.monotonic() - started:.0f} s")
                rooms[label] = room_id
            request(server.base_url, "GET", "/_synapse/client/ssp_bench/on_new_event")  # reset
            for label, room_id in rooms.items():
                for i in range(args.messages):
                    status, body = sync.send(room_id, "m.room.message",
                                             {"msgtype": "m.text", "body": f"m{i}", "bench_phase": label})
                    assert status == 200, body
            time.sleep(2)
            status, body = request(server.base_url, "GET", "/_synapse/client/ssp_bench/on_new_event")
            assert status == 200, body
            print(f"\n{'Synapse: on_new_event dispatcher per message (wall clock)':<66} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}")
            for label, samples in sorted(body["samples_ns"].items()):
                ms = [ns / 1e6 for ns in samples]
                print(f"{label:<66} {len(ms):>5} {percentile(ms, 50):>8.2f} {percentile(ms, 99):>8.2f}")
        finally:
            if server is not None:
                server.stop()
            pg.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--synapse", action="store_true")
    parser.add_argument("--state", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        eng = engine(data_dir)
        bench_engine(eng, args.rounds, args.calls)
        bench_adapter(eng, args.rounds, args.calls)
    if args.synapse:
        bench_synapse(args)


if __name__ == "__main__":
    main()
