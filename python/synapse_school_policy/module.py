"""The Synapse adapter: registers the callbacks and the admin API.

Every decision is the C engine's. The adapter only supplies facts the engine
asks for (is the actor a server admin, what is the room's policy event),
because those live in Synapse's database and must be awaited, and turns the
engine's verdict into what Synapse expects back.
"""
from __future__ import annotations

import logging
from typing import Any, Collection, Mapping

from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.module_api.errors import Codes
from synapse.util.frozenutils import unfreeze

from synapse_school_policy import _core
from synapse_school_policy.admin_api import ADMIN_API_PREFIX, AdminResource
from synapse_school_policy.config import PolicyConfig, parse_config
from synapse_school_policy.metrics import DECISIONS, bind_engine_gauges, bind_store_gauges
from synapse_school_policy.store import STATUS_POLL_MS, StoreMonitor, check_worker_config

logger = logging.getLogger(__name__)

# How long to wait for a policy event to become the room's current state
# before aligning the power levels with it.
_SYNC_WAIT_STEPS = 100
_SYNC_WAIT_SECONDS = 0.1

_CALLBACK_NAMES = {
    _core.CB_CHECK_LOGIN_FOR_SPAM: "check_login_for_spam",
    _core.CB_USER_MAY_JOIN_ROOM: "user_may_join_room",
    _core.CB_USER_MAY_INVITE: "user_may_invite",
    _core.CB_USER_MAY_CREATE_ROOM: "user_may_create_room",
    _core.CB_CHECK_EVENT_FOR_SPAM: "check_event_for_spam",
    _core.CB_FEDERATED_USER_MAY_INVITE: "federated_user_may_invite",
}


class SchoolPolicy:
    """Synapse module entry point: ``module: synapse_school_policy.SchoolPolicy``."""

    def __init__(self, config: PolicyConfig, api: ModuleApi):
        self._api = api
        worker = api.worker_name or "main"
        check_worker_config(config, api)
        try:
            self._engine = _core.Engine(config.json_text, api.server_name, worker)
            self._engine.open()
        except (_core.InputError, _core.StoreError) as exc:
            from synapse.config._base import ConfigError

            raise ConfigError(f"synapse_school_policy: {exc}") from exc
        self._service_users = config.service_users
        self._room_state_filter = [(self._engine.policy_event_type, ""), ("m.room.power_levels", "")]
        self._allowed_counters = {
            cb: DECISIONS.labels(callback=name, rule="", outcome="allowed")
            for cb, name in _CALLBACK_NAMES.items()
        }
        bind_engine_gauges(
            lambda: self._engine.audit_stats()["queue_depth"], self._engine.roster_size
        )
        bind_store_gauges(self._engine.store_status)
        self._store_monitor = StoreMonitor(self._engine, worker)
        api.looping_background_call(
            self._store_monitor.check, STATUS_POLL_MS, desc="school_policy_store_status",
            run_on_all_instances=True,
        )

        api.register_spam_checker_callbacks(
            check_login_for_spam=self.check_login_for_spam,
            user_may_join_room=self.user_may_join_room,
            user_may_invite=self.user_may_invite,
            user_may_create_room=self.user_may_create_room,
            check_event_for_spam=self.check_event_for_spam,
            federated_user_may_invite=self.federated_user_may_invite,
        )
        # on_create_room is the one third-party-rules callback used: unlike
        # check_event_allowed it makes Synapse load no room state.
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)
        api.register_web_resource(
            ADMIN_API_PREFIX, AdminResource(api, self._engine, config.service_users)
        )
        # Queued audit records must reach the disk before the process exits.
        from twisted.internet import reactor

        reactor.addSystemEventTrigger("before", "shutdown", self._flush_audit)  # type: ignore[attr-defined]
        logger.info(
            "synapse_school_policy loaded on %s: %d users on the roster",
            worker,
            self._engine.roster_size(),
        )

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> PolicyConfig:
        return parse_config(config)

    def _flush_audit(self) -> None:
        try:
            self._engine.audit_flush()
        except _core.StoreError:
            logger.exception("synapse_school_policy: audit records could not be flushed")

    # ---- the decision loop -------------------------------------------------

    async def _room_state(self, room_id: str) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
        """The room's policy event content and power levels content."""
        state = await self._api.get_room_state(room_id, self._room_state_filter)
        policy = state.get(self._room_state_filter[0])
        power_levels = state.get(self._room_state_filter[1])
        return (
            policy.content if policy is not None else None,
            power_levels.content if power_levels is not None else None,
        )

    async def _decide(
        self,
        callback: int,
        actor: str,
        target: str | None = None,
        room_id: str | None = None,
        event_type: str | None = None,
        state_key: str | None = None,
        content: Any = None,
    ) -> Any:
        room_known = False
        room_policy = room_power_levels = None
        actor_admin = _core.FACT_UNKNOWN
        while True:
            outcome = self._engine.decide(
                callback, actor, target, room_id, event_type, state_key, content,
                room_known, room_policy, room_power_levels, actor_admin,
            )
            if outcome is None:
                self._allowed_counters[callback].inc()
                return NOT_SPAM
            if outcome == _core.NEED_ROOM:
                room_policy, room_power_levels = await self._room_state(room_id)  # type: ignore[arg-type]
                room_known = True
            elif outcome == _core.NEED_ADMIN:
                is_admin = await self._api.is_user_admin(actor)
                actor_admin = _core.FACT_YES if is_admin else _core.FACT_NO
            elif outcome == _core.SYNC_POWER_LEVELS:
                self._allowed_counters[callback].inc()
                return _AllowThenSync
            else:
                return self._denial(callback, outcome)

    def _denial(self, callback: int, outcome: tuple[str, str, bool, str]) -> Any:
        rule, message, enforced, _school = outcome
        DECISIONS.labels(
            callback=_CALLBACK_NAMES[callback],
            rule=rule,
            outcome="denied" if enforced else "report_only",
        ).inc()
        if not enforced:
            return NOT_SPAM
        # Synapse merges this dict into the error body; "error" replaces its
        # generic message so the user learns why.
        return Codes.FORBIDDEN, {"error": message, "school_policy": {"rule": rule}}

    # ---- keeping power levels in line with the policy event ---------------------

    async def _sync_power_levels(self, room_id: str, policy_event_id: str) -> None:
        """Once the policy event is the room's current one, sets
        events_default to what the engine says the policy needs, so that
        clients show the composer as the policy wants it."""
        policy_key, power_levels_key = self._room_state_filter
        for _ in range(_SYNC_WAIT_STEPS):
            state = await self._api.get_room_state(
                room_id, [policy_key, power_levels_key, ("m.room.create", "")]
            )
            policy = state.get(policy_key)
            if policy is not None and policy.event_id == policy_event_id:
                break
            await self._api.sleep(_SYNC_WAIT_SECONDS)
        else:
            logger.warning("synapse_school_policy: policy event %s never reached %s's state", policy_event_id, room_id)
            return
        power_levels = state.get(power_levels_key)
        patch = self._engine.power_levels_update(
            policy.content, power_levels.content if power_levels is not None else None
        )
        if patch is None:
            return
        content = unfreeze(power_levels.content) if power_levels is not None else {}
        _apply_power_levels_patch(content, patch)
        create = state.get(("m.room.create", ""))
        candidates = ([create.sender] if create is not None else []) + sorted(self._service_users)
        for sender in dict.fromkeys(candidates):
            if sender not in self._service_users:
                continue
            try:
                await self._api.create_and_send_event_into_room(
                    {"type": "m.room.power_levels", "room_id": room_id, "sender": sender,
                     "state_key": "", "content": content}
                )
                return
            except Exception as exc:  # noqa: BLE001 - try the next service user
                logger.info("synapse_school_policy: %s could not update power levels in %s: %s", sender, room_id, exc)
        logger.warning(
            "synapse_school_policy: no service user could apply %s to the power levels of %s; "
            "invite a service user with power to change power levels", patch, room_id,
        )

    async def on_create_room(self, requester: Any, request_content: dict, is_requester_admin: bool) -> None:
        """A room created with the policy event in its initial state gets
        power levels that match the policy from the start."""
        policy = _initial_state_content(request_content, self._room_state_filter[0][0])
        override = request_content.get("power_level_content_override")
        patch = self._engine.power_levels_update(policy, override if isinstance(override, dict) else {})
        if patch is not None:
            override = dict(override) if isinstance(override, dict) else {}
            _apply_power_levels_patch(override, patch)
            request_content["power_level_content_override"] = override

    # ---- Synapse callbacks ---------------------------------------------------

    async def check_login_for_spam(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        request_info: Collection[tuple[str | None, str]],
        auth_provider_id: str | None = None,
    ) -> Any:
        return await self._decide(_core.CB_CHECK_LOGIN_FOR_SPAM, user_id)

    async def user_may_join_room(self, user_id: str, room_id: str, is_invited: bool) -> Any:
        return await self._decide(_core.CB_USER_MAY_JOIN_ROOM, user_id, room_id=room_id)

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        return await self._decide(
            _core.CB_USER_MAY_INVITE, inviter, target=invitee, room_id=room_id
        )

    async def user_may_create_room(self, user_id: str, room_config: Mapping[str, Any]) -> Any:
        return await self._decide(_core.CB_USER_MAY_CREATE_ROOM, user_id, content=room_config)

    async def check_event_for_spam(self, event: Any) -> Any:
        result = await self._decide(
            _core.CB_CHECK_EVENT_FOR_SPAM,
            event.sender,
            room_id=event.room_id,
            event_type=event.type,
            state_key=event.get_state_key() if event.is_state() else None,
            content=event.content,
        )
        if result is _AllowThenSync:
            self._api.run_as_background_process(
                "school_policy_sync_power_levels", self._sync_power_levels, event.room_id, event.event_id
            )
            return NOT_SPAM
        return result

    async def federated_user_may_invite(self, event: Any) -> Any:
        return await self._decide(
            _core.CB_FEDERATED_USER_MAY_INVITE,
            event.sender,
            target=event.get_state_key(),
            room_id=event.room_id,
        )


def _apply_power_levels_patch(content: dict, patch: dict) -> None:
    if "events_default" in patch:
        content["events_default"] = patch["events_default"]
    if "events" in patch:
        events = dict(content.get("events") or {})
        events.update(patch["events"])
        content["events"] = events


def _initial_state_content(request_content: Mapping[str, Any], event_type: str) -> Any:
    for event in request_content.get("initial_state") or ():
        if isinstance(event, Mapping) and event.get("type") == event_type and event.get("state_key", "") == "":
            content = event.get("content")
            return content if isinstance(content, Mapping) else None
    return None


class _AllowThenSync:
    """Marker: the event is allowed, and the power levels must follow it."""
