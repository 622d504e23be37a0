"""POST /groups/{group}/adopt: the module takes over a room an older sync
made for the group.

The module can act in a room only through a local member with enough power
there: the room's creator (in room versions where creators have unlimited
power, room version 12 on, they are absent from power_levels) or a service
user in the room. Through them the owner account is invited, joins and is
given full power (at least every other member's level, so that it can
lower and remove them); join rules and guest access are closed. Then the
room is recorded as the group's room and the group is marked, so that the
reconciler gives it the policy event, the power levels and the group's
members. What stops an adoption is answered as an AdoptError (status and
why), never half done: nothing is changed before every check has passed.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Collection

from synapse.module_api import ModuleApi
from synapse.util.frozenutils import unfreeze

from synapse_school_policy import synapse_compat
from synapse_school_policy.metrics import GROUP_ACTIONS
from synapse_school_policy.room_actions import CREATE, GROUP_PREFIX, MEMBER, POWER_LEVELS, TOMBSTONE, Why

logger = logging.getLogger("synapse_school_policy.adopt")

_JOIN_RULES = ("m.room.join_rules", "")
_GUEST_ACCESS = ("m.room.guest_access", "")
FULL_POWER = 100


class AdoptError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Adopter:
    def __init__(self, api: ModuleApi, engine: Any, service_users: Collection[str],
                 in_thread: Callable[..., Any]):
        self._api = api
        self._engine = engine
        self._owner: str = engine.reconciler_user
        self._service_users = frozenset(service_users)
        self._policy_key = (engine.policy_event_type, "")
        self._in_thread = in_thread

    async def adopt(self, group_id: str, room_id: str, caller: str) -> dict:
        group = self._engine.group_get(group_id)
        if group is None:
            raise AdoptError(404, f"group {group_id} is unknown; PUT /groups/{group_id} first")
        school = group["school"]
        if group.get("state") == "deleted":
            raise AdoptError(409, f"group {group_id} is deleted")
        recorded = group.get("room_id")
        if recorded == room_id:
            return {"group": group_id, "room_id": room_id, "adopted": False,
                    "message": "the room is the group's room already"}
        if recorded is not None and not await self._made_by_module(recorded):
            raise AdoptError(409, f"group {group_id} has a room already: {recorded}")
        # From room version 12 on a room id names no server ("!opaque").
        if ":" in room_id and room_id.partition(":")[2] != self._api.server_name:
            raise AdoptError(400, f"room_id: {room_id} is not a room of this server")
        state = await self._api.get_room_state(
            room_id, [CREATE, POWER_LEVELS, self._policy_key, (MEMBER, None)])
        create = state.get(CREATE)
        if create is None:
            raise AdoptError(404, f"room_id: this server knows no room {room_id}")
        policy = state.get(self._policy_key)
        if policy is not None:
            named = (policy.content.get("school"), policy.content.get("group"))
            if named[0] != school or named[1] not in (None, group_id):
                raise AdoptError(409, f"the room's policy event names school {named[0]} and group "
                                      f"{named[1]}, not {school} and {group_id}")
        joined = {key[1] for key, event in state.items()
                  if key[0] == MEMBER and event.content.get("membership") == "join"}
        levels = unfreeze(state[POWER_LEVELS].content) if POWER_LEVELS in state else {}
        creators = _creators(create)
        unlimited = synapse_compat.creators_have_unlimited_power(create.content.get("room_version", "1"))
        owner_level = max([FULL_POWER, *(v for v in (levels.get("users") or {}).values()
                                         if isinstance(v, int))])
        actor, actor_level = self._actor(creators, unlimited, joined, levels, owner_level)
        owner_in = self._owner in joined
        if owner_in and (self._owner in creators and unlimited
                         or (levels.get("users") or {}).get(self._owner, 0) >= owner_level):
            actor = self._owner  # nothing to bring: the owner is in with full power
        if actor != self._owner:
            if not owner_in:
                await synapse_compat.update_membership(self._api, actor, self._owner, room_id, "invite")
                await synapse_compat.update_membership(self._api, self._owner, self._owner, room_id, "join")
            if not (self._owner in creators and unlimited):
                users = dict(levels.get("users") or {})
                users[self._owner] = owner_level if actor_level is None else min(owner_level, actor_level)
                await self._send(actor, room_id, POWER_LEVELS[0], {**levels, "users": users})
        # Closed as the module's own group rooms are (federation cannot be
        # turned off after creation: m.federate is the create event's).
        if (state_content := await self._content(room_id, _JOIN_RULES)).get("join_rule") != "invite":
            await self._send(self._owner, room_id, _JOIN_RULES[0], {**state_content, "join_rule": "invite"})
        if (await self._content(room_id, _GUEST_ACCESS)).get("guest_access") != "forbidden":
            await self._send(self._owner, room_id, _GUEST_ACCESS[0], {"guest_access": "forbidden"})
        key = GROUP_PREFIX + group_id
        await self._in_thread(self._engine.reconcile_set_room, school, key, room_id)
        await self._in_thread(self._engine.reconcile_mark, school, [key])
        why = Why(school, f"adopted at the request of {caller}, through {actor}", group_id)
        self._engine.audit_action({"action": "room_adopted", "actor": caller, "room_id": room_id,
                                   "school": why.school, "group": group_id, "reason": why.reason})
        if recorded is not None:
            # The room the module had made for the group before the adoption
            # (the group was sent first): emptied and pointed at this one.
            await retire_room(self._api, self._engine, recorded, room_id,
                              Why(school, f"replaced by the adopted room {room_id}", group_id))
        GROUP_ACTIONS.labels(action="room_adopted").inc()
        logger.info("synapse_school_policy: adopted %s as the room of group %s", room_id, group_id)
        return {"group": group_id, "room_id": room_id, "adopted": True, "through": actor}

    def _actor(self, creators: list[str], unlimited: bool, joined: set[str], levels: dict,
               owner_level: int) -> tuple[str, int | None]:
        """The local member who can bring the owner in with full power, and
        their level (None: unlimited); AdoptError saying why nobody can."""
        users = levels.get("users") or {}
        users_default = levels.get("users_default", 0)
        invite_level = levels.get("invite", 0)
        pl_level = (levels.get("events") or {}).get(POWER_LEVELS[0], levels.get("state_default", 50))
        tried = []
        candidates = [*creators, *sorted(self._service_users)]
        for user in dict.fromkeys(candidates):
            if user.partition(":")[2] != self._api.server_name:
                continue
            if user not in joined:
                tried.append(f"{user} is not in the room")
                continue
            if user in creators and unlimited:
                return user, None
            level = users.get(user, users_default)
            if not isinstance(level, int) or level < max(invite_level, pl_level):
                tried.append(f"{user} has power level {level}, below what inviting ({invite_level}) "
                             f"and changing power levels ({pl_level}) need")
                continue
            if level < owner_level:
                tried.append(f"{user} has power level {level}, below the highest in the room "
                             f"({owner_level}), which the owner account needs")
                continue
            return user, level
        if self._owner in joined and users.get(self._owner, users_default) >= owner_level:
            return self._owner, users.get(self._owner)
        raise AdoptError(409, "no local member of the room can bring the module's account "
                              f"{self._owner} in with full power: "
                              + ("; ".join(tried) if tried else "neither the room's creator nor a "
                                 "service user is a local member of it")
                              + ". Invite a service user with the highest power level, then adopt again")

    async def _made_by_module(self, room_id: str) -> bool:
        """True for a room the module's account created (the group's room
        made before the adoption was asked for): the adopted room replaces it."""
        try:
            state = await self._api.get_room_state(room_id, [CREATE])
        except Exception:  # noqa: BLE001 - a room this server lost counts as not the module's
            return False
        create = state.get(CREATE)
        return create is not None and create.sender == self._owner

    async def _content(self, room_id: str, key: tuple[str, str]) -> dict:
        state = await self._api.get_room_state(room_id, [key])
        event = state.get(key)
        return unfreeze(event.content) if event is not None else {}

    async def _send(self, sender: str, room_id: str, event_type: str, content: dict) -> None:
        await self._api.create_and_send_event_into_room(
            {"type": event_type, "state_key": "", "room_id": room_id, "sender": sender, "content": content})


async def retire_room(api: ModuleApi, engine: Any, room_id: str, replacement: str, why: Why) -> None:
    """Empties a room the module made for a group whose room is now another
    one, and points it at that one (m.room.tombstone, which clients show as
    "this room has been replaced"); the history stays. Audited as
    room_replaced and member_removed."""
    owner = engine.reconciler_user
    state = await api.get_room_state(room_id, [(MEMBER, None)])
    for key, event in state.items():
        membership = event.content.get("membership")
        if key[1] == owner or membership not in ("join", "invite"):
            continue
        await synapse_compat.update_membership(api, owner, key[1], room_id, "leave")
        engine.audit_action({"action": "member_removed", "target": key[1], "room_id": room_id,
                             "school": why.school, "group": why.group, "reason": why.reason})
    await api.create_and_send_event_into_room(
        {"type": TOMBSTONE[0], "state_key": "", "room_id": room_id, "sender": owner,
         "content": {"body": "This group has moved to another room.", "replacement_room": replacement}})
    engine.audit_action({"action": "room_replaced", "room_id": room_id, "school": why.school,
                         "group": why.group, "reason": why.reason})
    GROUP_ACTIONS.labels(action="room_replaced").inc()


def _creators(create: Any) -> list[str]:
    extra = create.content.get("additional_creators")
    return [create.sender, *(u for u in extra if isinstance(u, str))] if isinstance(extra, list) else [create.sender]
