"""What the reconciler does in a room, for the special rooms and the group
rooms alike: read a room's members and power levels, change a membership,
send one power-levels event, create a room, find a room again whose
creation was not recorded, and wait its turn under
`reconciler.actions_per_second`. Every change is recorded in the audit
(`Engine.audit_action`: who, which room and group, what and why).

Nothing here decides who belongs where (the engine's plans do); this file
only compares what Synapse has with what it is told and acts.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Collection

from synapse.module_api import ModuleApi
from synapse.util.frozenutils import unfreeze

from synapse_school_policy import synapse_compat
from synapse_school_policy.metrics import GROUP_ACTIONS
from synapse_school_policy.room_state import MEMBER_STATES, merged_power_levels

logger = logging.getLogger("synapse_school_policy.reconciler")

MEMBER = "m.room.member"
POWER_LEVELS = ("m.room.power_levels", "")
CREATE = ("m.room.create", "")
TOMBSTONE = ("m.room.tombstone", "")
# Memberships the module leaves as they are when it would remove a user:
# nothing to take away.
GONE = ("leave", "ban", None)
GROUP_PREFIX = "group:"


@dataclass(frozen=True)
class Why:
    """The audit context of an action: the room's school and group (None
    for a special room) and the reason in words."""

    school: str
    reason: str
    group: str | None = None


class RoomActions:
    def __init__(self, api: ModuleApi, engine: Any, interval_s: float,
                 service_users: Collection[str] = ()):
        self._api = api
        self._engine = engine
        self.owner: str = engine.reconciler_user
        self.service_users = frozenset(service_users) | {self.owner}
        self.policy_key = (engine.policy_event_type, "")
        self._interval = interval_s
        self._next_action_at = 0.0
        # (school, key) -> room id of the managed rooms the owner is in, key
        # being a special room's kind or "group:" + a group id; built on
        # first need, to find a room again whose creation was not recorded.
        self._owned: dict[tuple[str, str], str] | None = None

    # ---- reading ----------------------------------------------------------

    async def memberships(self, room_id: str) -> dict[str, str]:
        """user id -> membership, for every m.room.member of the room."""
        state = await self._api.get_room_state(room_id, [(MEMBER, None)])
        return {key[1]: event.content.get("membership") for key, event in state.items()}

    async def membership(self, room_id: str, user_id: str) -> str | None:
        state = await self._api.get_room_state(room_id, [(MEMBER, user_id)])
        event = state.get((MEMBER, user_id))
        return event.content.get("membership") if event is not None else None

    async def state_content(self, room_id: str, key: tuple[str, str]) -> dict | None:
        state = await self._api.get_room_state(room_id, [key])
        event = state.get(key)
        return unfreeze(event.content) if event is not None else None

    async def is_protected(self, user_id: str) -> bool:
        """The owner, service users and server admins are never removed."""
        if user_id in self.service_users:
            return True
        return bool(await self._api.is_user_admin(user_id))

    # ---- acting -----------------------------------------------------------

    async def turn(self) -> None:
        """Waits for the next action slot: at most actions_per_second."""
        now = time.monotonic()
        wait = self._next_action_at - now
        self._next_action_at = max(now, self._next_action_at) + self._interval
        if wait > 0:
            await self._api.sleep(wait)

    def audit(self, action: str, why: Why, room_id: str | None, target: str | None = None) -> None:
        """Queues the audit record of an action (no I/O: the engine's queue)."""
        record = {"action": action, "actor": self.owner, "room_id": room_id, "school": why.school,
                  "group": why.group, "reason": _short(why.reason), "target": target}
        try:
            self._engine.audit_action(record)
        except Exception:  # noqa: BLE001 - the action is done; its record must not undo it
            logger.warning("synapse_school_policy: could not record %s", record, exc_info=True)
        if why.group is not None:
            GROUP_ACTIONS.labels(action=action).inc()

    async def act(self, sender: str, target: str, room_id: str, membership: str) -> None:
        await self.turn()
        await synapse_compat.update_membership(self._api, sender, target, room_id, membership)

    async def set_membership(self, room_id: str, user_id: str, member: bool, why: Why,
                             current: str | None | bool = False) -> bool:
        """Invites and joins the user (member) or removes them (kicked, or
        the invite withdrawn); True when something changed. `current`: the
        membership already read (False: read it here)."""
        if current is False:
            current = await self.membership(room_id, user_id)
        if member:
            if current == "join":
                return False
            if current == "ban":
                raise RuntimeError(f"{user_id} is banned from {room_id}; unban them to let them in")
            if current != "invite":
                await self.act(self.owner, user_id, room_id, "invite")
            await self.act(user_id, user_id, room_id, "join")
            self.audit("member_added", why, room_id, user_id)
            return True
        if current in GONE:
            return False
        await self.act(self.owner, user_id, room_id, "leave")
        self.audit("invite_withdrawn" if current == "invite" else "member_removed", why, room_id, user_id)
        return True

    async def send_state(self, room_id: str, event_type: str, content: dict, state_key: str = "") -> None:
        await self.turn()
        await self._api.create_and_send_event_into_room(
            {"type": event_type, "state_key": state_key, "room_id": room_id, "sender": self.owner,
             "content": content}
        )

    async def apply_power_levels(self, room_id: str, changes: dict[str, Any],
                                 why: dict[str, Why] | None = None) -> bool:
        """One power-levels event for every change the batch needs in the
        room (`changes` as merged_power_levels takes them); audited per
        user whose level changed (`why`: user id -> context)."""
        current = await self.state_content(room_id, POWER_LEVELS) or {}
        content = merged_power_levels(current, changes)
        if content == current:
            return False
        await self.send_state(room_id, POWER_LEVELS[0], content)
        before, after = current.get("users") or {}, content.get("users") or {}
        for user_id, context in (why or {}).items():
            if before.get(user_id) != after.get(user_id):
                self.audit("power_changed", Why(context.school, f"{context.reason} "
                                                f"(power level {before.get(user_id, 0)} -> "
                                                f"{after.get(user_id, 0)})", context.group),
                           room_id, user_id)
        return True

    async def create_room(self, config: dict) -> str:
        await self.turn()
        room_id, _ = await self._api.create_room(self.owner, config, ratelimit=False)
        return room_id

    # ---- finding rooms again ---------------------------------------------------

    async def owned_rooms(self) -> dict[tuple[str, str], str]:
        """The managed rooms the owner is in, by (school, kind) and, for group
        rooms, (school, "group:" + group id); replaced rooms (with a
        tombstone) left out. A crash between creating a
        room and recording it leaves a room the owner is in; finding it
        again is what keeps rooms from doubling. Read once per process; the
        rooms created since are added by `remember`."""
        if self._owned is None:
            found: dict[tuple[str, str], str] = {}
            rooms = await synapse_compat.rooms_for_user(self._api, self.owner)
            for room_id in sorted(rooms):
                state = await self._api.get_room_state(room_id, [self.policy_key, TOMBSTONE])
                if TOMBSTONE in state or self.policy_key not in state:
                    continue  # replaced (an adopted room took its place), or not managed
                policy = unfreeze(state[self.policy_key].content)
                school, kind, group = policy.get("school"), policy.get("kind"), policy.get("group")
                if not isinstance(school, str):
                    continue
                if isinstance(group, str):
                    found.setdefault((school, GROUP_PREFIX + group), room_id)
                elif isinstance(kind, str):
                    found.setdefault((school, kind), room_id)
            self._owned = found
        return self._owned

    def remember(self, school: str, key: str, room_id: str) -> None:
        if self._owned is not None:
            self._owned[(school, key)] = room_id


class PowerChanges:
    """The power-level changes of one batch, gathered per room so that each
    room gets one power-levels event (marks run side by side)."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, Any]] = {}
        self.why: dict[str, dict[str, Why]] = {}
        # Which marks (by index in the batch) wait for each room's event.
        self.marks: dict[str, set[int]] = {}

    def add(self, room_id: str, changes: dict[str, Any], why: dict[str, Why], mark: int = -1) -> None:
        merged = self.rooms.setdefault(room_id, {})
        for key, value in changes.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
        self.why.setdefault(room_id, {}).update(why)
        self.marks.setdefault(room_id, set()).add(mark)

    def merge(self, other: "PowerChanges", mark: int) -> None:
        """Adds another mark's changes, as the changes of mark `mark`."""
        for room_id, changes in other.rooms.items():
            self.add(room_id, changes, other.why.get(room_id, {}), mark)


def _short(text: str, limit: int = 500) -> str:
    """At most `limit` bytes of UTF-8 (the audit record's reason holds 512)."""
    return text.encode()[:limit].decode("utf-8", "ignore")


def joined_or_invited(memberships: dict[str, str]) -> dict[str, str]:
    return {user: m for user, m in memberships.items() if m in MEMBER_STATES}
