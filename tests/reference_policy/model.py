"""The reference model's decisions (ReferencePolicy.decide): rules 1 to 5 and
the closed doors; groups.py, after_fact.py and shape.py are mixed in."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .after_fact import AfterTheFact
from .constants import (
    ALLOW, CREATOR_POWER, GUEST_ACCESS, HISTORY_VISIBILITY, JOIN_RULES, LEGACY_ROOM_VERSIONS, NEED_ADMIN,
    NEED_MEMBER_COUNT, NEED_MEMBERSHIP, NEED_ROOM, NEED_SHARED_ROOMS, POWER_LEVELS, REACTION, REDACTION,
    ROOM_CALLBACKS, SIGN_IN_CALLBACKS, SYNC_POWER_LEVELS, THIRD_PARTY_INVITE,
)
from .create_room import _initial_state, _is_upgrade, _state_key_is_empty, create_room_invitees
from .emoji import is_emoji_reaction
from .groups import GroupRules
from .shape import RoomShape

@dataclass
class ReferencePolicy(GroupRules, AfterTheFact, RoomShape):
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
    audit_readers: frozenset[str] = frozenset()
    # group id -> the group as the school cloud sent it (PUT /groups/{group})
    groups: dict[str, dict] = field(default_factory=dict)
    # The special rooms' owner; exempt like a service user. None = the default
    # "@school-policy:<server_name>".
    reconciler_user: str | None = None

    # The events after_event acted on: each is taken back once.
    acted: set[str] = field(default_factory=set)

    def __post_init__(self):
        if self.reconciler_user is None:
            self.reconciler_user = f"@school-policy:{self.server_name}"

    # ---- who is who

    def _is_local(self, user_id) -> bool:
        return isinstance(user_id, str) and ":" in user_id and user_id.split(":", 1)[1] == self.server_name

    def _is_service(self, user_id) -> bool:
        """A local service user or the reconciler user."""
        return self._is_local(user_id) and (user_id in self.service_users or user_id == self.reconciler_user)

    def _school_enforced(self, school_id: str | None) -> bool:
        school = self.schools.get(school_id) if school_id is not None else None
        return school.get("enforce", self.enforce) if school is not None else self.enforce

    def _opted_in(self, school_id) -> bool:
        return isinstance(school_id, str) and self.schools.get(school_id, {}).get("messenger", False)

    def _standing(self, user_id: str):
        """Rule 1: (rule, enforced, school) or None when the user may use the messenger."""
        memberships = self.roster.get(user_id)
        if not memberships:
            return None if self.unlisted_allow else ("not_on_roster", self.enforce, None)
        if any(self._opted_in(school) for school, _ in memberships):
            return None
        enforcing = [school for school, _ in memberships if self._school_enforced(school)]
        school = enforcing[0] if enforcing else memberships[0][0]
        return ("school_not_enabled", bool(enforcing), school)

    def _actor_context(self, actor):
        """(enforced, school) for denials about the actor: their first opted-in school."""
        if self._is_local(actor):
            for school, _role in self.roster.get(actor, []):
                if self._opted_in(school):
                    return self._school_enforced(school), school
        return self.enforce, None

    def _role_in(self, user, school):
        for s, role in self.roster.get(user, []):
            if s == school:
                return role
        return None

    def _may_create_group_rooms(self, user) -> bool:
        """room_creation of one of the user's opted-in schools lets them."""
        for school, role in self.roster.get(user, []):
            if not self._opted_in(school):
                continue
            creation = self.schools[school].get("room_creation", "teachers")
            if creation == "everyone" or (creation == "teachers" and role != "student"):
                return True
        return False

    # ---- power levels, as Synapse reads them in each room version

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

    @staticmethod
    def _is_creator(create_content, create_sender, user) -> bool:
        """In room versions other than the legacy ones the creator and the
        additional creators hold unlimited power."""
        if not isinstance(create_content, Mapping):
            return False
        version = create_content.get("room_version", "1")
        if version in LEGACY_ROOM_VERSIONS:
            return False
        if user == create_sender:
            return True
        extra = create_content.get("additional_creators")
        return isinstance(extra, (list, tuple)) and any(isinstance(u, str) and u == user for u in extra)

    def _actor_level(self, power_levels, actor, create_content=None, create_sender=None):
        if self._is_creator(create_content, create_sender, actor):
            return CREATOR_POWER
        if power_levels is None:
            return 0
        users = power_levels.get("users")
        if isinstance(users, Mapping) and actor in users:
            level = self._level(users[actor], None)
            if level is not None:
                return level
        return self._level(power_levels.get("users_default"), 0)

    def _levels_map(self, power_levels):
        users = power_levels.get("users") if power_levels is not None else None
        if not isinstance(users, Mapping):
            return {}
        return {k: self._level(v, "not a level") for k, v in users.items() if isinstance(k, str)}

    # ---- managed rooms: which policy event counts

    def _trusted(self, policy_sender, create_sender) -> bool:
        """A policy event counts when its sender is local and either it or
        the room's creator is a service user (or the reconciler user)."""
        return self._is_local(policy_sender) and (self._is_service(policy_sender) or self._is_service(create_sender))

    def _managed_policy(self, policy, policy_sender, create_sender):
        """The policy that makes the room managed, or None (unmanaged)."""
        if not policy or not self._trusted(policy_sender, create_sender):
            return None
        return policy

    @staticmethod
    def _one_way(policy) -> bool:
        return policy.get("kind") != "teachers" and policy.get("two_way") is not True

    def _qualifies(self, shared_room) -> bool:
        """Rule 3: a trusted managed room of an opted-in school (announcement
        rooms only while announcement_room is on)."""
        policy, policy_sender, create_sender = shared_room
        policy = self._managed_policy(policy, policy_sender, create_sender)
        if policy is None or not self._opted_in(policy.get("school")):
            return False
        if self._names_group(policy) and self._group_archived(policy):
            return False  # an archived group's room is shared by nobody
        return policy.get("kind") != "announcement" or self.schools[policy["school"]].get("announcement_room", False)

    def _policy_change_denied(self, room_policy, new_policy, power_levels, actor, create_content, create_sender) -> bool:
        if not room_policy or not new_policy:
            return True
        for key in ("school", "kind"):
            old, new = room_policy.get(key), new_policy.get(key)
            old = old if isinstance(old, str) else None
            new = new if isinstance(new, str) else None
            if old != new:
                return True
        if _group_text(room_policy) != _group_text(new_policy):
            return True  # the group is the school cloud's, as school and kind are
        if len(room_policy) != len(new_policy):
            return True
        if self._actor_level(power_levels, actor, create_content, create_sender) < self.moderator_level:
            return True
        # Moderators flip two_way only in rooms a service user created.
        return not self._is_service(create_sender)

    def _power_levels_change_denied(self, room_policy, current, new) -> bool:
        if self._levels_map(current) != self._levels_map(new):
            return True
        if current is not None and self._level(current.get("users_default"), 0) != self._level(new.get("users_default"), 0):
            return True
        return self._one_way(room_policy) and self._level(new.get("events_default"), 0) < self.moderator_level

    def _one_way_denied(self, event_type, state_key, content, redacts) -> bool:
        """Redactions and reactions with text, for a sender below the moderator level in a one-way room."""
        if event_type != REDACTION and event_type not in self.one_way_allowed_events:
            return True  # a
        if state_key is not None:
            return True  # b: the allow-listed level 0 applies to state events too
        if event_type == REDACTION:
            if not isinstance(content, Mapping):
                return True  # nothing readable: fail closed
            if any(key != "redacts" for key in content):
                return True  # c
            # Before room version 11 `redacts` is outside the content: one
            # inside it is text, unless it names the redacted event itself.
            return "redacts" in content and (redacts is None or content["redacts"] != redacts)
        if event_type == REACTION:
            return not is_emoji_reaction(content)  # d
        return False

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
            for event_type in (REDACTION, *self.one_way_allowed_events):
                if self._level(events.get(event_type), None) != 0:
                    return True
        return False

    # ---- the closed doors of a createRoom body

    def _create_room_door(self, body: Mapping):
        """The rule a createRoom body breaks by itself, or None."""
        initial = _initial_state(body)

        def has(event_type, test=lambda e: True):
            return any(e.get("type") == event_type and test(e) for e in initial)

        def content_of(e):
            c = e.get("content")
            return c if isinstance(c, Mapping) else {}

        if has(self.policy_event_type):
            return "policy_event_locked"
        if (
            body.get("preset") == "public_chat"
            or body.get("visibility") == "public"
            or has(JOIN_RULES, lambda e: _state_key_is_empty(e) and content_of(e).get("join_rule") != "invite")
            or has(HISTORY_VISIBILITY,
                   lambda e: _state_key_is_empty(e) and content_of(e).get("history_visibility") == "world_readable")
        ):
            return "public_room_forbidden"
        if has(GUEST_ACCESS, lambda e: _state_key_is_empty(e) and content_of(e).get("guest_access") == "can_join"):
            return "guest_access_forbidden"
        if body.get("room_alias_name") is not None:
            return "alias_forbidden"
        third = body.get("invite_3pid")
        if (isinstance(third, (list, tuple)) and len(third) > 0) or has(THIRD_PARTY_INVITE):
            return "third_party_invite_forbidden"
        return None

    # ---- join rules, world-readable history, guest access, third-party invites: state events that open a room

    @staticmethod
    def _opening_event(event_type, state_key, content):
        if event_type == THIRD_PARTY_INVITE and state_key is not None:
            # A planted 3PID invite (docs/rules.md): its key lets whoever signs
            # with it join through /join's third_party_signed.
            return "third_party_invite_forbidden"
        if state_key != "":
            return None
        content = content if isinstance(content, Mapping) else {}
        if event_type == JOIN_RULES and content.get("join_rule") != "invite":
            return "public_room_forbidden"  # a join rule other than invite
        if event_type == HISTORY_VISIBILITY and content.get("history_visibility") == "world_readable":
            return "public_room_forbidden"  # world-readable history
        if event_type == GUEST_ACCESS and content.get("guest_access") == "can_join":
            return "guest_access_forbidden"
        return None

    # ---- the decision

    def create_room_invitees(self, body, creator: str | None = None) -> list[str]:
        return create_room_invitees(body, creator)

    def decide(
        self,
        callback: str,
        actor: str,
        target: str | None = None,
        room_id: str | None = None,
        event_type: str | None = None,
        state_key: str | None = None,
        content=None,
        room: tuple | None = None,
        actor_admin: bool | None = None,
        is_invited: bool | None = None,
        shared_rooms: list | None = None,
        actor_membership: str | None = None,
        member_count: int | None = None,
        redacts: str | None = None,
    ):
        """ALLOW, a NEED_* fact, SYNC_POWER_LEVELS, or (rule, enforced, school).
        `room` may end with the policy event's id; `redacts` is the event a
        redaction redacts."""
        is_event = callback == "check_event_for_spam"
        is_policy_event = is_event and event_type == self.policy_event_type and state_key == ""
        is_pl_event = is_event and event_type == POWER_LEVELS and state_key == ""
        actor_local = self._is_local(actor)
        policy_event_id = None
        if room is not None:
            policy, policy_sender, power_levels, create_content, create_sender = room[:5]
            if len(room) > 5:
                policy_event_id = room[5]
        else:
            policy = policy_sender = power_levels = create_content = create_sender = None

        def sync_or_allow():
            if is_policy_event and content is not None and self._expected_patch(content, power_levels):
                return SYNC_POWER_LEVELS
            return ALLOW

        def as_actor(rule):
            enforced, school = self._actor_context(actor)
            return (rule, enforced, school)

        def upgrade_check(service_user):
            """A room upgrade (threat model R16), for every upgrader: the
            copied state must close guest access, and only a service user
            upgrades a managed room (the policy event is not copied)."""
            if callback != "user_may_create_room" or not _is_upgrade(content):
                return None, None
            if not any(e.get("type") == GUEST_ACCESS and _state_key_is_empty(e) for e in _initial_state(content)):
                return as_actor("guest_access_forbidden"), None
            if service_user or room_id is None:
                return None, None
            if room is None:
                return None, NEED_ROOM
            managed = self._managed_policy(policy, policy_sender, create_sender)
            if managed is None:
                return None, None
            school = managed.get("school")
            school = school if isinstance(school, str) else None
            return ("policy_event_locked", self._school_enforced(school), school), None

        # 1. Exempt: local service users, the reconciler user, server admins.
        if actor_local and (self._is_service(actor) or actor_admin is True):
            denial, need = upgrade_check(self._is_service(actor))
            if denial is not None or need is not None:
                return denial if denial is not None else need
            if is_policy_event and room is None:
                return NEED_ROOM
            return sync_or_allow()

        def denial_or_need():
            """Steps 2 to 6: (denial, None), (None, NEED_*), or (None, None) to allow."""
            signs_in = callback in SIGN_IN_CALLBACKS
            # An account that no identity provider asked for (the admin API,
            # JWT): the roster may come before or after it.
            if callback == "check_registration_for_spam" and target is None:
                return None, None
            # 2. Rule 1: the actor (but an audit reader signing in), then a
            # local target who is no service user (a sign-in has none).
            if actor_local and not (signs_in and actor in self.audit_readers):
                denial = self._standing(actor)
                if denial is not None:
                    return denial, None
            if not signs_in and target is not None and self._is_local(target) and not self._is_service(target):
                denial = self._standing(target)
                if denial is not None:
                    return denial, None

            def shared_room_check():
                if target is None or self._is_service(target) or target == actor:
                    return None, None
                if shared_rooms is None:
                    return None, NEED_SHARED_ROOMS
                # Managed rooms hold local users only (threat model R23).
                if not actor_local or not self._is_local(target):
                    return as_actor("no_shared_room"), None
                if any(self._qualifies(r) for r in shared_rooms):
                    return None, None
                return as_actor("no_shared_room"), None

            # 3. Per callback.
            if callback == "user_may_publish_room":
                return as_actor("publish_forbidden"), None
            if callback == "user_may_create_room_alias":
                return as_actor("alias_forbidden"), None
            if callback == "user_may_send_3pid_invite":
                return as_actor("third_party_invite_forbidden"), None
            if callback == "federated_user_may_invite":
                return (as_actor("federation_forbidden") if not actor_local else None), None
            if callback == "user_may_create_room":
                if not isinstance(content, Mapping):
                    return None, None
                rule = self._create_room_door(content)  # the closed doors
                if rule == "policy_event_locked":
                    return (rule, self.enforce, None), None
                if rule is not None:
                    return as_actor(rule), None
                denial, need = upgrade_check(False)
                if denial is not None or need is not None:
                    return denial, need
                if target is not None:  # asked once per invitee
                    return shared_room_check()
                invitees = create_room_invitees(content, actor)
                direct = content.get("is_direct") is True and len(invitees) == 1
                if not direct and not self._may_create_group_rooms(actor):
                    return as_actor("room_creation_forbidden"), None
                return None, None
            if callback == "check_username_for_spam":
                return shared_room_check()
            if is_event and actor_local:
                rule = self._opening_event(event_type, state_key, content)
                if rule is not None:
                    return as_actor(rule), None

            # 4./5. Room rules.
            if callback not in ROOM_CALLBACKS:
                return None, None
            managed = None
            if room_id is not None:
                if room is None:
                    return None, NEED_ROOM
                if callback == "user_may_join_room" and actor_local and not self._is_local(create_sender):
                    return as_actor("federation_forbidden"), None  # a room of another server
                managed = self._managed_policy(policy, policy_sender, create_sender)
                if managed is None and is_policy_event:
                    return ("policy_event_locked", self.enforce, None), None
                if managed is not None:
                    room_denial = self._managed_room_rule(
                        callback, actor, actor_local, target, event_type, state_key, content, managed,
                        power_levels, create_content, create_sender, is_invited, as_actor,
                        policy_event_id, redacts,
                    )
                    if room_denial is not None:
                        if callback == "user_may_join_room" and room_denial[0] in ("join_forbidden", "staff_only",
                                                                                  "group_closed"):
                            # A join -> join (profile change) goes through.
                            if actor_membership is None:
                                return None, NEED_MEMBERSHIP
                            if actor_membership == "join":
                                return None, None
                        return room_denial, None

            # A remote member of an unmanaged room made here opens no door
            # either (threat model R13).
            if is_event and not actor_local and room_id is not None and managed is None \
                    and self._is_local(create_sender):
                rule = self._opening_event(event_type, state_key, content)
                if rule is not None:
                    return as_actor(rule), None

            # 6. Invites by a local actor: rule 3, then "a direct chat holds two".
            if callback == "user_may_invite" and actor_local:
                denial, need = shared_room_check()
                if denial is not None or need is not None:
                    return denial, need
                if (
                    managed is None
                    and self._is_local(create_sender)
                    and not self._is_service(create_sender)
                    and not self._may_create_group_rooms(create_sender)
                ):
                    if member_count is None:
                        return None, NEED_MEMBER_COUNT
                    if member_count >= 2:
                        return as_actor("room_creation_forbidden"), None
            return None, None

        denial, need = denial_or_need()
        if need is not None:
            return need
        if denial is None:
            return sync_or_allow()
        # 7. Ask whether the actor is a server admin only right before a denial.
        if actor_local and actor_admin is None:
            return NEED_ADMIN
        return denial

    def _managed_room_rule(self, callback, actor, actor_local, target, event_type, state_key, content, policy,
                           power_levels, create_content, create_sender, is_invited, as_actor,
                           policy_event_id=None, redacts=None):
        """Rules 1 (frozen room), 2, 4/5 and the closed doors of a managed room
        (steps 4 and 5); the denial or None."""
        school = policy.get("school")
        school = school if isinstance(school, str) else None
        enforced = self._school_enforced(school)
        if not self._opted_in(school):
            return ("room_school_not_enabled", enforced, school)
        if self._names_group(policy) and self._group_archived(policy):
            return ("group_archived", enforced, school)  # read-only: any event, invite or join
        if callback == "check_event_for_spam" and event_type is not None:
            if event_type == REDACTION and redacts is not None and redacts == policy_event_id:
                # A redacted policy event is an empty one: the room unmanaged.
                return ("policy_event_locked", enforced, school)
            if event_type == self.policy_event_type and state_key == "":
                if self._policy_change_denied(policy, content, power_levels, actor, create_content, create_sender):
                    return ("policy_event_locked", enforced, school)
            elif event_type == POWER_LEVELS and state_key == "" and self._power_levels_change_denied(
                policy, power_levels, content or {}
            ):
                return ("power_levels_locked", enforced, school)
            # A power-levels change the lock lets through is still an event
            # like any other in a one-way room (rules.md, rule 2: state events).
            elif (
                self._one_way(policy)
                and self._actor_level(power_levels, actor, create_content, create_sender) < self.moderator_level
                and self._one_way_denied(event_type, state_key, content, redacts)
            ):
                return ("one_way", enforced, school)
        if callback == "check_event_for_spam" and not actor_local:
            return ("federation_forbidden", enforced, school)
        teachers_room = policy.get("kind") == "teachers"
        if callback == "user_may_join_room":
            role = self._role_in(actor, school)
            if is_invited is True and role is not None:
                if teachers_room and role not in ("teacher", "admin"):
                    return ("staff_only", enforced, school)
            elif self._group_admits(policy, actor, is_invited):
                pass  # a listed member, or an open group's guest, of another school
            elif self._group_closed_to_uninvited(policy, is_invited):
                return ("group_closed", enforced, school)
            else:
                return as_actor("join_forbidden")
        if callback == "user_may_invite" and self._names_group(policy) and self._group_invite_denied(
            policy, self._actor_level(power_levels, actor, create_content, create_sender), target
        ):
            return ("group_closed", enforced, school)
        if callback == "user_may_invite" and teachers_room and target is not None and not self._is_service(target):
            # Service users (the room's owner among them) may be invited, as they
            # are exempt from rule 1 as invitees.
            if self._role_in(target, school) not in ("teacher", "admin"):
                return ("staff_only", enforced, school)
        if (
            callback == "user_may_invite"
            and self._one_way(policy)
            and self._actor_level(power_levels, actor, create_content, create_sender) < self.moderator_level
        ):
            # Rule 2: below the moderator level nobody invites into a one-way room.
            return ("one_way", enforced, school)
        return None


def _group_text(policy):
    """The policy's group as the engine compares it: None when absent, ""
    when not a string it can read."""
    if "group" not in policy:
        return None
    group = policy["group"]
    if not isinstance(group, str):
        return ""
    try:
        group.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return group
