"""Bench-only: a Synapse module that registers a no-op third-party-rules
``on_new_event`` and times Synapse's dispatcher around it.

Used by bench/after_the_fact.py. Never load this in production.

Once any module registers ``on_new_event``, Synapse fetches the event and
loads the room's whole current state (every state event) before calling it,
for every persisted event (module_api/callbacks/third_party_event_rules_callbacks.py
``on_new_event``). The probe wraps that dispatcher through the private
``ModuleApi._hs`` and records its wall-clock time per event, keyed by the
message content's ``bench_phase`` field; it also times the school module's
after-the-fact poll (after_the_fact.py) when that module runs in the same
process. Numbers are served (and reset) at
``GET /_synapse/client/ssp_bench/on_new_event`` (loopback only).

Load with PYTHONPATH=bench and ``module: on_new_event_probe.OnNewEventProbe``.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from synapse.http.server import DirectServeJsonResource

TIMINGS_PATH = "/_synapse/client/ssp_bench/on_new_event"
_MAX_SAMPLES = 100_000


class _Resource(DirectServeJsonResource):
    isLeaf = True

    def __init__(self, probe: "OnNewEventProbe"):
        super().__init__()
        self._probe = probe

    async def _async_render_GET(self, request: Any) -> tuple[int, Any]:
        samples, self._probe.samples = self._probe.samples, defaultdict(list)
        return 200, {"samples_ns": samples}


class OnNewEventProbe:
    def __init__(self, config: Any, api: Any):
        self.samples: dict[str, list[int]] = defaultdict(list)
        api.register_third_party_rules_callbacks(on_new_event=self.on_new_event)
        api.register_web_resource(TIMINGS_PATH, _Resource(self))
        rules = api._hs.get_module_api_callbacks().third_party_event_rules  # noqa: SLF001
        original = rules.on_new_event

        async def dispatcher(event_id: str) -> None:
            start = time.perf_counter_ns()
            try:
                await original(event_id)
            finally:
                self._add(self._phase_of.pop(event_id, "other"), time.perf_counter_ns() - start)

        rules.on_new_event = dispatcher
        self._phase_of: dict[str, str] = {}

    @staticmethod
    def parse_config(config: Any) -> Any:
        return config

    def _add(self, label: str, ns: int) -> None:
        if len(self.samples[label]) < _MAX_SAMPLES:
            self.samples[label].append(ns)

    async def on_new_event(self, event: Any, state_events: Any) -> None:
        phase = event.content.get("bench_phase") if event.type == "m.room.message" else None
        if isinstance(phase, str):
            # The dispatcher's sample is recorded under this phase when it returns.
            self._phase_of[event.event_id] = f"synapse: on_new_event, {phase}, {len(state_events)} state events"
