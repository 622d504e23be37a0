"""What the module takes back after the fact (docs/rules.md, "After the fact"):
ReferencePolicy.after_event, a part of the model of its own."""
from __future__ import annotations

from typing import Mapping

from .constants import CREATE, GUEST_ACCESS, HISTORY_VISIBILITY, JOIN_RULES, MEMBER, NEED_ADMIN, NEED_PROFILE, POWER_LEVELS, TOMBSTONE


class AfterTheFact:
    """ReferencePolicy's after_event (mixed into it; reads its config and rules)."""

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
            # one_way: text in the member event of someone below the moderator
            # level; group_archived: of anyone, in an archived group's room.
            archived = self._names_group(managed) and self._group_archived(managed)
            if not archived and (not self._one_way(managed) or
                                 self._actor_level(levels, sender, create_content, creator) >= self.moderator_level):
                return None
            text = _member_text(content, profile)
            if text is NEED_PROFILE:
                return NEED_PROFILE
            if not text:
                return None
            school = managed.get("school")
            school = school if isinstance(school, str) else None
            restore = state_key if membership == "join" and is_current and state_key == sender and not archived \
                else None
            denial = ("group_archived" if archived else "one_way", self._school_enforced(school), school)
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
