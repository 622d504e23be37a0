"""A pure-Python reference model of the engine's decisions.

It is written from docs/rules.md, docs/special-rooms.md and
docs/threat-model.md (every door and its guard), not from the C code, so
that the differential tests compare two independent readings of the rules.
It also serves as the "equivalent pure-Python policy" the benchmarks race
the C engine against. Nothing in the module imports it.

decide() mirrors the binding's ``Engine.decide``:

    decide(callback, actor, target, room_id, event_type, state_key, content,
           room, actor_admin, is_invited, shared_rooms, actor_membership,
           member_count)

with the callback given by name and ``actor_admin`` as None / False / True
(the binding's FACT_UNKNOWN / FACT_NO / FACT_YES). A fact given as None is
"not known yet": the model answers NEED_* when it needs it.

- ``room``: None, or the 5-tuple (policy content, policy sender, power levels
  content, m.room.create content, m.room.create sender), each possibly None.
- ``shared_rooms``: None, or a list of 3-tuples (policy content, policy
  sender, m.room.create sender), one per room actor and target share.
- ``actor_membership``: the actor's membership in the room ("" = none).
- ``member_count``: users with membership join or invite in the room.

Answers: ALLOW (None), one of the NEED_* strings, SYNC_POWER_LEVELS, or a
denial (rule, enforced, school) with school None when there is none.

room_shape(request) mirrors ``Engine.room_shape``: the JSON Patch "add"
operations on_create_room applies to a createRoom request (docs/rules.md,
"How new rooms are shaped").

after_event(event, state, profile, sender_admin) mirrors
``Engine.after_event``: what the module takes back after the fact
(docs/rules.md, "After the fact"). ``event`` and the values of ``state``
are objects with Synapse's event attributes (type, sender, room_id,
event_id, content, is_state(), get_state_key(), internal_metadata with
is_outlier() and stream_ordering). Answers: None, NEED_PROFILE, NEED_ADMIN,
or (kind, rule, enforced, school, undone event id, room id, user id, sender,
state) with school None when there is none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

ALLOW = None
NEED_ROOM = "need_room"
NEED_ADMIN = "need_admin"
NEED_SHARED_ROOMS = "need_shared_rooms"
NEED_MEMBERSHIP = "need_membership"
NEED_MEMBER_COUNT = "need_member_count"
SYNC_POWER_LEVELS = "sync_power_levels"
NEED_PROFILE = "need_profile"

POWER_LEVELS = "m.room.power_levels"
CREATE = "m.room.create"
TOMBSTONE = "m.room.tombstone"
JOIN_RULES = "m.room.join_rules"
HISTORY_VISIBILITY = "m.room.history_visibility"
GUEST_ACCESS = "m.room.guest_access"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
MEMBER = "m.room.member"
REDACTION = "m.room.redaction"
REACTION = "m.reaction"

ROOM_CALLBACKS = {"user_may_join_room", "user_may_invite", "check_event_for_spam"}
# Signing in and using a token (docs/sign-in.md): their target is the
# identity provider's id or None, never a user; audit readers pass rule 1 here.
SIGN_IN_CALLBACKS = {"check_login_for_spam", "on_user_login", "check_registration_for_spam", "is_user_expired"}

# Power as Synapse sees it: the room versions in which the power levels' users map alone decides
# (a missing room_version means "1"). In every other version the creator and
# the additional creators hold unlimited power.
LEGACY_ROOM_VERSIONS = frozenset(
    [str(n) for n in range(1, 12)] + ["org.matrix.msc3757.10", "org.matrix.msc3757.11"]
)
CREATOR_POWER = math.inf


# ---- the emoji key of a reaction (one-way rooms) ------------------------------------------------

# Emoji that stand on their own. Letters and digits in disguise are not
# among them: the enclosed alphanumerics (but for the blood types, the
# squared words, and the regional indicators, which count only in pairs, as
# a flag) and the dingbat circled digits, so that no key spells a word or a
# phone number.
EMOJI_BASE_RANGES = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x23FF), (0x24C2, 0x24C2), (0x25A0, 0x27BF), (0x2900, 0x2BFF),
    (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F170, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A), (0x1F200, 0x1FAFF),
)
DINGBAT_DIGITS = range(0x2776, 0x2794)
SKIN_TONES = range(0x1F3FB, 0x1F400)
REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
TAGS = range(0xE0020, 0xE007F)
ZWJ, KEYCAP, BLACK_FLAG, CANCEL_TAG = 0x200D, 0x20E3, 0x1F3F4, 0xE007F
KEYCAP_BASES = frozenset(map(ord, "0123456789#*"))


def _is_base(cp: int) -> bool:
    if cp in DINGBAT_DIGITS or cp in SKIN_TONES:
        return False
    return any(lo <= cp <= hi for lo, hi in EMOJI_BASE_RANGES)


def is_emoji_key(key) -> bool:
    """A reaction key is one emoji, in 1..64 bytes of valid UTF-8: a flag
    (two regional indicators), a keycap ([0-9#*], U+FE0F optional, U+20E3), a
    tag flag (U+1F3F4, tags, U+E007F), or emoji joined by U+200D, each
    followed by presentation selectors or skin tones. Anything else, two
    emoji in a row included, counts as text."""
    if not isinstance(key, str):
        return False
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate is not valid UTF-8
        return False
    if not 1 <= size <= 64:
        return False
    cps = [ord(ch) for ch in key]
    if len(cps) == 2 and all(cp in REGIONAL_INDICATORS for cp in cps):
        return True
    if cps[0] in KEYCAP_BASES:
        return cps[1:] in ([KEYCAP], [0xFE0F, KEYCAP])
    if cps[0] == BLACK_FLAG and len(cps) >= 3 and cps[-1] == CANCEL_TAG and all(cp in TAGS for cp in cps[1:-1]):
        return True
    for element in _split(cps, ZWJ):
        if not element or not _is_base(element[0]):
            return False
        if not all(cp in (0xFE0E, 0xFE0F) or cp in SKIN_TONES for cp in element[1:]):
            return False
    return True


def _split(items: list[int], separator: int) -> list[list[int]]:
    parts: list[list[int]] = [[]]
    for item in items:
        if item == separator:
            parts.append([])
        else:
            parts[-1].append(item)
    return parts


def is_emoji_reaction(content) -> bool:
    """An allowed reaction in a one-way room: exactly {"m.relates_to": {"rel_type": "m.annotation",
    "event_id": <str>, "key": <emoji key>}}, no other keys at either level."""
    if not isinstance(content, Mapping) or set(content) != {"m.relates_to"}:
        return False
    relation = content["m.relates_to"]
    if not isinstance(relation, Mapping) or set(relation) != {"rel_type", "event_id", "key"}:
        return False
    return (
        isinstance(relation["rel_type"], str)
        and relation["rel_type"] == "m.annotation"
        and isinstance(relation["event_id"], str)
        and is_emoji_key(relation["key"])
    )


# ---- a createRoom body ----------------------------------------------------------

def _initial_state(body: Mapping) -> list[Mapping]:
    events = body.get("initial_state")
    if not isinstance(events, (list, tuple)):
        return []
    return [e for e in events if isinstance(e, Mapping)]


def _state_key_is_empty(event: Mapping) -> bool:
    """The room's join rule, history visibility and guest access are the
    events with state key "" (Synapse reads a missing state_key of an
    initial_state event as ""); others have no effect."""
    return event.get("state_key", "") == ""


def _is_upgrade(body) -> bool:
    """The body Synapse makes for a room upgrade: creation_content names a
    predecessor, and there is no preset."""
    if not isinstance(body, Mapping) or "preset" in body:
        return False
    creation = body.get("creation_content")
    return isinstance(creation, Mapping) and "predecessor" in creation


def create_room_invitees(body, creator: str | None = None) -> list[str]:
    """The invitees of a createRoom body: the unique strings among ``invite``, then the state_key (a str) of
    every initial_state m.room.member event, without the creator; in the order
    of first appearance."""
    if not isinstance(body, Mapping):
        return []
    candidates = []
    invite = body.get("invite")
    if isinstance(invite, (list, tuple)):
        candidates += [u for u in invite if isinstance(u, str)]
    for event in _initial_state(body):
        if event.get("type") == MEMBER and isinstance(event.get("state_key"), str):
            candidates.append(event["state_key"])
    invitees: list[str] = []
    for user in candidates:
        if user != creator and user not in invitees:
            invitees.append(user)
    return invitees


# ---- the model ----------------------------------------------------------------------

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
    audit_readers: frozenset[str] = frozenset()
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
                        if callback == "user_may_join_room" and room_denial[0] in ("join_forbidden", "staff_only"):
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
            if is_invited is not True or role is None:
                return as_actor("join_forbidden")
            if teachers_room and role not in ("teacher", "admin"):
                return ("staff_only", enforced, school)
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

    # ---- after the fact (docs/rules.md, "After the fact")

    def after_event(self, event, state: Mapping, profile=None, sender_admin=None):
        """None, NEED_PROFILE, NEED_ADMIN, or the action tuple."""
        sender = event.sender
        local = self._is_local(sender)
        if local and not event.is_state():
            return None  # it passed check_event_for_spam
        event_type, state_key = event.type, event.get_state_key()
        member = state_key is not None and event_type == MEMBER
        tombstone = state_key == "" and event_type == TOMBSTONE
        if local and not tombstone and (not member or self._is_service(sender)):
            return None
        if event.internal_metadata.is_outlier():
            return None

        def get(event_type_, key=""):
            return state.get((event_type_, key))

        create = get(CREATE)
        creator = create.sender if create is not None else None
        create_content = create.content if create is not None else None
        policy_event = get(self.policy_event_type)
        managed = None
        if policy_event is not None:
            managed = self._managed_policy(policy_event.content, policy_event.sender, creator)
        levels_event = get(POWER_LEVELS)
        levels = levels_event.content if levels_event is not None else None

        def act(kind, denial, undone, user_id=None, by=None, room_id=event.room_id, to_send=()):
            if undone in self.acted:
                return None
            self.acted.add(undone)
            rule, enforced, school = denial if denial is not None else (None, False, None)
            return (kind, rule, enforced, school, undone, room_id, user_id, by, tuple(to_send))

        if not local:
            return self._closed_again(state, managed, creator, act)
        content = event.content
        if tombstone:
            replacement = content.get("replacement_room")
            if managed is not None and isinstance(replacement, str) and self._is_service(sender):
                return act("carry_policy", None, event.event_id, by=sender, room_id=replacement,
                           to_send=[(self.policy_event_type, policy_event.content)])
            return None
        current = get(MEMBER, state_key)
        is_current = current is not None and current.event_id == event.event_id
        membership = content.get("membership")
        if managed is not None:
            # one_way: text in the member event of someone below the moderator level.
            if not self._one_way(managed) or \
                    self._actor_level(levels, sender, create_content, creator) >= self.moderator_level:
                return None
            text = _member_text(content, profile)
            if text is NEED_PROFILE:
                return NEED_PROFILE
            if not text:
                return None
            school = managed.get("school")
            school = school if isinstance(school, str) else None
            restore = state_key if membership == "join" and is_current and state_key == sender else None
            denial = ("one_way", self._school_enforced(school), school)
            kind, user_id = "redact", restore
        else:
            # a direct chat holds two: an invite counted after the members
            # and the invites persisted before it.
            if membership != "invite" or not is_current or not self._is_direct_chat(creator):
                return None
            order = (event.internal_metadata.stream_ordering, event.event_id)
            count = 1
            for (event_type_, _key), other in state.items():
                if event_type_ != MEMBER or other.event_id == event.event_id:
                    continue
                other_membership = other.content.get("membership")
                if other_membership == "join" or (
                    other_membership == "invite"
                    and (other.internal_metadata.stream_ordering, other.event_id) < order
                ):
                    count += 1
            if count <= 2:
                return None
            enforced, school = self._actor_context(sender)
            denial = ("room_creation_forbidden", enforced, school)
            kind, user_id = "withdraw", state_key
        if sender_admin is None:
            return NEED_ADMIN
        if sender_admin:
            return None
        return act(kind, denial, event.event_id, user_id=user_id, by=sender if kind == "withdraw" else None)

    def _is_direct_chat(self, creator) -> bool:
        return self._is_local(creator) and not self._is_service(creator) and not self._may_create_group_rooms(creator)

    def _closed_again(self, state, managed, creator, act):
        """A room made here whose join rules, history or guest access a
        remote member opened: set closed again."""
        if managed is not None or not self._is_local(creator):
            return None
        # (type, key, the value that opens the room (None: anything but the
        # closed one), the closed value, the rule)
        doors = (
            (JOIN_RULES, "join_rule", None, "invite", "public_room_forbidden"),
            (HISTORY_VISIBILITY, "history_visibility", "world_readable", "shared", "public_room_forbidden"),
            (GUEST_ACCESS, "guest_access", "can_join", "forbidden", "guest_access_forbidden"),
        )
        first = None
        to_send = []
        for event_type, key, opening, closed, rule in doors:
            door = state.get((event_type, ""))
            if door is None or self._is_local(door.sender):
                continue
            value = door.content.get(key) if isinstance(door.content, Mapping) else None
            if (value == closed) if opening is None else (value != opening):
                continue
            to_send.append((event_type, {key: closed}))
            if first is None:
                first = (door, rule)
        if first is None:
            return None
        door, rule = first
        return act("close", (rule, self.enforce, None), door.event_id, to_send=to_send)

    # ---- the shape of new rooms (docs/rules.md, "How new rooms are shaped")

    def room_shape(self, request) -> list[dict]:
        """The JSON Patch "add" operations on_create_room applies to a
        createRoom request, reading it as Synapse does: initial_state's
        entries become state keyed by (type, state_key or ""), the last
        entry of a key winning."""
        if not isinstance(request, Mapping):
            return []
        ops: list[dict] = []

        def add(path, value):
            ops.append({"op": "add", "path": path, "value": value})

        initial = request.get("initial_state", None)
        entries = list(initial) if isinstance(initial, (list, tuple)) else []

        def last(event_type):
            found = None
            for index, entry in enumerate(entries):
                if (isinstance(entry, Mapping) and isinstance(entry.get("type"), str)
                        and entry["type"] == event_type and _state_key_is_empty(entry)):
                    found = (index, entry)
            return found

        guest = {"type": GUEST_ACCESS, "state_key": "", "content": {"guest_access": "forbidden"}}
        if initial is None or (isinstance(initial, (Mapping, str)) and len(initial) == 0):
            add("/initial_state", [guest])
        elif isinstance(initial, (list, tuple)):
            chosen = last(GUEST_ACCESS)
            if chosen is None or not isinstance(chosen[1].get("content"), Mapping):
                add("/initial_state/-", guest)
        policy = last(self.policy_event_type)
        if policy is None:
            return ops
        creation = request.get("creation_content")
        if not isinstance(creation, Mapping):
            add("/creation_content", {"m.federate": False})
        elif creation.get("m.federate", None) is not False:
            add("/creation_content/m.federate", False)
        content = policy[1].get("content")
        if not isinstance(content, Mapping):
            return ops
        power_levels = last(POWER_LEVELS)
        pl_content = power_levels[1].get("content") if power_levels is not None else None
        if pl_content is None:
            parent, current = "/power_level_content_override", request.get("power_level_content_override")
        elif isinstance(pl_content, Mapping):
            parent, current = f"/initial_state/{power_levels[0]}/content", pl_content
        else:
            return ops  # Synapse refuses such power levels itself
        if not content:
            return ops  # an empty policy event: the room is unmanaged
        one_way = self._one_way(content)
        wanted = self.moderator_level if one_way else 0
        current_map = current if isinstance(current, Mapping) else {}
        events = current_map.get("events")
        events_map = events if isinstance(events, Mapping) else {}
        patch: dict = {}
        if _ascii_level(current_map.get("events_default"), 0) != wanted:
            patch["events_default"] = wanted
        if one_way:
            opened = {t: 0 for t in (REDACTION, *self.one_way_allowed_events)
                      if _ascii_level(events_map.get(t), None) != 0}
            if opened:
                patch["events"] = opened
        if not patch:
            return ops
        if not isinstance(current, Mapping):
            add(parent, patch)
            return ops
        if "events_default" in patch:
            add(f"{parent}/events_default", patch["events_default"])
        if "events" in patch:
            if not isinstance(events, Mapping):
                add(f"{parent}/events", patch["events"])
            else:
                for event_type in patch["events"]:
                    add(f"{parent}/events/{_pointer_token(event_type)}", 0)
        return ops


# The keys of a member event that carry no text of the sender's own:
# Synapse validates membership, and drops a client's
# join_authorised_via_users_server for its own.
_MEMBER_KEYS_WITHOUT_TEXT = ("membership", "join_authorised_via_users_server")
_MEMBER_KEYS_AT_MOST = 16  # more keys than the engine reads count as text


def _member_text(content, profile):
    """True when a member event's content carries text of the sender's own
    (a reason, a key of their own, a display name or avatar that is not
    their global profile); NEED_PROFILE when only the profile can tell."""
    if not isinstance(content, Mapping):
        return False
    if len(content) > _MEMBER_KEYS_AT_MOST:
        return True
    unsure = False
    for key, value in content.items():
        if key in _MEMBER_KEYS_WITHOUT_TEXT:
            continue
        if key == "is_direct":
            if not isinstance(value, bool):
                return True
        elif key == "reason":
            if value is not None and value != "":
                return True
        elif key in ("displayname", "avatar_url"):
            if value is None:
                continue
            if not isinstance(value, str):
                return True
            if profile is None:
                unsure = True
            elif value != profile[0 if key == "displayname" else 1]:
                return True
        else:
            return True
    return NEED_PROFILE if unsure else False


def _pointer_token(token: str) -> str:
    """RFC 6901: "~" and "/" escaped."""
    return token.replace("~", "~0").replace("/", "~1")


_ASCII_SPACE = " \t\n\v\f\r\x1c\x1d\x1e\x1f"


def _ascii_level(value, default):
    """A power level in a createRoom request: an int (not a bool) within
    int64, or a string int() reads that is ASCII only; else `default`."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value if -2**63 <= value < 2**63 else default
    if isinstance(value, str):
        text = value.strip(_ASCII_SPACE)
        if not text.isascii() or text[-1:] in ("", "_") or any(c in _ASCII_SPACE for c in text):
            return default
        try:
            level = int(text, 10)
        except ValueError:
            return default
        return level if -2**63 <= level < 2**63 else default
    return default
