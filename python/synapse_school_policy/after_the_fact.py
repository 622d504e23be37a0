"""Acting after the fact: the changes of rooms' state, on one process.

Some doors have no callback before the fact: the text of member events
(display names, leave reasons, keys of one's own) in one-way rooms, two
invites into one direct chat through two workers, a remote member's change
of a room's join rules that state resolution brings back, the policy event
that a room upgrade does not copy (docs/threat-model.md R3, R14, R13, R16).
Each is a change of a room's current state. On the process that runs
background tasks, this file follows Synapse's current state delta stream
(the one its user directory follows; state resolution's changes included)
every POLL_MS, hands each changed state event to the engine
(Engine.after_event, csrc/rules/after_the_fact.c), looks up the facts the
engine asks for and carries out what it decided.

Synapse's on_new_event would show every event instead, messages included,
after loading the room's whole current state for it on every process that
registers it (docs/benchmarks.md, "After the fact"): here a message costs
nothing, and a state change one filtered state lookup. Like on_new_event,
this sees what happens while the process runs: changes made while it was
down are not looked at again (it starts from the stream's position at
start-up).
"""
from __future__ import annotations

import logging
from typing import Any, Collection, Mapping

from synapse.module_api import ModuleApi

from synapse_school_policy import _core, synapse_compat
from synapse_school_policy.metrics import DECISIONS

logger = logging.getLogger("synapse_school_policy.after_the_fact")

POLL_MS = 500
_CALLBACK = "after_the_fact"  # the callback name of the audit records and metrics
_CREATE_KEY = ("m.room.create", "")
_POWER_LEVELS_KEY = ("m.room.power_levels", "")
_DOORS = [("m.room.join_rules", ""), ("m.room.history_visibility", ""), ("m.room.guest_access", "")]
_MEMBERS = [("m.room.member", None)]
# How often, and how long apart, carrying the policy into an upgraded room is
# tried: the new room is Synapse's before the tombstone is sent, but its
# state may still be reaching this process.
_CARRY_ATTEMPTS = 20
_CARRY_PAUSE_SECONDS = 0.25


def _plain(value: Any) -> Any:
    """Synapse's immutable event content as plain dicts and lists, to send."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class AfterTheFact:
    def __init__(self, api: ModuleApi, engine: Any, service_users: Collection[str]):
        self._api = api
        self._engine = engine
        # Who may act for the module in its rooms: the service users and the
        # special rooms' owner.
        self._service_users = frozenset(service_users) | {engine.reconciler_user}
        self._policy_key = (engine.policy_event_type, "")
        self._position: int | None = None
        self._polling = False

    async def poll(self) -> None:
        """[background-tasks process, every POLL_MS] Looks at every change
        of a room's current state since the last poll."""
        if self._polling:  # the last poll is still at work
            return
        self._polling = True
        try:
            until = synapse_compat.events_stream_position(self._api)
            if self._position is None:
                self._position = until  # from now on
                return
            while self._position < until:
                position, deltas = await synapse_compat.state_deltas(self._api, self._position, until)
                for delta in deltas:
                    if delta.event_id is not None:
                        await self._look_at(delta.event_id)
                if position <= self._position:
                    break
                self._position = position
        finally:
            self._polling = False

    async def _look_at(self, event_id: str) -> None:
        try:
            event = await synapse_compat.event(self._api, event_id)
            if event is not None:
                await self.after_event(event)
        except Exception:  # noqa: BLE001 - one event's failure must not stop the stream
            logger.exception("synapse_school_policy: could not look at %s after the fact", event_id)

    async def after_event(self, event: Any) -> None:
        """Asks the engine about the event, with what it asks for, and does
        what it decides."""
        state = members = profile = sender_admin = None
        while True:
            outcome = self._engine.after_event(event, state, members, profile, sender_admin)
            if outcome is None:
                return
            if outcome == _core.NEED_ROOM:
                state = await self._room_state(event)
            elif outcome == _core.NEED_MEMBERS:
                members = await self._api.get_room_state(event.room_id, _MEMBERS)
            elif outcome == _core.NEED_PROFILE:
                profile = await self._profile(event.get_state_key())
            elif outcome == _core.NEED_ADMIN:
                sender_admin = await self._api.is_user_admin(event.sender)
            else:
                break
        if outcome.kind == "carry_policy":
            await self._carry_policy(outcome)
            return
        DECISIONS.labels(
            callback=_CALLBACK, rule=outcome.rule,
            outcome="denied" if outcome.enforced else "report_only",
        ).inc()
        if outcome.enforced:
            act = {"redact": self._redact, "withdraw": self._withdraw, "close": self._close}[outcome.kind]
            await act(outcome, state)

    async def _room_state(self, event: Any) -> Mapping:
        """The room's current state as the engine reads it: the policy,
        create and power levels, the doors, and the member event of the
        event's state key."""
        wanted = [self._policy_key, _CREATE_KEY, _POWER_LEVELS_KEY, *_DOORS]
        if event.is_state() and event.type == "m.room.member":
            wanted.append(("m.room.member", event.get_state_key()))
        return await self._api.get_room_state(event.room_id, wanted)

    async def _profile(self, user_id: str) -> tuple[Any, Any]:
        """The user's global (displayname, avatar_url); (None, None) for a
        user of another server or one without a profile."""
        localpart, _, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or server != self._api.server_name:
            return (None, None)
        try:
            info = await self._api.get_profile_for_user(localpart)
        except Exception:  # noqa: BLE001 - no profile: nothing to compare with
            logger.info("synapse_school_policy: no profile for %s", user_id, exc_info=True)
            return (None, None)
        return (info.display_name, info.avatar_url)

    # ---- the actions ------------------------------------------------------------

    def _module_senders(self, state: Mapping) -> list[str]:
        """Service users who may act in the room, its creator first (a
        managed room's creator holds every power)."""
        create = state.get(_CREATE_KEY)
        candidates = ([create.sender] if create is not None else []) + sorted(self._service_users)
        return [user for user in dict.fromkeys(candidates) if user in self._service_users]

    async def _local_members_by_power(self, room_id: str, state: Mapping) -> list[str]:
        """Local members who are joined, the room's creator first, then by
        their power level, highest first."""
        create = state.get(_CREATE_KEY)
        levels = state.get(_POWER_LEVELS_KEY)
        users = levels.content.get("users") if levels is not None else None
        by_level = sorted(
            ((level, user) for user, level in (users or {}).items() if isinstance(level, int)),
            reverse=True,
        )
        suffix = ":" + self._api.server_name
        candidates = [
            user for user in dict.fromkeys(
                ([create.sender] if create is not None else []) + [user for _, user in by_level])
            if user.endswith(suffix)
        ]
        members = await self._api.get_room_state(room_id, [("m.room.member", user) for user in candidates])
        return [
            user for user in candidates
            if (member := members.get(("m.room.member", user))) is not None
            and member.content.get("membership") == "join"
        ]

    async def _send_as_first(self, senders: list[str], event: dict, what: str) -> bool:
        for sender in senders:
            try:
                await self._api.create_and_send_event_into_room({**event, "sender": sender})
                return True
            except Exception as exc:  # noqa: BLE001 - try the next one
                logger.info("synapse_school_policy: %s could not %s: %s", sender, what, exc)
        logger.warning("synapse_school_policy: nobody could %s in %s", what, event["room_id"])
        return False

    async def _redact(self, action: Any, state: Mapping) -> None:
        """one_way: the member event's text is redacted by a service user,
        then (a join that is the member's current event) the member rejoins
        with their global profile, so the room shows their name again."""
        redacts = action.event_id
        redacted = await self._send_as_first(
            self._module_senders(state),
            {"type": "m.room.redaction", "room_id": action.room_id, "redacts": redacts,
             "content": {"redacts": redacts, "reason": f"school policy: {action.rule}"}},
            f"redact {redacts}",
        )
        if redacted:
            logger.info("synapse_school_policy: took back the text of %s in %s (%s)",
                        redacts, action.room_id, action.rule)
        if action.user_id is None:
            return
        try:
            await self._api.update_room_membership(action.user_id, action.user_id, action.room_id, "join")
        except Exception as exc:  # noqa: BLE001 - they left, or lost access meanwhile
            logger.info("synapse_school_policy: could not restore %s's profile in %s: %s",
                        action.user_id, action.room_id, exc)

    async def _withdraw(self, action: Any, state: Mapping) -> None:
        """room_creation_forbidden: the inviter takes the invite back (a kick
        of an invite); failing that, a local invitee rejects it."""
        inviter, invitee, room_id = action.sender, action.user_id, action.room_id
        try:
            await self._api.update_room_membership(inviter, invitee, room_id, "leave")
        except Exception as exc:  # noqa: BLE001 - fall back to the invitee's own leave
            logger.info("synapse_school_policy: %s could not withdraw %s's invite: %s", inviter, invitee, exc)
            if not invitee.endswith(":" + self._api.server_name):
                logger.warning("synapse_school_policy: the invite of %s into %s stays", invitee, room_id)
                return
            try:
                await self._api.update_room_membership(invitee, invitee, room_id, "leave")
            except Exception:  # noqa: BLE001
                logger.warning("synapse_school_policy: the invite of %s into %s stays", invitee,
                               room_id, exc_info=True)
                return
        logger.info("synapse_school_policy: withdrew the invite of %s into the direct chat %s",
                    invitee, room_id)

    async def _close(self, action: Any, state: Mapping) -> None:
        """public_room_forbidden / guest_access_forbidden: the room's doors
        are set closed again by the most powerful local member."""
        senders = await self._local_members_by_power(action.room_id, state)
        for event_type, content in action.state:
            await self._send_as_first(
                senders,
                {"type": event_type, "room_id": action.room_id, "state_key": "", "content": content},
                f"set {event_type} back",
            )

    async def _carry_policy(self, action: Any) -> None:
        """A service user upgraded a managed room: the new room gets the
        policy event Synapse did not copy (and, through it, its power
        levels)."""
        (event_type, content), = action.state
        event = {"type": event_type, "room_id": action.room_id, "sender": action.sender,
                 "state_key": "", "content": _plain(content)}
        failure: Exception | None = None
        for _ in range(_CARRY_ATTEMPTS):
            try:
                await self._api.create_and_send_event_into_room(event)
                logger.info("synapse_school_policy: carried the policy event into %s", action.room_id)
                return
            except Exception as exc:  # noqa: BLE001 - the new room may still be arriving
                failure = exc
            await self._api.sleep(_CARRY_PAUSE_SECONDS)
        logger.warning("synapse_school_policy: could not carry the policy event into %s: %s",
                       action.room_id, failure)
