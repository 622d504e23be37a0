"""What GET /status and the `groups` gauge say about the groups: per
school the number of groups and of group rooms not yet made. Read from the
engine's group index (Engine.groups_list, a page at a time) and the rooms
it has recorded."""
from __future__ import annotations

import time
from typing import Any

from synapse_school_policy.room_actions import GROUP_PREFIX

_PAGE = 1000
_GAUGE_MAX_AGE_S = 60.0


# Above this many groups in a school, rooms_pending is not counted (null):
# each group's room is a read of the store.
ROOMS_PENDING_MAX_GROUPS = 5000


def school_groups(engine: Any, school: str) -> dict[str, int | None]:
    """{"count", "rooms_pending"} of one school: its groups (deleted ones
    included) and the groups that should have a room and have none
    recorded yet (None above ROOMS_PENDING_MAX_GROUPS). Blocking (the store
    may be read): call it in a thread."""
    count = pending = 0
    start: str | None = None
    while True:
        page = engine.groups_list(school, start, _PAGE)
        for group in page["groups"]:
            count += 1
            if count > ROOMS_PENDING_MAX_GROUPS or group.get("state", "active") == "deleted":
                continue
            room_id = group["room_id"] if "room_id" in group else \
                engine.reconcile_get_room(school, GROUP_PREFIX + group["group"])
            if room_id is None:
                pending += 1
        start = page.get("next")
        if not start:
            return {"count": count,
                    "rooms_pending": pending if count <= ROOMS_PENDING_MAX_GROUPS else None}


def add_to_status(engine: Any, status: dict) -> dict:
    """GET /status's body with each listed school's "groups"."""
    for school, entry in (status.get("schools") or {}).items():
        entry["groups"] = school_groups(engine, school)
    return status


class GroupCount:
    """The `groups` gauge: the groups of every configured school, counted
    at most once a minute (a scrape must stay cheap)."""

    def __init__(self, engine: Any):
        self._engine = engine
        self._value = 0.0
        self._at = float("-inf")

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._at >= _GAUGE_MAX_AGE_S:
            self._at = now
            try:
                schools = self._engine.reconcile_status()["schools"]
                self._value = float(sum(_count(self._engine, s) for s in schools))
            except Exception:  # noqa: BLE001 - a scrape never fails; the last value stays
                pass
        return self._value


def _count(engine: Any, school: str) -> int:
    count, start = 0, None
    while True:
        page = engine.groups_list(school, start, _PAGE)
        count += len(page["groups"])
        start = page.get("next")
        if not start:
            return count
