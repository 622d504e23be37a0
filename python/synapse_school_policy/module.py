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

from synapse_school_policy import _core
from synapse_school_policy.admin_api import ADMIN_API_PREFIX, AdminResource
from synapse_school_policy.config import PolicyConfig, parse_config
from synapse_school_policy.metrics import DECISIONS, bind_engine_gauges

logger = logging.getLogger(__name__)

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
        try:
            self._engine = _core.Engine(config.json_text, api.server_name, worker)
            self._engine.open()
        except (_core.InputError, _core.StoreError) as exc:
            from synapse.config._base import ConfigError

            raise ConfigError(f"synapse_school_policy: {exc}") from exc
        self._policy_event_type = self._engine.policy_event_type
        self._allowed_counters = {
            cb: DECISIONS.labels(callback=name, rule="", outcome="allowed")
            for cb, name in _CALLBACK_NAMES.items()
        }
        bind_engine_gauges(
            lambda: self._engine.audit_stats()["queue_depth"], self._engine.roster_size
        )

        api.register_spam_checker_callbacks(
            check_login_for_spam=self.check_login_for_spam,
            user_may_join_room=self.user_may_join_room,
            user_may_invite=self.user_may_invite,
            user_may_create_room=self.user_may_create_room,
            check_event_for_spam=self.check_event_for_spam,
            federated_user_may_invite=self.federated_user_may_invite,
        )
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

    async def _room_policy(self, room_id: str) -> Mapping[str, Any] | None:
        key = (self._policy_event_type, "")
        state = await self._api.get_room_state(room_id, [key])
        event = state.get(key)
        return event.content if event is not None else None

    async def _decide(
        self,
        callback: int,
        actor: str,
        target: str | None = None,
        room_id: str | None = None,
        event_type: str | None = None,
    ) -> Any:
        room_known = False
        room_policy: Mapping[str, Any] | None = None
        actor_admin = _core.FACT_UNKNOWN
        while True:
            outcome = self._engine.decide(
                callback, actor, target, room_id, event_type, room_known, room_policy, actor_admin
            )
            if outcome is None:
                self._allowed_counters[callback].inc()
                return NOT_SPAM
            if outcome == _core.NEED_ROOM:
                room_policy = await self._room_policy(room_id)  # type: ignore[arg-type]
                room_known = True
            elif outcome == _core.NEED_ADMIN:
                is_admin = await self._api.is_user_admin(actor)
                actor_admin = _core.FACT_YES if is_admin else _core.FACT_NO
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
        return await self._decide(_core.CB_USER_MAY_CREATE_ROOM, user_id)

    async def check_event_for_spam(self, event: Any) -> Any:
        return await self._decide(
            _core.CB_CHECK_EVENT_FOR_SPAM, event.sender, room_id=event.room_id, event_type=event.type
        )

    async def federated_user_may_invite(self, event: Any) -> Any:
        return await self._decide(
            _core.CB_FEDERATED_USER_MAY_INVITE,
            event.sender,
            target=event.get_state_key(),
            room_id=event.room_id,
        )
