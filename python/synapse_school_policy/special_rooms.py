"""The special rooms of a school (the teachers' room, the announcement
room): created where missing, found again after a crash, and each user of a
(school, user) mark invited and joined, or removed, with the power level the
engine names (`Engine.reconcile_plan`)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from synapse.module_api import ModuleApi

from synapse_school_policy.room_actions import MEMBER, RoomActions, Why
from synapse_school_policy.room_state import is_member

logger = logging.getLogger("synapse_school_policy.reconciler")

# (room id, user id, power level or None) the batch sends as one event per room.
Level = tuple[str, str, "int | None"]


class SpecialRooms:
    def __init__(self, api: ModuleApi, engine: Any, actions: RoomActions,
                 in_thread: Callable[..., Any]):
        self._api = api
        self._engine = engine
        self._actions = actions
        self._in_thread = in_thread

    async def ensure_rooms(self, school: str) -> dict[str, str | None]:
        """Creates the school's enabled rooms where missing; returns every
        kind's room id (None: none recorded). Nothing for a frozen school."""
        plan = self._engine.reconcile_plan(school, "")
        if not plan["messenger"]:
            return {}
        return {
            room["kind"]: await self._room(school, room) if room["enabled"]
            else await self._in_thread(self._engine.reconcile_get_room, school, room["kind"])
            for room in plan["rooms"]
        }

    async def apply_memberships(self, school: str, user_id: str,
                                room_ids: dict[str, str | None]) -> list[Level]:
        """Brings the user's memberships in line with the school's rooms
        (`room_ids`, from ensure_rooms); returns the power levels they
        should have."""
        plan = self._engine.reconcile_plan(school, user_id)
        if not plan["messenger"]:
            return []  # rule 1 freezes the rooms of a school that has not opted in
        if user_id and await self._api.check_user_exists(user_id) is None:
            return []  # marked again when the account is registered
        wanted: list[Level] = []
        for room in plan["rooms"]:
            # Only ensure_rooms creates rooms: marks run side by side here.
            room_id = room_ids.get(room["kind"])
            if room_id is None and room["enabled"]:
                raise RuntimeError(f"the {room['kind']} room of {school} could not be created yet")
            if room_id is None:
                continue
            if not user_id:
                await self._mark_members(school, room_id)
                continue
            why = Why(school, _reason(room, school))
            await self._actions.set_membership(room_id, user_id, room["member"], why)
            wanted.append((room_id, user_id, room["power_level"]))
        return wanted

    async def _room(self, school: str, room: dict) -> str:
        """The school's room of this kind: recorded, found again, or created."""
        kind = room["kind"]
        room_id = await self._in_thread(self._engine.reconcile_get_room, school, kind)
        if room_id is not None:
            return room_id
        owned = await self._actions.owned_rooms()
        room_id = owned.get((school, kind))
        if room_id is None:
            room_id = await self._actions.create_room({
                "preset": "private_chat",
                "visibility": "private",
                "name": room["name"],
                "initial_state": [
                    {"type": self._actions.policy_key[0], "state_key": "", "content": room["policy"]},
                ],
            })
            self._actions.remember(school, kind, room_id)
            self._actions.audit("room_created", Why(school, f"the {kind} room of {school} is enabled"),
                                room_id)
            logger.info("synapse_school_policy: created the %s room of %s: %s", kind, school, room_id)
        await self._in_thread(self._engine.reconcile_set_room, school, kind, room_id)
        return room_id

    async def _mark_members(self, school: str, room_id: str) -> None:
        """The school itself: every current member gets a mark of their own,
        so each is checked against the roster (a room just disabled empties,
        users removed while the store was lost leave)."""
        state = await self._api.get_room_state(room_id, [(MEMBER, None)])
        members = sorted(
            key[1] for key, event in state.items()
            if is_member(event) and key[1] != self._actions.owner
        )
        if members:
            await self._in_thread(self._engine.reconcile_mark, school, members)


def _reason(room: dict, school: str) -> str:
    if room["member"]:
        return f"a member of the {room['kind']} room of {school} by the roster"
    if not room["enabled"]:
        return f"the {room['kind']} room of {school} is disabled"
    return f"the roster no longer puts them in the {room['kind']} room of {school}"
