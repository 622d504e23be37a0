"""Stage 2 of reconciliation: apply what the engine wants.

Stage 1 (the mark) happens in the engine's store: every roster change marks
the (school, user) pairs it touches, every group change marks
(school, "group:" + group id), durably, and a start-up whose school config
differs from the last one applied marks the whole school.

Here, on the one process that runs Synapse's background tasks, marks are
taken in batches and each is brought in line through the module API: the
special rooms (special_rooms.py) and the group rooms (group_rooms.py), with
the actions both share in room_actions.py. Every Synapse action waits its
turn under `reconciler.actions_per_second`; a mark whose actions fail is
retried with exponential backoff up to `reconciler.retry_max_seconds`, and
is cleared only when it has been applied in full. Who belongs where is
decided by the engine (`reconcile_plan`, `group_plan`); this module only
compares and acts.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from synapse.module_api import ModuleApi
from synapse.util.async_helpers import concurrently_execute

from synapse_school_policy import _core
from synapse_school_policy.group_rooms import GroupRooms, group_of
from synapse_school_policy.metrics import GROUP_RECONCILE_FAILURES, RECONCILE_FAILURES
from synapse_school_policy.room_actions import PowerChanges, RoomActions
from synapse_school_policy.special_rooms import SpecialRooms

logger = logging.getLogger("synapse_school_policy.reconciler")

POLL_MS = 1000
# A mark is taken only once it is this old. Within one process the engine
# hands out no mark before its change is in the index; but with PostgreSQL
# another process's change reaches this index by NOTIFY, after its mark is
# in the shared table: a mark taken at once could be planned against the
# snapshot before it and cleared with the change unapplied.
MARK_SETTLE_MS = 500
# Marks handled side by side within a batch; actions_per_second still bounds
# what reaches Synapse.
_CONCURRENCY = 8


def _now_ms() -> int:
    return int(time.time() * 1000)


class Reconciler:
    def __init__(self, api: ModuleApi, engine: Any, concurrently: Any = None, threads: Any = None,
                 service_users: frozenset[str] = frozenset(), groups_encrypted: bool = False,
                 settle_ms: int = MARK_SETTLE_MS):
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
        self._batch_size = settings["batch_size"]
        self._retry_max_s = settings["retry_max_seconds"]
        self._actions = RoomActions(api, engine, 1.0 / settings["actions_per_second"], service_users)
        self._special = SpecialRooms(api, engine, self._actions, self._in_thread)
        self._groups = GroupRooms(api, engine, self._actions, self._in_thread, self._concurrently,
                                  encrypted=groups_encrypted)
        self._settle_ms = settle_ms
        self._started = False
        self._busy = False

    @property
    def actions(self) -> RoomActions:
        return self._actions

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
            await self._groups.mark_timers_due(_now_ms())
            while True:
                marks = await self._in_thread(self._engine.reconcile_due, _now_ms() - self._settle_ms,
                                              self._batch_size)
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
            logger.info("synapse_school_policy: registered %s, the owner of the managed rooms", self._owner)
        changed = await self._in_thread(self._engine.reconcile_sync_config)
        if changed:
            logger.info(
                "synapse_school_policy: the config of %d school(s) changed since the last start; "
                "their special rooms are being reconciled", changed,
            )

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await self._in_store_thread(fn, *args)

    async def _reconcile_batch(self, marks: list[dict]) -> None:
        """Three steps, so that marks can be handled side by side (Synapse
        persists concurrent events of one room together) without two of
        them creating the same room or overwriting each other's power level:
        rooms first (the special rooms one school at a time, then the group
        rooms); then memberships, concurrently; then one power-levels event
        per room for the whole batch."""
        # The room ids looked up once per school and batch, not per mark.
        rooms: dict[str, dict[str, str | None]] = {}
        for school in dict.fromkeys(m["school"] for m in marks if group_of(m["user_id"]) is None):
            try:
                rooms[school] = await self._special.ensure_rooms(school)
            except _core.StoreError:
                raise
            except Exception:  # noqa: BLE001 - the marks below fail and retry with the error
                logger.debug("synapse_school_policy: rooms of %s not ready", school, exc_info=True)
        group_rooms: dict[int, str | None] = {}
        group_errors: dict[int, Exception] = {}
        group_marks = [(i, m) for i, m in enumerate(marks) if group_of(m["user_id"]) is not None]
        if group_marks:
            # Read before the rooms are created side by side (a room created
            # but not recorded before a crash is found there).
            await self._actions.owned_rooms()

        async def room_step(item: tuple[int, dict]) -> None:
            index, mark = item
            try:
                group_rooms[index] = await self._groups.ensure_room(mark["school"], group_of(mark["user_id"]))
            except _core.StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - the mark fails and retries
                group_errors[index] = exc

        await self._concurrently(room_step, group_marks, _CONCURRENCY)

        power = PowerChanges()
        applied: list[int] = []

        async def membership_step(item: tuple[int, dict]) -> None:
            index, mark = item
            mine = PowerChanges()
            try:
                group_id = group_of(mark["user_id"])
                if index in group_errors:
                    raise group_errors[index]
                if group_id is not None:
                    await self._groups.apply_group(mark["school"], group_id, group_rooms.get(index), mine)
                else:
                    for room_id, user_id, level in await self._special.apply_memberships(
                        mark["school"], mark["user_id"], rooms.get(mark["school"], {})
                    ):
                        mine.add(room_id, {"users": {user_id: level}}, {})
                    if mark["user_id"]:
                        await self._groups.apply_user(mark["user_id"], mine)
            except _core.StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever Synapse refused, retry later
                await self._failed(mark, exc)
                return
            power.merge(mine, index)
            applied.append(index)

        await self._concurrently(membership_step, list(enumerate(marks)), _CONCURRENCY)
        failed_rooms: dict[int, Exception] = {}
        for room_id, changes in power.rooms.items():
            try:
                await self._actions.apply_power_levels(room_id, changes, power.why.get(room_id))
            except Exception as exc:  # noqa: BLE001 - retried with the marks
                for index in power.marks[room_id]:
                    failed_rooms.setdefault(index, exc)
        for index in sorted(applied):
            mark = marks[index]
            if index in failed_rooms:
                await self._failed(mark, failed_rooms[index])
            else:
                await self._in_thread(self._engine.reconcile_done, mark["school"], mark["user_id"], mark["generation"])

    async def _failed(self, mark: dict, exc: Exception) -> None:
        school, user_id = mark["school"], mark["user_id"]
        delay_s = min(self._retry_max_s, 2 ** min(mark["attempts"], 20))
        error = f"{user_id or 'school'}: {type(exc).__name__}: {exc}"
        RECONCILE_FAILURES.inc()
        if group_of(user_id) is not None:
            GROUP_RECONCILE_FAILURES.inc()
        logger.warning(
            "synapse_school_policy: reconciling %s in %s failed (attempt %d), retrying in %ds: %s",
            user_id or "the school's rooms", school, mark["attempts"] + 1, delay_s, error,
        )
        await self._in_thread(
            self._engine.reconcile_failed, school, user_id, mark["generation"], error[:400],
            _now_ms() + delay_s * 1000,
        )
