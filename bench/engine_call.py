"""Bench helper: build the positional arguments of ``_core.Engine.decide`` by name.

decide() takes positional arguments only and gains parameters as rules are
added (e.g. ``is_invited``, ``shared_rooms``, ``actor_membership``). The benches name what they pass;
the order comes from the binding's own docstring, ``decide(callback, actor,
...)``, and parameters a bench does not name get the value that means "not
applicable / not known yet" (None, or FACT_UNKNOWN for ``actor_admin``).
"""
from __future__ import annotations

import re
from typing import Any

from synapse_school_policy import _core

_FALLBACK = (
    "callback", "actor", "target", "room_id", "event_type", "state_key", "content",
    "room", "actor_admin", "is_invited", "shared_rooms", "actor_membership", "member_count",
)
_DEFAULTS = {"actor_admin": _core.FACT_UNKNOWN}


def decide_params() -> tuple[str, ...]:
    match = re.match(r"\s*decide\(([^)]*)\)", _core.Engine.decide.__doc__ or "")
    if match is None:
        return _FALLBACK
    return tuple(name.strip() for name in match.group(1).split(",") if name.strip())


PARAMS = decide_params()


def decide_args(**named: Any) -> tuple:
    unknown = set(named) - set(PARAMS)
    if unknown:
        raise TypeError(f"decide() has no parameter(s) {sorted(unknown)}; it takes {PARAMS}")
    return tuple(named[name] if name in named else _DEFAULTS.get(name) for name in PARAMS)
