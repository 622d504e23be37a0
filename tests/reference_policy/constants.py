"""The reference model's answers, the event types it reads, and the facts of
Matrix it shares with every part of the model."""
from __future__ import annotations

import math

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
