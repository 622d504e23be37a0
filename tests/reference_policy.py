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

ROOM_CALLBACKS = {"user_may_join_room", "user_may_invite", "check_event_for_spam"}


@dataclass
class ReferencePolicy:
    server_name: str
    schools: dict[str, dict] = field(default_factory=dict)  # id -> {"messenger": bool, "enforce": bool}
    service_users: frozenset[str] = frozenset()
    unlisted_allow: bool = False
    enforce: bool = True
    roster: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # user -> [(school, role)]

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

    def decide(
        self,
        callback: str,
        actor: str,
        target: str | None = None,
        room_id: str | None = None,
        room_known: bool = False,
        room_policy: Mapping | None = None,
        actor_admin: bool | None = None,
    ):
        """ALLOW, NEED_ROOM, NEED_ADMIN, or (rule, enforced, school)."""
        actor_local = self._is_local(actor)
        if actor_local and (actor in self.service_users or actor_admin is True):
            return ALLOW
        denial = None
        if actor_local:
            denial = self._standing(actor)
        if denial is None and target is not None and self._is_local(target) and target not in self.service_users:
            denial = self._standing(target)
        if denial is None and callback in ROOM_CALLBACKS and room_id is not None:
            if not room_known:
                return NEED_ROOM
            if room_policy:  # None or {} means unmanaged
                school = room_policy.get("school")
                school = school if isinstance(school, str) else None
                if school is None or not self.schools.get(school, {}).get("messenger", False):
                    denial = ("room_school_not_enabled", self._school_enforced(school), school)
        if denial is None:
            return ALLOW
        if actor_local and actor_admin is None:
            return NEED_ADMIN
        return denial
