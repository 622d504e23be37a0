"""The rooms of the school cloud's groups (courses, teams, classes).

A mark `(school, "group:" + id)` brings one group's room in line with the
latest snapshot (`Engine.group_plan`): the room is created where missing
(found again after a crash, by the group id in its policy event), members
are invited and joined or removed, moderators get `moderator_level` and a
lost moderator is lowered, name, topic and `two_way` follow the school
cloud, an archived group's room turns read-only and a deleted group's room
is emptied. A user mark `(school, "@user")` brings that user's group rooms
in line (`Engine.groups_of`). Who belongs where is the engine's decision.

Name, topic and two_way are the school cloud's, but a moderator may flip
two_way in the room: the values last applied are kept in the room (the
state event `<policy event type>.applied`), and a field is applied again only
when the school cloud's value differs from the one last applied.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from synapse.module_api import ModuleApi

from synapse_school_policy.adopt import retire_room
from synapse_school_policy.room_actions import (
    GROUP_PREFIX, MEMBER, POWER_LEVELS, PowerChanges, RoomActions, Why, joined_or_invited,
)

logger = logging.getLogger("synapse_school_policy.reconciler")

# events_default of an archived group's room: only the owner (100) could
# post, and the rules refuse it to anyone else too (group_archived).
ARCHIVED_EVENTS_DEFAULT = 100
_NAME = ("m.room.name", "")
_TOPIC = ("m.room.topic", "")
_MEMBER_CONCURRENCY = 8
# An archived group's room is looked at again this often, to remove its
# members once groups.archive_retention_days have passed.
_ARCHIVED_RECHECK_MS = 24 * 3600 * 1000


def group_of(subject: str) -> str | None:
    """The group id of a mark's subject, or None for a user mark."""
    return subject[len(GROUP_PREFIX):] if subject.startswith(GROUP_PREFIX) else None


class GroupRooms:
    def __init__(self, api: ModuleApi, engine: Any, actions: RoomActions,
                 in_thread: Callable[..., Any], concurrently: Callable[..., Any],
                 encrypted: bool = False):
        self._api = api
        self._engine = engine
        self._actions = actions
        self._in_thread = in_thread
        self._concurrently = concurrently
        self._encrypted = encrypted
        self._applied_type = engine.policy_event_type + ".applied"
        # group id -> (school, ms): when the group must be looked at again
        # without a message (archive_at_ms passing, the archive retention
        # ending). Kept in memory: after a restart the rules refuse posts in
        # a group archived by date (group_archived) until its next mark.
        self._timers: dict[str, tuple[str, int]] = {}

    async def mark_timers_due(self, now_ms: int) -> None:
        """Marks the groups whose time has come (archive_at_ms, retention)."""
        due = [(group_id, school) for group_id, (school, at) in self._timers.items() if at <= now_ms]
        for group_id, school in due:
            await self._in_thread(self._engine.reconcile_mark, school, [GROUP_PREFIX + group_id])
            self._timers.pop(group_id, None)

    def _schedule(self, plan: dict, now_ms: int) -> None:
        group_id = plan["group"]
        at = plan.get("archive_at_ms")
        if at is None and plan["state"] == "active":
            group = self._engine.group_get(group_id) or {}
            at = group.get("archive_at_ms")
        if plan["state"] == "active" and isinstance(at, int) and at > now_ms:
            self._timers[group_id] = (plan["school"], at)
        elif plan["state"] == "archived" and not plan.get("remove_members_now"):
            self._timers[group_id] = (plan["school"], now_ms + _ARCHIVED_RECHECK_MS)
        else:
            self._timers.pop(group_id, None)

    # ---- the room ------------------------------------------------------------

    async def ensure_room(self, school: str, group_id: str) -> str | None:
        """The group's room: recorded, found again, or created (None: a
        deleted or unknown group that never had one)."""
        key = GROUP_PREFIX + group_id
        room_id = await self._in_thread(self._engine.reconcile_get_room, school, key)
        if room_id is not None:
            return room_id
        plan = self._engine.group_plan(group_id)
        owned = await self._actions.owned_rooms()
        room_id = owned.get((school, key))
        if room_id is None:
            if plan is None or plan["state"] == "deleted":
                return None
            room_id = await self._actions.create_room(self._room_config(plan))
            self._actions.remember(school, key, room_id)
            self._actions.audit("room_created", Why(school, f"the {plan['kind']} {plan['name']!r} "
                                                    "is new", group_id), room_id)
            logger.info("synapse_school_policy: created the room of group %s: %s", group_id, room_id)
            adopted = await self._in_thread(self._engine.reconcile_get_room, school, key)
            if adopted is not None and adopted != room_id:
                # A room was adopted for the group while this one was being
                # made: that one stays the group's room.
                await retire_room(self._api, self._engine, room_id, adopted,
                                  Why(school, f"replaced by the adopted room {adopted}", group_id))
                return adopted
        await self._in_thread(self._engine.reconcile_set_room, school, key, room_id)
        return room_id

    def _room_config(self, plan: dict) -> dict:
        initial_state = [
            {"type": self._actions.policy_key[0], "state_key": "", "content": plan["policy"]},
            {"type": self._applied_type, "state_key": "", "content": _snapshot(plan)},
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
            {"type": "m.room.history_visibility", "state_key": "",
             "content": {"history_visibility": "shared"}},
        ]
        if plan.get("encrypted", self._encrypted):
            initial_state.append({"type": "m.room.encryption", "state_key": "",
                                  "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
        config = {
            "preset": "private_chat",
            "visibility": "private",
            "name": plan["name"],
            "creation_content": {"m.federate": False},
            "initial_state": initial_state,
        }
        if plan.get("topic"):
            config["topic"] = plan["topic"]
        return config

    # ---- a group mark ----------------------------------------------------------

    async def apply_group(self, school: str, group_id: str, room_id: str | None,
                          power: PowerChanges) -> None:
        """Brings the group's room in line with the latest snapshot; the
        power-level changes go into `power` (one event per room per batch)."""
        plan = self._engine.group_plan(group_id)
        if plan is None or room_id is None:
            return
        state = plan["state"]
        archived = state == "archived"
        await self._apply_fields(room_id, plan)
        memberships = joined_or_invited(await self._actions.memberships(room_id))
        listed = {m["user_id"]: m for m in plan["members"]}
        empty = state == "deleted" or plan.get("remove_members_now", False)
        wanted = {} if empty else {u: m for u, m in listed.items() if m["member"]}
        levels: dict[str, int | None] = {}
        reasons: dict[str, Why] = {}
        steps: list[tuple[str, bool, Why, str | None]] = []
        for user_id, entry in wanted.items():
            level = entry.get("power_level")
            why = Why(school, _member_reason(plan, entry), group_id)
            levels[user_id] = level
            reasons[user_id] = why
            if memberships.get(user_id) != "join":
                steps.append((user_id, True, why, memberships.get(user_id)))
        for user_id, current in memberships.items():
            if user_id in wanted or user_id == self._actions.owner:
                continue
            if state != "deleted" and await self._actions.is_protected(user_id):
                continue
            if not empty and not plan["closed"] and user_id not in listed:
                continue  # a guest a moderator invited into an open group
            why = Why(school, _removal_reason(plan, listed.get(user_id)), group_id)
            steps.append((user_id, False, why, current))
            levels[user_id] = None
            reasons[user_id] = why

        errors: list[Exception] = []

        async def step(item: tuple[str, bool, Why, str | None]) -> None:
            user_id, member, why, current = item
            try:
                if member and await self._api.check_user_exists(user_id) is None:
                    levels.pop(user_id, None)
                    return  # marked again when the account is registered
                await self._actions.set_membership(room_id, user_id, member, why, current)
            except Exception as exc:  # noqa: BLE001 - the others go on; the mark retries
                errors.append(exc)

        await self._concurrently(step, steps, _MEMBER_CONCURRENCY)
        changes: dict[str, Any] = {"users": levels}
        current_pl = await self._actions.state_content(room_id, POWER_LEVELS) or {}
        if archived or empty:
            if current_pl.get("events_default") != ARCHIVED_EVENTS_DEFAULT:
                changes["events_default"] = ARCHIVED_EVENTS_DEFAULT
                self._actions.audit("room_archived", Why(school, f"the group is {state}", group_id),
                                    room_id)
        else:
            policy = await self._actions.state_content(room_id, self._actions.policy_key) or plan["policy"]
            patch = self._engine.power_levels_update(_without_group(policy), current_pl)
            if patch:
                changes.update(patch)
            if current_pl.get("events_default") == ARCHIVED_EVENTS_DEFAULT:
                self._actions.audit("room_reopened", Why(school, "the group is active again", group_id),
                                    room_id)
        power.add(room_id, changes, reasons)
        if errors:
            raise errors[0]
        self._schedule(plan, int(time.time() * 1000))

    async def _apply_fields(self, room_id: str, plan: dict) -> None:
        """The policy event, name and topic: applied where the school
        cloud's snapshot differs from the one last applied."""
        school, group_id = plan["school"], plan["group"]
        applied = await self._actions.state_content(room_id, (self._applied_type, ""))
        policy = await self._actions.state_content(room_id, self._actions.policy_key)
        snapshot = _snapshot(plan)
        want = dict(plan["policy"])
        if (applied is not None and policy is not None and applied.get("two_way") == plan["two_way"]
                and isinstance(policy.get("two_way"), bool)):
            want["two_way"] = policy["two_way"]  # a moderator's flip stands
        if policy != want:
            await self._actions.send_state(room_id, self._actions.policy_key[0], want)
            self._actions.audit("room_updated", Why(school, f"policy: two_way {want.get('two_way')}"
                                                    + ("" if policy else " (adopted)"), group_id),
                                room_id)
        for key, field, content_key in ((_NAME, "name", "name"), (_TOPIC, "topic", "topic")):
            value = plan.get(field) or ""
            if applied is not None and (applied.get(field) or "") == value:
                continue
            current = await self._actions.state_content(room_id, key)
            if (current or {}).get(content_key, "") != value:
                await self._actions.send_state(room_id, key[0], {content_key: value})
                self._actions.audit("room_updated", Why(school, f"{field}: {value}", group_id), room_id)
        if applied != snapshot:
            await self._actions.send_state(room_id, self._applied_type, snapshot)

    # ---- a user mark -----------------------------------------------------------

    async def apply_user(self, user_id: str, power: PowerChanges) -> None:
        """The user's memberships in the rooms of every group listing them
        (a user whom the roster no longer puts in an opted-in school leaves
        them all; the plan says so per member)."""
        if await self._api.check_user_exists(user_id) is None:
            return
        for group_id in self._engine.groups_of(user_id):
            plan = self._engine.group_plan(group_id)
            if plan is None:
                continue
            school = plan["school"]
            room_id = await self._in_thread(self._engine.reconcile_get_room, school,
                                            GROUP_PREFIX + group_id)
            if room_id is None:
                continue  # the group's own mark creates it
            entry = next((m for m in plan["members"] if m["user_id"] == user_id), None)
            if entry is None:
                continue
            empty = plan["state"] == "deleted" or plan.get("remove_members_now", False)
            member = entry["member"] and not empty
            why = Why(school, _member_reason(plan, entry) if member
                      else _removal_reason(plan, entry), group_id)
            await self._actions.set_membership(room_id, user_id, member, why)
            power.add(room_id, {"users": {user_id: entry.get("power_level") if member else None}},
                      {user_id: why})


def _snapshot(plan: dict) -> dict:
    return {"name": plan["name"], "topic": plan.get("topic") or "", "two_way": plan["two_way"]}


def _without_group(policy: dict) -> dict:
    return {key: value for key, value in policy.items() if key != "group"}


def _member_reason(plan: dict, entry: dict) -> str:
    return f"listed as {entry['role']} of {plan['kind']} {plan['name']!r} by the school cloud"


def _removal_reason(plan: dict, entry: dict | None) -> str:
    name = f"{plan['kind']} {plan['name']!r}"
    if plan["state"] == "deleted":
        return f"the {name} was deleted"
    if plan.get("remove_members_now"):
        return f"the {name} has been archived longer than groups.archive_retention_days"
    if entry is None:
        return f"no longer listed in the {name} by the school cloud"
    return f"listed in the {name}, but {entry.get('why') or 'not admitted'}"
