"""A pure-Python reference model of the engine's decisions.

It is written from docs/rules.md, not from the C code, so that the
differential tests compare two independent readings of the rules. It also
serves as the "equivalent pure-Python policy" the benchmarks race the C
engine against. Nothing in the module imports it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

ALLOW = None
NEED_ROOM = "need_room"
NEED_ADMIN = "need_admin"
NEED_SHARED_ROOMS = "need_shared_rooms"
SYNC_POWER_LEVELS = "sync_power_levels"
POWER_LEVELS = "m.room.power_levels"

ROOM_CALLBACKS = {"user_may_join_room", "user_may_invite", "check_event_for_spam"}


@dataclass
class ReferencePolicy:
    server_name: str
    # id -> {"messenger": bool, "enforce": bool, "announcement_room": bool, "room_creation": str}
    schools: dict[str, dict] = field(default_factory=dict)
    service_users: frozenset[str] = frozenset()
    unlisted_allow: bool = False
    enforce: bool = True
    roster: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # user -> [(school, role)]
    policy_event_type: str = "org.synapse_school_policy.room"
    moderator_level: int = 50
    one_way_allowed_events: frozenset[str] = frozenset()

    def _is_local(self, user_id: str) -> bool:
        return user_id.split(":", 1)[1] == self.server_name if ":" in user_id else False

    def _school_enforced(self, school_id: str | None) -> bool:
        school = self.schools.get(school_id) if school_id is not None else None
        return school.get("enforce", self.enforce) if school is not None else self.enforce

    def _standing(self, user_id: str):
        """(rule, enforced, school) or None when the user may use the messenger."""
        memberships = self.roster.get(user_id)
        if not memberships:
            return None if self.unlisted_allow else ("not_on_roster", self.enforce, None)
        if any(self.schools.get(school, {}).get("messenger", False) for school, _ in memberships):
            return None
        enforcing = [school for school, _ in memberships if self._school_enforced(school)]
        school = enforcing[0] if enforcing else memberships[0][0]
        return ("school_not_enabled", bool(enforcing), school)

    @staticmethod
    def _level(value, default):
        if isinstance(value, bool):
            return default
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value, 10)
            except ValueError:
                return default
        return default

    def _actor_level(self, power_levels, actor):
        if power_levels is None:
            return 0
        users = power_levels.get("users")
        if isinstance(users, Mapping) and actor in users:
            level = self._level(users[actor], None)
            if level is not None:
                return level
        return self._level(power_levels.get("users_default"), 0)

    @staticmethod
    def _one_way(policy) -> bool:
        return policy.get("kind") != "teachers" and policy.get("two_way") is not True

    def _levels_map(self, power_levels):
        users = power_levels.get("users") if power_levels is not None else None
        if not isinstance(users, Mapping):
            return {}
        return {k: self._level(v, "not a level") for k, v in users.items() if isinstance(k, str)}

    def _policy_change_denied(self, room_policy, new_policy, power_levels, actor) -> bool:
        if not room_policy or not new_policy:
            return True
        for key in ("school", "kind"):
            old, new = room_policy.get(key), new_policy.get(key)
            old = old if isinstance(old, str) else None
            new = new if isinstance(new, str) else None
            if old != new:
                return True
        if len(room_policy) != len(new_policy):
            return True
        return self._actor_level(power_levels, actor) < self.moderator_level

    def _power_levels_change_denied(self, room_policy, current, new) -> bool:
        if self._levels_map(current) != self._levels_map(new):
            return True
        if current is not None and self._level(current.get("users_default"), 0) != self._level(new.get("users_default"), 0):
            return True
        return self._one_way(room_policy) and self._level(new.get("events_default"), 0) < self.moderator_level

    def _expected_patch(self, policy, power_levels):
        if not policy:
            return False
        one_way = self._one_way(policy)
        wanted = self.moderator_level if one_way else 0
        if power_levels is None or self._level(power_levels.get("events_default"), 0) != wanted:
            return True
        if one_way:
            events = power_levels.get("events")
            events = events if isinstance(events, Mapping) else {}
            for event_type in ("m.room.redaction", *self.one_way_allowed_events):
                if self._level(events.get(event_type), None) != 0:
                    return True
        return False

    def _actor_context(self, actor, actor_local):
        """(enforced, school) for rule-3 denials: the actor's first opted-in school."""
        if actor_local:
            for school, _role in self.roster.get(actor, []):
                settings = self.schools.get(school)
                if settings is not None and settings.get("messenger", False):
                    return settings.get("enforce", self.enforce), school
        return self.enforce, None

    def _qualifies(self, policy) -> bool:
        if not policy or not isinstance(policy.get("school"), str):
            return False
        settings = self.schools.get(policy["school"])
        if settings is None or not settings.get("messenger", False):
            return False
        return policy.get("kind") != "announcement" or settings.get("announcement_room", False)

    def _may_create_group_rooms(self, actor) -> bool:
        for school, role in self.roster.get(actor, []):
            settings = self.schools.get(school)
            if settings is None or not settings.get("messenger", False):
                continue
            creation = settings.get("room_creation", "teachers")
            if creation == "everyone" or (creation == "teachers" and role != "student"):
                return True
        return False

    def decide(
        self,
        callback: str,
        actor: str,
        target: str | None = None,
        room_id: str | None = None,
        room_known: bool = False,
        room_policy: Mapping | None = None,
        actor_admin: bool | None = None,
        event_type: str | None = None,
        state_key: str | None = None,
        content: Mapping | None = None,
        power_levels: Mapping | None = None,
        is_invited: bool | None = None,
        shared_rooms: list | None = None,
    ):
        """ALLOW, NEED_ROOM, NEED_ADMIN, NEED_SHARED_ROOMS, SYNC_POWER_LEVELS, or
        (rule, enforced, school)."""
        is_policy_event = callback == "check_event_for_spam" and event_type == self.policy_event_type and state_key == ""
        is_pl_event = callback == "check_event_for_spam" and event_type == POWER_LEVELS and state_key == ""
        actor_local = self._is_local(actor)

        def sync_or_allow():
            if is_policy_event and content is not None and self._expected_patch(content, power_levels if room_known else None):
                return SYNC_POWER_LEVELS
            return ALLOW

        if actor_local and (actor in self.service_users or actor_admin is True):
            if is_policy_event and not room_known:
                return NEED_ROOM
            return sync_or_allow()
        denial = None
        need = None

        def as_actor(rule):
            enforced, school = self._actor_context(actor, actor_local)
            return (rule, enforced, school)

        def shared_room_check():
            nonlocal need
            if target is None or target in self.service_users or target == actor:
                return None
            if shared_rooms is None:
                need = NEED_SHARED_ROOMS
                return None
            if any(self._qualifies(room) for room in shared_rooms):
                return None
            return as_actor("no_shared_room")

        if actor_local:
            denial = self._standing(actor)
        if denial is None and target is not None and self._is_local(target) and target not in self.service_users:
            denial = self._standing(target)
        if denial is None:
            if callback == "user_may_publish_room":
                denial = as_actor("publish_forbidden")
            elif callback == "user_may_create_room_alias":
                denial = as_actor("alias_forbidden")
            elif callback == "user_may_send_3pid_invite":
                denial = as_actor("third_party_invite_forbidden")
            elif callback == "federated_user_may_invite":
                denial = as_actor("federation_forbidden") if not actor_local else None
            elif callback == "user_may_create_room":
                body = content if isinstance(content, Mapping) else {}
                if body is not content or content is None:
                    body = None
                if body is not None:
                    initial = [e for e in (body.get("initial_state") or []) if isinstance(e, Mapping)]

                    def initial_sets(event_type, key=None, value=None):
                        for e in initial:
                            if e.get("type") != event_type:
                                continue
                            c = e.get("content")
                            if key is None or (isinstance(c, Mapping) and c.get(key) == value):
                                return True
                        return False

                    invites = body.get("invite")
                    n_invites = len(invites) if isinstance(invites, (list, tuple)) else 0
                    third = body.get("invite_3pid")
                    if initial_sets(self.policy_event_type):
                        denial = ("policy_event_locked", self.enforce, None)
                    elif body.get("preset") == "public_chat" or body.get("visibility") == "public" or initial_sets("m.room.join_rules", "join_rule", "public"):
                        denial = as_actor("public_room_forbidden")
                    elif initial_sets("m.room.guest_access", "guest_access", "can_join"):
                        denial = as_actor("guest_access_forbidden")
                    elif body.get("room_alias_name") is not None:
                        denial = as_actor("alias_forbidden")
                    elif isinstance(third, (list, tuple)) and len(third) > 0:
                        denial = as_actor("third_party_invite_forbidden")
                    elif target is not None:
                        denial = shared_room_check()
                    elif not (body.get("is_direct") is True and n_invites == 1) and not self._may_create_group_rooms(actor):
                        denial = as_actor("room_creation_forbidden")
            elif callback == "check_username_for_spam":
                denial = shared_room_check()
            elif callback == "check_event_for_spam" and actor_local and state_key == "" and isinstance(content, Mapping):
                if event_type == "m.room.join_rules" and content.get("join_rule") == "public":
                    denial = as_actor("public_room_forbidden")
                elif event_type == "m.room.guest_access" and content.get("guest_access") == "can_join":
                    denial = as_actor("guest_access_forbidden")
        if need is not None:
            return need
        if denial is None and callback in ROOM_CALLBACKS and room_id is not None:
            if not room_known:
                return NEED_ROOM
            if not room_policy:  # None or {} means unmanaged
                if is_policy_event:
                    denial = ("policy_event_locked", self.enforce, None)
            else:
                school = room_policy.get("school")
                school = school if isinstance(school, str) else None
                enforced = self._school_enforced(school)
                if school is None or not self.schools.get(school, {}).get("messenger", False):
                    denial = ("room_school_not_enabled", enforced, school)
                elif callback == "check_event_for_spam" and event_type is not None:
                    if is_policy_event:
                        if self._policy_change_denied(room_policy, content, power_levels, actor):
                            denial = ("policy_event_locked", enforced, school)
                    elif is_pl_event and self._power_levels_change_denied(room_policy, power_levels, content or {}):
                        denial = ("power_levels_locked", enforced, school)
                    elif (
                        self._one_way(room_policy)
                        and self._actor_level(power_levels, actor) < self.moderator_level
                        and event_type != "m.room.redaction"
                        and event_type not in self.one_way_allowed_events
                    ):
                        denial = ("one_way", enforced, school)
                if denial is None and not actor_local and callback == "check_event_for_spam":
                    denial = ("federation_forbidden", enforced, school)
                if denial is None and callback == "user_may_join_room":
                    in_school = any(s == school for s, _ in self.roster.get(actor, []))
                    if is_invited is not True or not in_school:
                        denial = as_actor("join_forbidden")
        if denial is None and callback == "user_may_invite" and actor_local:
            denial = shared_room_check()
            if need is not None:
                return need
        if denial is None:
            return sync_or_allow()
        if actor_local and actor_admin is None:
            return NEED_ADMIN
        return denial
