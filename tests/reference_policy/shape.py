"""The shape of new rooms (docs/rules.md, "How new rooms are shaped"):
ReferencePolicy.room_shape, a part of the model of its own."""
from __future__ import annotations

from typing import Mapping

from .constants import GUEST_ACCESS, POWER_LEVELS, REDACTION
from .create_room import _state_key_is_empty


class RoomShape:
    """ReferencePolicy's room_shape (mixed into it; reads its config)."""

    def room_shape(self, request) -> list[dict]:
        """The JSON Patch "add" operations on_create_room applies to a
        createRoom request, reading it as Synapse does: initial_state's
        entries become state keyed by (type, state_key or ""), the last
        entry of a key winning."""
        if not isinstance(request, Mapping):
            return []
        ops: list[dict] = []

        def add(path, value):
            ops.append({"op": "add", "path": path, "value": value})

        initial = request.get("initial_state", None)
        entries = list(initial) if isinstance(initial, (list, tuple)) else []

        def last(event_type):
            found = None
            for index, entry in enumerate(entries):
                if (isinstance(entry, Mapping) and isinstance(entry.get("type"), str)
                        and entry["type"] == event_type and _state_key_is_empty(entry)):
                    found = (index, entry)
            return found

        guest = {"type": GUEST_ACCESS, "state_key": "", "content": {"guest_access": "forbidden"}}
        if initial is None or (isinstance(initial, (Mapping, str)) and len(initial) == 0):
            add("/initial_state", [guest])
        elif isinstance(initial, (list, tuple)):
            chosen = last(GUEST_ACCESS)
            if chosen is None or not isinstance(chosen[1].get("content"), Mapping):
                add("/initial_state/-", guest)
        policy = last(self.policy_event_type)
        if policy is None:
            return ops
        creation = request.get("creation_content")
        if not isinstance(creation, Mapping):
            add("/creation_content", {"m.federate": False})
        elif creation.get("m.federate", None) is not False:
            add("/creation_content/m.federate", False)
        content = policy[1].get("content")
        if not isinstance(content, Mapping):
            return ops
        power_levels = last(POWER_LEVELS)
        pl_content = power_levels[1].get("content") if power_levels is not None else None
        if pl_content is None:
            parent, current = "/power_level_content_override", request.get("power_level_content_override")
        elif isinstance(pl_content, Mapping):
            parent, current = f"/initial_state/{power_levels[0]}/content", pl_content
        else:
            return ops  # Synapse refuses such power levels itself
        if not content:
            return ops  # an empty policy event: the room is unmanaged
        one_way = self._one_way(content)
        wanted = self.moderator_level if one_way else 0
        current_map = current if isinstance(current, Mapping) else {}
        events = current_map.get("events")
        events_map = events if isinstance(events, Mapping) else {}
        patch: dict = {}
        if _ascii_level(current_map.get("events_default"), 0) != wanted:
            patch["events_default"] = wanted
        if one_way:
            opened = {t: 0 for t in (REDACTION, *self.one_way_allowed_events)
                      if _ascii_level(events_map.get(t), None) != 0}
            if opened:
                patch["events"] = opened
        if not patch:
            return ops
        if not isinstance(current, Mapping):
            add(parent, patch)
            return ops
        if "events_default" in patch:
            add(f"{parent}/events_default", patch["events_default"])
        if "events" in patch:
            if not isinstance(events, Mapping):
                add(f"{parent}/events", patch["events"])
            else:
                for event_type in patch["events"]:
                    add(f"{parent}/events/{_pointer_token(event_type)}", 0)
        return ops


# The keys of a member event that carry no text of the sender's own:
# Synapse validates membership, and drops a client's


def _pointer_token(token: str) -> str:
    """RFC 6901: "~" and "/" escaped."""
    return token.replace("~", "~0").replace("/", "~1")


_ASCII_SPACE = " \t\n\v\f\r\x1c\x1d\x1e\x1f"


def _ascii_level(value, default):
    """A power level in a createRoom request: an int (not a bool) within
    int64, or a string int() reads that is ASCII only; else `default`."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value if -2**63 <= value < 2**63 else default
    if isinstance(value, str):
        text = value.strip(_ASCII_SPACE)
        if not text.isascii() or text[-1:] in ("", "_") or any(c in _ASCII_SPACE for c in text):
            return default
        try:
            level = int(text, 10)
        except ValueError:
            return default
        return level if -2**63 <= level < 2**63 else default
    return default
