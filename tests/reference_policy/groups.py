"""Group rooms (docs/rules.md, "Groups"): a managed room whose policy event
names a group. Read from the docs, not from csrc/rules/groups.c:

- the room's group is the one the roster's groups hold under the policy's
  ``group`` id, when it belongs to the room's school; a ``group`` that is
  not a non-empty string, an id nobody sent, or a group of another school
  is an unknown group: closed and active, admitting nobody of another
  school (fail closed);
- ``group_archived``: any event, invite or join (profile changes included)
  in the room of an archived group (``state`` archived or deleted, or
  ``archive_at_ms`` passed);
- ``group_closed``: any invite into the room of a closed group (an unknown
  one included); in an open group (``closed: false``) an invite by a member
  below the moderator level, or of anyone but a local user of an opted-in
  school (or a service user); a join without an invite into a closed
  group's room;
- the cross-school join: an invited user whom the roster does not put in
  the room's school joins an active group's room when one of their own
  schools has opted in and the group lists them or is open;
- rule 3: an archived group's room is shared by nobody.
"""
from __future__ import annotations

import time


class GroupRules:
    """Mixed into ReferencePolicy: reads its config, its roster and its
    ``groups`` (group id -> the group as the school cloud sent it)."""

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    @staticmethod
    def _names_group(policy) -> bool:
        return "group" in policy

    def _group_of(self, policy):
        """The room's group, or None: no group, or an unknown one."""
        group_id = policy.get("group")
        if not isinstance(group_id, str) or group_id == "":
            return None
        group = self.groups.get(group_id)
        school = policy.get("school")
        if group is None or not isinstance(school, str) or group["school"] != school:
            return None
        return group

    def _group_archived(self, policy) -> bool:
        group = self._group_of(policy)
        if group is None:
            return False
        if group.get("state", "active") != "active":
            return True
        archive_at = group.get("archive_at_ms", 0)
        return archive_at > 0 and archive_at <= self._now_ms()

    @staticmethod
    def _group_closed(group) -> bool:
        return group is None or group.get("closed", True)

    @staticmethod
    def _group_lists(group, user) -> bool:
        return any(member["user_id"] == user for member in group.get("members", ()))

    def _in_opted_in_school(self, user) -> bool:
        return any(self._opted_in(school) for school, _role in self.roster.get(user, []))

    def _group_invite_denied(self, policy, actor_level, target) -> str | None:
        """group_closed's answer to an invite: None, or the situation
        ("invite": closed or not a moderator, "target": the invitee)."""
        group = self._group_of(policy)
        if self._group_closed(group) or actor_level < self.moderator_level:
            return "invite"
        if target is not None and (self._is_service(target) or (
                self._is_local(target) and self._in_opted_in_school(target))):
            return None
        return "target"

    def _group_admits(self, policy, actor, is_invited) -> bool:
        """The cross-school join."""
        if is_invited is not True or not self._names_group(policy):
            return False
        group = self._group_of(policy)
        if group is None or self._group_archived(policy) or not self._in_opted_in_school(actor):
            return False
        return not self._group_closed(group) or self._group_lists(group, actor)

    def _group_closed_to_uninvited(self, policy, is_invited) -> bool:
        return is_invited is not True and self._names_group(policy) and self._group_closed(self._group_of(policy))
