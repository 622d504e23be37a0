"""Bench-only: SchoolPolicy plus a third-party-rules ``check_event_allowed``.

Used by bench/hot_path.py as variant (c). Never load this in production.

Synapse awaits ``check_event_allowed(event, state_events)`` for every event and,
before calling it, loads the room's *full* state (every state event, e.g.
2,000 membership events in a 2,000-member room). This subclass registers it in
addition to everything the shipped module registers; the callback runs the
same engine decision that ``check_event_for_spam`` runs (taking the policy and
power levels from ``state_events`` instead of asking Synapse for them) and then
always returns ``(True, None)``, so behaviour is unchanged and only the cost
is added.

It also times, in wall-clock nanoseconds and keyed by the message content's
``bench_phase`` field:

- the module's own code inside both callbacks (``check_event_for_spam``
  includes the adapter's await of ``get_room_state``, also timed on its own;
  ``check_event_allowed`` does not include Synapse loading the state, which
  happens before the callback is called);
- Synapse's two dispatchers around them (``synapse: check_event_allowed``
  includes Synapse loading the room's full state), by wrapping them through
  the private ``ModuleApi._hs``.

It serves the numbers (and resets them) at
``GET /_synapse/client/ssp_bench/timings`` (unauthenticated: the bench server
listens on loopback only).

Load with PYTHONPATH=bench and
``module: check_event_allowed_variant.CheckEventAllowedPolicy``.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from synapse.http.server import DirectServeJsonResource

from engine_call import decide_args  # bench/, on PYTHONPATH
from synapse_school_policy import _core
from synapse_school_policy.module import SchoolPolicy

TIMINGS_PATH = "/_synapse/client/ssp_bench/timings"
_MAX_SAMPLES = 100_000  # per callback and phase; bounds memory


def _phase(event: Any) -> str:
    content = event.content
    phase = content.get("bench_phase") if hasattr(content, "get") else None
    return phase if isinstance(phase, str) else "other"


class _Timings:
    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.state_sizes: list[int] = []

    def add(self, callback: str, phase: str, ns: int) -> None:
        bucket = self.samples[callback][phase]
        if len(bucket) < _MAX_SAMPLES:
            bucket.append(ns)

    def take(self) -> dict:
        out = {
            "samples_ns": {cb: dict(phases) for cb, phases in self.samples.items()},
            "state_sizes": self.state_sizes[-1000:],
        }
        self.samples = defaultdict(lambda: defaultdict(list))
        self.state_sizes = []
        return out


class _TimingsResource(DirectServeJsonResource):
    isLeaf = True

    def __init__(self, timings: _Timings):
        super().__init__()
        self._timings = timings

    async def _async_render_GET(self, request: Any) -> tuple[int, Any]:
        return 200, self._timings.take()


class CheckEventAllowedPolicy(SchoolPolicy):
    def __init__(self, config: Any, api: Any):
        self._bench_timings = _Timings()
        self._current_phase = "other"
        super().__init__(config, api)
        api.register_third_party_rules_callbacks(check_event_allowed=self.check_event_allowed)
        api.register_web_resource(TIMINGS_PATH, _TimingsResource(self._bench_timings))
        # Probes around Synapse's own dispatchers (private API, bench only):
        # what Synapse spends per event on each hook, including, for
        # check_event_allowed, loading the room's full state.
        callbacks = api._hs.get_module_api_callbacks()  # noqa: SLF001
        self._probe(callbacks.spam_checker, "check_event_for_spam", "synapse: check_event_for_spam")
        self._probe(callbacks.third_party_event_rules, "check_event_allowed", "synapse: check_event_allowed")

    def _probe(self, holder: Any, name: str, label: str) -> None:
        original = getattr(holder, name)
        timings = self._bench_timings

        async def probed(event: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return await original(event, *args, **kwargs)
            finally:
                timings.add(label, _phase(event), time.perf_counter_ns() - start)

        setattr(holder, name, probed)

    # The shipped callback, timed (super().__init__ registered this override).
    async def check_event_for_spam(self, event: Any) -> Any:
        start = time.perf_counter_ns()
        self._current_phase = _phase(event)
        try:
            return await super().check_event_for_spam(event)
        finally:
            self._bench_timings.add("module: check_event_for_spam", _phase(event), time.perf_counter_ns() - start)

    # The adapter's await of ModuleApi.get_room_state (policy + power levels),
    # timed separately to split the callback's time into Synapse's lookup and
    # the rest (engine decision, argument marshalling, counters).
    async def _room_state(self, room_id: str) -> Any:
        start = time.perf_counter_ns()
        try:
            return await super()._room_state(room_id)
        finally:
            self._bench_timings.add("module: check_event_for_spam > get_room_state", self._current_phase, time.perf_counter_ns() - start)

    async def check_event_allowed(self, event: Any, state_events: Any) -> tuple[bool, None]:
        start = time.perf_counter_ns()
        policy = state_events.get(self._policy_key)
        power_levels = state_events.get(("m.room.power_levels", ""))
        create = state_events.get(("m.room.create", ""))
        self._engine.decide(*decide_args(
            callback=_core.CB_CHECK_EVENT_FOR_SPAM,
            actor=event.sender,
            room_id=event.room_id,
            event_type=event.type,
            state_key=event.get_state_key() if event.is_state() else None,
            content=event.content,
            room=(
                policy.content if policy is not None else None,
                policy.sender if policy is not None else None,
                power_levels.content if power_levels is not None else None,
                create.content if create is not None else None,
                create.sender if create is not None else None,
            ),
        ))
        self._bench_timings.add("module: check_event_allowed", _phase(event), time.perf_counter_ns() - start)
        if len(self._bench_timings.state_sizes) < _MAX_SAMPLES:
            self._bench_timings.state_sizes.append(len(state_events))
        return True, None
