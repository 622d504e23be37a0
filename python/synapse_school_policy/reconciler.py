"""Stage 2 of the special rooms' reconciliation: apply what the engine wants.

Stage 1 (the mark) happens in the engine's store: every roster change marks
the (school, user) pairs it touches, durably, and a start-up whose school
config differs from the last one applied marks the whole school.

Here, on the one process that runs Synapse's background tasks, marks are
taken in batches and each is brought in line through the module API: the
school's teachers' and announcement rooms are created (or found again) and
the user is invited and joined, or removed, and given the power level the
engine names. Every Synapse action waits its turn under
`reconciler.actions_per_second`; a mark whose actions fail is retried with
exponential backoff up to `reconciler.retry_max_seconds`, and is cleared
only when it has been applied in full. Who belongs where is decided by the
engine (`reconcile_plan`); this module only compares and acts.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from synapse.module_api import ModuleApi
from synapse.util.async_helpers import concurrently_execute
from synapse.util.frozenutils import unfreeze

from synapse_school_policy import _core, synapse_compat
from synapse_school_policy.metrics import RECONCILE_FAILURES
from synapse_school_policy.room_state import is_member, merged_power_levels

logger = logging.getLogger("synapse_school_policy.reconciler")

POLL_MS = 1000
# Marks handled side by side within a batch; actions_per_second still bounds
# what reaches Synapse.
_CONCURRENCY = 8
_MEMBER = "m.room.member"
_POWER_LEVELS = ("m.room.power_levels", "")
# Memberships the module leaves as they are when it would remove a user:
# nothing to take away.
_GONE = ("leave", "ban", None)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Reconciler:
    def __init__(self, api: ModuleApi, engine: Any, concurrently: Any = None, threads: Any = None):
        self._api = api
        # Synapse's helper keeps its logcontexts right; the unit tests pass
        # an asyncio equivalent.
        self._concurrently = concurrently or concurrently_execute
        # The module's store pool (threads.py); the unit tests' fake
        # ModuleApi runs the calls itself.
        self._in_store_thread = threads.store if threads is not None else api.defer_to_thread
        self._engine = engine
        self._owner = engine.reconciler_user
        settings = engine.reconciler_settings()
        self._interval = 1.0 / settings["actions_per_second"]
        self._batch_size = settings["batch_size"]
        self._retry_max_s = settings["retry_max_seconds"]
        self._policy_key = (engine.policy_event_type, "")
        self._next_action_at = 0.0
        self._started = False
        self._busy = False
        # (school, kind) -> room id of the rooms the owner is in; built on
        # first need, to find a room again whose creation was not recorded.
        self._owned_rooms: dict[tuple[str, str], str] | None = None

    # ---- the loop -------------------------------------------------------

    async def run_once(self) -> None:
        """One round: start-up work first, then every mark that is due."""
        if self._busy:
            return
        self._busy = True
        try:
            if not self._started:
                await self._start()
                self._started = True
            while True:
                marks = await self._in_thread(self._engine.reconcile_due, _now_ms(), self._batch_size)
                if not marks:
                    return
                await self._reconcile_batch(marks)
        except _core.StoreError as exc:
            # The store is away (PostgreSQL outage): the marks wait there.
            logger.warning("synapse_school_policy: reconciliation paused, the store failed: %s", exc)
        finally:
            self._busy = False

    async def _start(self) -> None:
        if await self._api.check_user_exists(self._owner) is None:
            localpart = self._owner[1:].split(":", 1)[0]
            await self._api.register_user(localpart, displayname="School")
            logger.info("synapse_school_policy: registered %s, the owner of the special rooms", self._owner)
        changed = await self._in_thread(self._engine.reconcile_sync_config)
        if changed:
            logger.info(
                "synapse_school_policy: the config of %d school(s) changed since the last start; "
                "their special rooms are being reconciled", changed,
            )

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await self._in_store_thread(fn, *args)

    async def _reconcile_batch(self, marks: list[dict]) -> None:
        """Three steps, so that users can be handled side by side (Synapse
        persists concurrent events of one room together) without two of
        them creating the same room or overwriting each other's power level:
        rooms first, one school at a time; then memberships, concurrently;
        then one power-levels event per room for the whole batch."""
        # The room ids looked up once per school and batch, not per mark.
        rooms: dict[str, dict[str, str | None]] = {}
        for school in dict.fromkeys(mark["school"] for mark in marks):
            try:
                rooms[school] = await self._ensure_rooms(school)
            except _core.StoreError:
                raise
            except Exception:  # noqa: BLE001 - the marks below fail and retry with the error
                logger.debug("synapse_school_policy: rooms of %s not ready", school, exc_info=True)
        levels: dict[str, dict[str, int | None]] = {}
        applied: list[tuple[dict, list[tuple[str, str, int | None]]]] = []

        async def membership_step(mark: dict) -> None:
            try:
                wanted = await self._apply_memberships(
                    mark["school"], mark["user_id"], rooms.get(mark["school"], {})
                )
            except _core.StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever Synapse refused, retry later
                await self._failed(mark, exc)
                return
            applied.append((mark, wanted))
            for room_id, user_id, level in wanted:
                levels.setdefault(room_id, {})[user_id] = level

        await self._concurrently(membership_step, marks, _CONCURRENCY)
        failed_rooms: dict[str, Exception] = {}
        for room_id, wanted_levels in levels.items():
            try:
                await self._apply_power_levels(room_id, wanted_levels)
            except Exception as exc:  # noqa: BLE001 - retried with the marks
                failed_rooms[room_id] = exc
        for mark, wanted in applied:
            error = next((failed_rooms[room_id] for room_id, _, _ in wanted if room_id in failed_rooms), None)
            if error is not None:
                await self._failed(mark, error)
            else:
                await self._in_thread(self._engine.reconcile_done, mark["school"], mark["user_id"], mark["generation"])

    async def _failed(self, mark: dict, exc: Exception) -> None:
        school, user_id = mark["school"], mark["user_id"]
        delay_s = min(self._retry_max_s, 2 ** min(mark["attempts"], 20))
        error = f"{user_id or 'school'}: {type(exc).__name__}: {exc}"
        RECONCILE_FAILURES.inc()
        logger.warning(
            "synapse_school_policy: reconciling %s in %s failed (attempt %d), retrying in %ds: %s",
            user_id or "the school's rooms", school, mark["attempts"] + 1, delay_s, error,
        )
        await self._in_thread(
            self._engine.reconcile_failed, school, user_id, mark["generation"], error[:400],
            _now_ms() + delay_s * 1000,
        )

    # ---- one mark -------------------------------------------------------

    async def _ensure_rooms(self, school: str) -> dict[str, str | None]:
        """Creates the school's enabled rooms where missing; returns every
        kind's room id (None: none recorded). Nothing for a frozen school."""
        plan = self._engine.reconcile_plan(school, "")
        if not plan["messenger"]:
            return {}
        return {
            room["kind"]: await self._room(school, room) if room["enabled"]
            else await self._in_thread(self._engine.reconcile_get_room, school, room["kind"])
            for room in plan["rooms"]
        }

    async def _apply_memberships(
        self, school: str, user_id: str, room_ids: dict[str, str | None]
    ) -> list[tuple[str, str, int | None]]:
        """Brings the user's memberships in line with the school's rooms
        (`room_ids`, from _ensure_rooms); returns the power levels they
        should have, as (room id, user id, level or None)."""
        plan = self._engine.reconcile_plan(school, user_id)
        if not plan["messenger"]:
            return []  # rule 1 freezes the rooms of a school that has not opted in
        if user_id and await self._api.check_user_exists(user_id) is None:
            return []  # marked again when the account is registered
        wanted = []
        for room in plan["rooms"]:
            # Only _ensure_rooms creates rooms: marks run side by side here.
            room_id = room_ids.get(room["kind"])
            if room_id is None and room["enabled"]:
                raise RuntimeError(f"the {room['kind']} room of {school} could not be created yet")
            if room_id is None:
                continue
            if not user_id:
                await self._mark_members(school, room_id)
                continue
            await self._apply_membership(room_id, user_id, room["member"])
            wanted.append((room_id, user_id, room["power_level"]))
        return wanted

    async def _room(self, school: str, room: dict) -> str:
        """The school's room of this kind: recorded, found again, or created."""
        kind = room["kind"]
        room_id = await self._in_thread(self._engine.reconcile_get_room, school, kind)
        if room_id is not None:
            return room_id
        owned = await self._rooms_of_owner()
        room_id = owned.get((school, kind))
        if room_id is None:
            await self._turn()
            room_id, _ = await self._api.create_room(
                self._owner,
                {
                    "preset": "private_chat",
                    "visibility": "private",
                    "name": room["name"],
                    "initial_state": [
                        {"type": self._policy_key[0], "state_key": "", "content": room["policy"]},
                    ],
                },
                ratelimit=False,
            )
            owned[(school, kind)] = room_id
            logger.info("synapse_school_policy: created the %s room of %s: %s", kind, school, room_id)
        await self._in_thread(self._engine.reconcile_set_room, school, kind, room_id)
        return room_id

    async def _rooms_of_owner(self) -> dict[tuple[str, str], str]:
        # A crash between creating a room and recording it leaves a room the
        # owner is in; finding it again is what keeps rooms from doubling.
        if self._owned_rooms is None:
            found: dict[tuple[str, str], str] = {}
            rooms = await synapse_compat.rooms_for_user(self._api, self._owner)
            for room_id in sorted(rooms):
                state = await self._api.get_room_state(room_id, [self._policy_key])
                policy = state.get(self._policy_key)
                if policy is None:
                    continue
                key = (policy.content.get("school"), policy.content.get("kind"))
                if isinstance(key[0], str) and isinstance(key[1], str):
                    found.setdefault(key, room_id)
            self._owned_rooms = found
        return self._owned_rooms

    async def _mark_members(self, school: str, room_id: str) -> None:
        """The school itself: every current member gets a mark of their own,
        so each is checked against the roster (a room just disabled empties,
        users removed while the store was lost leave)."""
        state = await self._api.get_room_state(room_id, [(_MEMBER, None)])
        members = sorted(
            key[1] for key, event in state.items()
            if is_member(event) and key[1] != self._owner
        )
        if members:
            await self._in_thread(self._engine.reconcile_mark, school, members)

    async def _membership(self, room_id: str, user_id: str) -> str | None:
        state = await self._api.get_room_state(room_id, [(_MEMBER, user_id)])
        event = state.get((_MEMBER, user_id))
        return event.content.get("membership") if event is not None else None

    async def _apply_membership(self, room_id: str, user_id: str, member: bool) -> None:
        current = await self._membership(room_id, user_id)
        if member:
            if current == "join":
                return
            if current == "ban":
                raise RuntimeError(f"{user_id} is banned from {room_id}; unban them to let them in")
            if current != "invite":
                await self._act(self._owner, user_id, room_id, "invite")
            await self._act(user_id, user_id, room_id, "join")
        elif current not in _GONE:
            await self._act(self._owner, user_id, room_id, "leave")

    async def _act(self, sender: str, target: str, room_id: str, membership: str) -> None:
        await self._turn()
        await self._api.update_room_membership(sender, target, room_id, membership)

    async def _apply_power_levels(self, room_id: str, wanted: dict[str, int | None]) -> None:
        """One power-levels event for every change the batch needs in the room."""
        state = await self._api.get_room_state(room_id, [_POWER_LEVELS])
        event = state.get(_POWER_LEVELS)
        current = unfreeze(event.content) if event is not None else {}
        content = merged_power_levels(current, {"users": wanted})
        if content == current:
            return
        await self._turn()
        await self._api.create_and_send_event_into_room(
            {"type": _POWER_LEVELS[0], "state_key": "", "room_id": room_id, "sender": self._owner,
             "content": content}
        )

    async def _turn(self) -> None:
        """Waits for the next action slot: at most actions_per_second."""
        now = time.monotonic()
        wait = self._next_action_at - now
        self._next_action_at = max(now, self._next_action_at) + self._interval
        if wait > 0:
            await self._api.sleep(wait)
