"""Room state as the callbacks and the reconciler both read and write it.

Two facts of Matrix that the adapter needs in more than one place, written
once: who counts as a member of a room, and how a change is merged into an
`m.room.power_levels` content. Neither is a policy decision (the engine
makes those); they are how Synapse's state is shaped.
"""
from __future__ import annotations

from typing import Any, Mapping

# A user who is in the room or may enter it without asking: both count as
# members (a direct chat's size, who the reconciler must keep or remove).
MEMBER_STATES = ("join", "invite")


def is_member(event: Any) -> bool:
    """True for an m.room.member event whose membership is join or invite."""
    return event is not None and event.content.get("membership") in MEMBER_STATES


def merged_power_levels(content: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict:
    """A new power-levels content: `content` with `changes` applied.

    A top-level key of `changes` replaces the current value, except that a
    map merges into a current map (the `users` and `events` maps), where a
    None value removes the entry. The current content is not changed (it
    may be Synapse's frozen event content)."""
    merged: dict[str, Any] = {key: value for key, value in (content or {}).items()}
    for key, value in changes.items():
        current = merged.get(key)
        if isinstance(value, Mapping):
            inner = dict(current) if isinstance(current, Mapping) else {}
            for name, level in value.items():
                if level is None:
                    inner.pop(name, None)
                else:
                    inner[name] = level
            value = inner
        merged[key] = value
    return merged
