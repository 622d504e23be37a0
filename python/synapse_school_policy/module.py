"""The Synapse adapter: registers the callbacks and the admin API.

Every decision is the C engine's. The adapter only supplies facts the engine
asks for (is the actor a server admin, what is the room's policy event),
because those live in Synapse's database and must be awaited, and turns the
engine's verdict into what Synapse expects back.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Collection, Mapping

from synapse.module_api import NOT_SPAM, ModuleApi
from synapse.module_api.errors import Codes, SynapseError
from synapse.spam_checker_api import RegistrationBehaviour
from synapse.util.frozenutils import unfreeze

from synapse_school_policy import _core, homeserver_check, roster_feed, synapse_compat
from synapse_school_policy.after_the_fact import POLL_MS as AFTER_THE_FACT_POLL_MS
from synapse_school_policy.after_the_fact import AfterTheFact
from synapse_school_policy.admin_api import ADMIN_API_PREFIX, AdminResource
from synapse_school_policy.config import PolicyConfig, parse_config
from synapse_school_policy.durable import DurableWaiter
from synapse_school_policy.groups_status import GroupCount
from synapse_school_policy.page import PAGE_PREFIX, PageResource
from synapse_school_policy.metrics import (
    DECISIONS,
    DENIALS_NOT_DURABLE,
    bind_engine_gauges,
    bind_flood_gauges,
    bind_groups_gauge,
    bind_store_gauges,
)
from synapse_school_policy.reconciler import POLL_MS as RECONCILE_POLL_MS
from synapse_school_policy.reconciler import Reconciler
from synapse_school_policy.room_state import is_member, merged_power_levels
from synapse_school_policy.store import STATUS_POLL_MS, StoreMonitor
from synapse_school_policy.threads import ModuleThreads

logger = logging.getLogger(__name__)

# How long to wait for a policy event to become the room's current state
# before aligning the power levels with it.
_SYNC_WAIT_STEPS = 100
_SYNC_WAIT_SECONDS = 0.1

# How long an enforced denial's answer waits for its audit record to be
# written (normally one fdatasync or one commit, a few milliseconds), counted
# from the decision. Longer than the PostgreSQL store's connect timeout (3 s),
# after which a database that went away gives way to the spill file. Past it,
# or at once while the store has written nothing for as long, the answer is
# 503: never a 403 without its record, never an allow (docs/workers.md,
# "Crash guarantee").
_DURABLE_WAIT_SECONDS = 5.0
_DURABLE_WAIT_MS = int(_DURABLE_WAIT_SECONDS * 1000)
# What a client is told to wait before it tries again after that 503.
_RETRY_AFTER_SECONDS = 5
# One warning per this many seconds while denials cannot be made durable.
_NOT_DURABLE_LOG_SECONDS = 10.0
# A denial past the flood limit is answered after a pause, as Synapse's own
# rate limits answer (after the request's locks are released, at the cost
# of a timer): until the actor's next token, within these bounds (Synapse
# pauses 0.5 s). A client that loops without waiting is so slowed to one
# try per token, and each try costs the server its work up to the decision
# (building the event) once, not four times a token.
_LIMITED_PAUSE_MIN_SECONDS = 0.5
_LIMITED_PAUSE_MAX_SECONDS = 2.0
# How often the flood summaries whose span ended are written out.
_SUMMARY_CLOSE_MS = 1000
# Callbacks whose answer is a bool, not a refusal with a body: a denial
# past the flood limit answers as any denial there.
_BOOL_CALLBACKS = frozenset({_core.CB_IS_USER_EXPIRED, _core.CB_CHECK_USERNAME_FOR_SPAM})

_CALLBACK_NAMES = dict(enumerate(_core.CALLBACK_NAMES))
# Synapse's login type of single sign-on (synapse.api.constants.LoginType.SSO).
_SSO_LOGIN_TYPE = "m.login.sso"
_POWER_LEVELS_KEY = ("m.room.power_levels", "")
_CREATE_KEY = ("m.room.create", "")


class SchoolPolicy:
    """Synapse module entry point: ``module: synapse_school_policy.SchoolPolicy``."""

    def __init__(self, config: PolicyConfig, api: ModuleApi):
        # Synapse's reactor (the one ModuleApi's own calls use): modules are
        # loaded with it running.
        from twisted.internet import reactor

        self._api = api
        worker = api.worker_name or "main"
        # Outside the supported Synapse releases, or without the private
        # members synapse_compat uses, refuse to load with a clear message.
        synapse_compat.check_synapse(api)
        try:
            self._engine = _core.Engine(config.json_text, api.server_name, worker)
            # A worker needs the store every process shares: the engine's
            # embedded store refuses, naming `database`.
            self._engine.open(worker=api.worker_app is not None)
        except (_core.InputError, _core.StoreError) as exc:
            from synapse.module_api.errors import ConfigError

            raise ConfigError(f"synapse_school_policy: {exc}") from exc
        self._check_homeserver_config(api)
        # Blocking store calls run in the module's own small thread pools;
        # a denial waits for its audit record on the reactor, holding no
        # thread (docs/workers.md, "What happens where").
        self._threads = ModuleThreads(api, reactor)
        self._durable = DurableWaiter(self._engine, reactor)
        self._not_durable_logged_at = 0.0
        self._not_durable_unlogged = 0
        self._service_users = config.service_users
        self._policy_key = (self._engine.policy_event_type, "")
        self._room_state_filter = [self._policy_key, _POWER_LEVELS_KEY, _CREATE_KEY]
        self._allowed_counters = {
            cb: DECISIONS.labels(callback=name, rule="", outcome="allowed")
            for cb, name in _CALLBACK_NAMES.items()
        }
        bind_engine_gauges(
            lambda: self._engine.audit_stats()["queue_depth"], self._engine.roster_size
        )
        bind_store_gauges(self._engine.store_status)
        bind_flood_gauges(self._engine.flood_stats)
        # Every process decides, so every process writes out the flood
        # summaries whose span ended (docs/audit.md, "A summary of a flood").
        api.looping_background_call(
            self._engine.audit_close_summaries, _SUMMARY_CLOSE_MS,
            desc="school_policy_audit_summaries", run_on_all_instances=True,
        )
        self._store_monitor = StoreMonitor(self._engine, worker)
        api.looping_background_call(
            self._store_monitor.check, STATUS_POLL_MS, desc="school_policy_store_status",
            run_on_all_instances=True,
        )

        # Stage 2 of the special rooms runs only where Synapse runs its
        # background tasks (the main process unless run_background_tasks_on
        # names a worker); every process marks.
        groups_config = json.loads(config.json_text).get("groups") or {}
        self._reconciler = Reconciler(
            api, self._engine, threads=self._threads, service_users=config.service_users,
            groups_encrypted=bool(groups_config.get("encrypted", False)),
        )
        bind_groups_gauge(GroupCount(self._engine))
        api.looping_background_call(
            self._reconciler.run_once, RECONCILE_POLL_MS, desc="school_policy_reconcile"
        )
        # The school cloud's roster queue, consumed by the engine's own thread
        # on the same single process (docs/roster-feed.md).
        try:
            self._roster_feed = roster_feed.start(api, self._engine)
        except _core.InputError as exc:
            from synapse.config._base import ConfigError

            raise ConfigError(f"synapse_school_policy: {exc}") from exc
        # is_user_expired closes every door at once for a user rule 1 refuses:
        # Synapse asks it on every request of every token (typing, presence,
        # profile, to-device, media, reading rooms), not only on login.
        # on_user_login is the one hook on the single sign-on path after the
        # identity provider and before the browser gets its login token: a
        # refusal there shows the module's message on the page the browser
        # lands on (docs/sign-in.md).
        api.register_account_validity_callbacks(
            is_user_expired=self.is_user_expired,
            on_user_registration=self.on_user_registration,
            on_user_login=self.on_user_login,
        )

        api.register_spam_checker_callbacks(
            check_login_for_spam=self.check_login_for_spam,
            user_may_join_room=self.user_may_join_room,
            user_may_invite=self.user_may_invite,
            user_may_create_room=self.user_may_create_room,
            check_event_for_spam=self.check_event_for_spam,
            federated_user_may_invite=self.federated_user_may_invite,
            user_may_publish_room=self.user_may_publish_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
            user_may_send_3pid_invite=self.user_may_send_3pid_invite,
            check_username_for_spam=self.check_username_for_spam,
            check_registration_for_spam=self.check_registration_for_spam,
        )
        # on_create_room is the one third-party-rules callback used: unlike
        # check_event_allowed it makes Synapse load no room state.
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)
        # What has no callback before the fact is taken back after it, from
        # the changes of rooms' state, on the process that runs background
        # tasks (after_the_fact.py; not on_new_event, for which Synapse
        # loads the room's whole state for every event).
        self._after_the_fact = AfterTheFact(api, self._engine, config.service_users)
        api.looping_background_call(
            self._after_the_fact.poll, AFTER_THE_FACT_POLL_MS, desc="school_policy_after_the_fact"
        )
        api.register_web_resource(
            ADMIN_API_PREFIX,
            AdminResource(api, self._engine, config.service_users, threads=self._threads),
        )
        api.register_web_resource(PAGE_PREFIX, PageResource())  # the audit page (docs/audit.md)
        # Queued audit records must reach the disk before the process exits.
        reactor.addSystemEventTrigger("before", "shutdown", self._flush_audit)  # type: ignore[attr-defined]
        logger.info(
            "synapse_school_policy loaded on %s: %d users on the roster",
            worker,
            self._engine.roster_size(),
        )

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> PolicyConfig:
        return parse_config(config)

    def _check_homeserver_config(self, api: ModuleApi) -> None:
        """The start-up self-check: refusals stop Synapse (strict) or warn;
        warnings warn; reports are logged for information
        (docs/configuration.md, "The homeserver.yaml self-check")."""
        # Synapse's parsed config is not part of the module API (synapse_compat).
        found = homeserver_check.check(
            homeserver_check.settings_from_synapse(
                synapse_compat.homeserver_config(api), self._announcement_rooms()
            )
        )["findings"]
        by_verdict = {v: [f for f in found if f["verdict"] == v] for v in ("refuse", "warn", "report")}
        if by_verdict["report"]:
            logger.info(
                "synapse_school_policy: homeserver.yaml, worth knowing: %s",
                homeserver_check.describe(by_verdict["report"]),
            )
        if by_verdict["warn"]:
            logger.warning(
                "synapse_school_policy: homeserver.yaml weakens the school rules: %s",
                homeserver_check.describe(by_verdict["warn"]),
            )
        if not found:
            logger.info("synapse_school_policy: homeserver.yaml self-check: clean")
        if not by_verdict["refuse"]:
            return
        message = "synapse_school_policy: homeserver.yaml undermines the school rules: " + (
            homeserver_check.describe(by_verdict["refuse"])
        )
        if self._engine.strict_homeserver_config:
            from synapse.module_api.errors import ConfigError

            raise ConfigError(message + " (set strict_homeserver_config: false to only warn)")
        logger.warning("%s", message)

    def _announcement_rooms(self) -> list[str] | None:
        """The announcement rooms the reconciler keeps (for
        exclude_rooms_from_presence), or None when the store cannot say now
        (PostgreSQL away at start-up): that setting is then not judged."""
        try:
            return homeserver_check.announcement_rooms(self._engine.reconcile_status())
        except _core.StoreError as exc:
            logger.info("synapse_school_policy: the self-check skips exclude_rooms_from_presence: %s", exc)
            return None

    def _flush_audit(self) -> None:
        # The open flood summaries first: a clean exit loses no count.
        self._engine.audit_close_summaries(all=True)
        try:
            self._engine.audit_flush()
        except _core.StoreError:
            logger.exception("synapse_school_policy: audit records could not be flushed")

    # ---- the decision loop -------------------------------------------------

    async def _room_state(self, room_id: str) -> tuple[Any, ...]:
        """The room facts the engine asks for with NEED_ROOM: (policy content,
        policy sender, power levels content, create content, creator, policy
        event id)."""
        state = await self._api.get_room_state(room_id, self._room_state_filter)
        policy = state.get(self._policy_key)
        power_levels = state.get(_POWER_LEVELS_KEY)
        create = state.get(_CREATE_KEY)
        return (
            policy.content if policy is not None else None,
            policy.sender if policy is not None else None,
            power_levels.content if power_levels is not None else None,
            create.content if create is not None else None,
            create.sender if create is not None else None,
            policy.event_id if policy is not None else None,
        )

    async def _shared_room_policies(self, actor: str, target: str) -> list[tuple[Any, Any, Any]]:
        """(policy content, policy sender, creator) of the rooms both users are
        joined to.

        Synapse's store answers from a cache that it keeps consistent across
        workers (a private API: synapse_compat)."""
        rooms = await synapse_compat.mutual_rooms(self._api, actor, target)
        policies = []
        for room_id in rooms:
            state = await self._api.get_room_state(room_id, [self._policy_key, _CREATE_KEY])
            policy, create = state.get(self._policy_key), state.get(_CREATE_KEY)
            policies.append((
                policy.content if policy is not None else None,
                policy.sender if policy is not None else None,
                create.sender if create is not None else None,
            ))
        return policies

    async def _membership(self, room_id: str, user_id: str) -> str:
        state = await self._api.get_room_state(room_id, [("m.room.member", user_id)])
        event = state.get(("m.room.member", user_id))
        membership = event.content.get("membership") if event is not None else None
        return membership if isinstance(membership, str) else ""

    async def _member_count(self, room_id: str) -> int:
        """Users joined to or invited into the room."""
        state = await self._api.get_room_state(room_id, [("m.room.member", None)])
        return sum(1 for event in state.values() if is_member(event))

    async def _decide(
        self,
        callback: int,
        actor: str,
        target: str | None = None,
        room_id: str | None = None,
        event_type: str | None = None,
        state_key: str | None = None,
        content: Any = None,
        is_invited: bool | None = None,
        redacts: str | None = None,
    ) -> Any:
        room = shared_rooms = membership = member_count = None
        actor_admin = _core.FACT_UNKNOWN
        while True:
            outcome = self._engine.decide(
                callback, actor, target, room_id, event_type, state_key, content,
                room, actor_admin, is_invited, shared_rooms, membership, member_count, redacts,
            )
            if outcome is None:
                self._allowed_counters[callback].inc()
                return NOT_SPAM
            if outcome == _core.NEED_ROOM:
                room = await self._room_state(room_id)  # type: ignore[arg-type]
            elif outcome == _core.NEED_ADMIN:
                is_admin = await self._api.is_user_admin(actor)
                actor_admin = _core.FACT_YES if is_admin else _core.FACT_NO
            elif outcome == _core.NEED_SHARED_ROOMS:
                shared_rooms = await self._shared_room_policies(actor, target)  # type: ignore[arg-type]
            elif outcome == _core.NEED_MEMBERSHIP:
                membership = await self._membership(room_id, actor)  # type: ignore[arg-type]
            elif outcome == _core.NEED_MEMBER_COUNT:
                member_count = await self._member_count(room_id)  # type: ignore[arg-type]
            elif outcome == _core.SYNC_POWER_LEVELS:
                self._allowed_counters[callback].inc()
                return _AllowThenSync
            else:
                return await self._denial(callback, outcome, actor)

    async def _denial(self, callback: int, outcome: _core.Denial, actor: str) -> Any:
        rule, message, enforced, _school = outcome
        DECISIONS.labels(
            callback=_CALLBACK_NAMES[callback],
            rule=rule,
            outcome="denied" if enforced else "report_only",
        ).inc()
        if not enforced:
            return NOT_SPAM
        if outcome.retry_after_ms:
            return self._limited(callback, rule, message, outcome.retry_after_ms, actor)
        # No refusal is seen before its audit record is durable: the wait
        # costs a Deferred and a timer on the reactor, no thread (durable.py),
        # and concurrent denials share the writer's fdatasync or commit.
        # Allowed events and report-only denials never wait, nor does hiding
        # a user from a directory search: no refusal is shown there, and a
        # search asks about its results one after another.
        if (
            outcome.audit_id
            and callback != _core.CB_CHECK_USERNAME_FOR_SPAM
            and not await self._durable_in_time(outcome.audit_id)
        ):
            self._not_durable(outcome.audit_id, rule, callback)
            # A local user's client is told to try again (503), so that no
            # 403 is ever seen whose record a crash could lose; the action
            # stays refused. A remote server's request (a federated invite,
            # a federated event) keeps the denial: it shows no user a 403.
            if callback != _core.CB_FEDERATED_USER_MAY_INVITE and self._is_local(actor):
                raise SynapseError(
                    503,
                    "The school policy cannot record this refusal right now; try again later",
                    Codes.UNKNOWN,
                    additional_fields={"school_policy": {"rule": rule, "audit": "not_durable"}},
                    headers={"Retry-After": str(_RETRY_AFTER_SECONDS)},
                )
        # Synapse merges this dict into the error body; "error" replaces its
        # generic message so the user learns why.
        return Codes.FORBIDDEN, {"error": message, "school_policy": {"rule": rule}}

    def _limited(self, callback: int, rule: str, message: str, retry_after_ms: int, actor: str) -> Any:
        """A denial past the flood limit (audit.flood): counted in a summary
        record, so nothing waits for a record of its own. A local user's
        client gets Synapse's own 429 M_LIMIT_EXCEEDED (raised: the only way
        a module answers 429), paused as Synapse's rate limits pause; a
        remote server gets the denial as M_LIMIT_EXCEEDED in the body (403,
        as every refusal across federation). Both say retry_after_ms."""
        fields = {"school_policy": {"rule": rule, "limited": True}}
        local_client = (
            callback not in _BOOL_CALLBACKS
            and callback != _core.CB_FEDERATED_USER_MAY_INVITE
            and self._is_local(actor)
        )
        if local_client:
            pause = min(max(retry_after_ms / 1000, _LIMITED_PAUSE_MIN_SECONDS), _LIMITED_PAUSE_MAX_SECONDS)
            raise synapse_compat.PolicyLimitExceeded(message, retry_after_ms, fields, pause)
        return Codes.LIMIT_EXCEEDED, {"error": message, "retry_after_ms": retry_after_ms, **fields}

    async def _durable_in_time(self, audit_id: int) -> bool:
        """Whether the record is durable within the wait: at once when the
        store has written nothing for the whole wait already (the database
        stalled, the disk and the spill file failing), so that a stalled
        store answers quickly instead of holding every denial open."""
        if self._engine.audit_stalled_ms() >= _DURABLE_WAIT_MS:
            return self._engine.last_durable_id() >= audit_id
        return await self._durable.wait(audit_id, _DURABLE_WAIT_SECONDS)

    def _not_durable(self, audit_id: int, rule: str, callback: int) -> None:
        """Counts a denial answered without its durable record, and says so
        in the log at most once per _NOT_DURABLE_LOG_SECONDS."""
        DENIALS_NOT_DURABLE.inc()
        now = time.monotonic()
        if now - self._not_durable_logged_at < _NOT_DURABLE_LOG_SECONDS:
            self._not_durable_unlogged += 1
            return
        logger.warning(
            "synapse_school_policy: audit record %d (%s, %s) not written after %.0f s "
            "(%d more since the last warning); the store has written nothing for %d ms; "
            "answering 503 to local users until it does (the records stay queued)",
            audit_id, rule, _CALLBACK_NAMES[callback], _DURABLE_WAIT_SECONDS,
            self._not_durable_unlogged, self._engine.audit_stalled_ms(),
        )
        self._not_durable_logged_at = now
        self._not_durable_unlogged = 0

    def _is_local(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self._api.server_name

    # ---- keeping power levels in line with the policy event ---------------------

    async def _sync_power_levels(self, room_id: str, policy_event_id: str) -> None:
        """Once the policy event is the room's current one, sets
        events_default to what the engine says the policy needs, so that
        clients show the composer as the policy wants it."""
        policy_key, power_levels_key = self._policy_key, _POWER_LEVELS_KEY
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
        content = merged_power_levels(
            unfreeze(power_levels.content) if power_levels is not None else None, patch
        )
        create = state.get(("m.room.create", ""))
        # The reconciler's account keeps the group rooms it owns in line
        # (a moderator's flip of two_way there).
        owner = self._engine.reconciler_user
        candidates = ([create.sender] if create is not None else []) + sorted(self._service_users)
        for sender in dict.fromkeys(candidates):
            if sender not in self._service_users and sender != owner:
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
        """Shapes new rooms before Synapse creates them, as the engine
        decides (docs/rules.md, "How new rooms are shaped"): guest access
        closed, and a room created with the policy event gets no federation
        and power levels that match the policy."""
        _apply_patch(request_content, self._engine.room_shape(request_content))

    async def on_user_registration(self, user_id: str) -> None:
        """A roster entry can come before the account: the special rooms get
        the user once the account exists."""
        entry = self._engine.roster_get(user_id)
        if entry is None:
            return
        for membership in entry["schools"]:
            await self._threads.store(self._engine.reconcile_mark, membership["school"], [user_id])

    # ---- Synapse callbacks ---------------------------------------------------

    async def check_login_for_spam(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        request_info: Collection[tuple[str | None, str]],
        auth_provider_id: str | None = None,
    ) -> Any:
        # The identity provider (SSO's "oidc-…"; None for a password or JWT
        # login) goes into the audit record as its target.
        return await self._decide(_core.CB_CHECK_LOGIN_FOR_SPAM, user_id, target=auth_provider_id)

    async def on_user_login(
        self, user_id: str, auth_provider_type: str | None, auth_provider_id: str | None
    ) -> None:
        """The end of single sign-on: Synapse has made the one-time login
        token and is about to send the browser back to the client with it.
        A refusal raised here makes Synapse answer that request with an
        error page that carries the module's message (403), and the token
        never leaves the server. Other login types reached
        check_login_for_spam before any token existed."""
        if auth_provider_type != _SSO_LOGIN_TYPE:
            return
        result = await self._decide(_core.CB_ON_USER_LOGIN, user_id, target=auth_provider_id)
        if result is not NOT_SPAM:
            raise _refusal(result)

    async def check_registration_for_spam(
        self,
        email_threepid: dict | None,
        username: str | None,
        request_info: Collection[tuple[str, str]],
        auth_provider_id: str | None = None,
    ) -> RegistrationBehaviour:
        """An account about to be created. Single sign-on names its identity
        provider, and the engine refuses whom rule 1 would refuse, so a
        refused sign-in creates no account; the school cloud's own
        registrations (admin API) and JWT logins name none and pass.
        A refusal is raised rather than answered with DENY, which Synapse
        disguises as "429 Rate limited": this way the browser's page (SSO)
        shows the module's message."""
        if username is None:
            return RegistrationBehaviour.ALLOW  # a generated name: no SSO account (Synapse's guests)
        user_id = f"@{username}:{self._api.server_name}"
        result = await self._decide(
            _core.CB_CHECK_REGISTRATION_FOR_SPAM, user_id, target=auth_provider_id
        )
        if result is not NOT_SPAM:
            raise _refusal(result)
        return RegistrationBehaviour.ALLOW

    async def is_user_expired(self, user_id: str) -> bool | None:
        """True refuses every request of the user's access tokens; None
        leaves the question to Synapse (the user may use the messenger)."""
        result = await self._decide(_core.CB_IS_USER_EXPIRED, user_id)
        return True if result is not NOT_SPAM else None

    async def user_may_join_room(self, user_id: str, room_id: str, is_invited: bool) -> Any:
        return await self._decide(
            _core.CB_USER_MAY_JOIN_ROOM, user_id, room_id=room_id, is_invited=is_invited
        )

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        return await self._decide(
            _core.CB_USER_MAY_INVITE, inviter, target=invitee, room_id=room_id
        )

    async def user_may_create_room(self, user_id: str, room_config: Mapping[str, Any]) -> Any:
        # The body first, then each invitee (the engine names them: the
        # invite list and initial_state's member events), so that a direct
        # chat with a stranger is refused before the room exists. A room
        # upgrade's body names the room it replaces, whose policy event the
        # engine may ask for.
        room_id = _predecessor(room_config)
        result = await self._decide(
            _core.CB_USER_MAY_CREATE_ROOM, user_id, room_id=room_id, content=room_config
        )
        for invitee in self._engine.create_room_invitees(user_id, room_config):
            if result is not NOT_SPAM:
                break
            result = await self._decide(
                _core.CB_USER_MAY_CREATE_ROOM, user_id, target=invitee, room_id=room_id,
                content=room_config,
            )
        return result

    async def check_event_for_spam(self, event: Any) -> Any:
        result = await self._decide(
            _core.CB_CHECK_EVENT_FOR_SPAM,
            event.sender,
            room_id=event.room_id,
            event_type=event.type,
            state_key=event.get_state_key() if event.is_state() else None,
            content=event.content,
            # Synapse reads `redacts` from the content or the event itself,
            # as the room version says.
            redacts=event.redacts if event.type == "m.room.redaction" else None,
        )
        if result is _AllowThenSync:
            self._api.run_as_background_process(
                "school_policy_sync_power_levels", self._sync_power_levels, event.room_id, event.event_id
            )
            return NOT_SPAM
        return result

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Any:
        return await self._decide(_core.CB_USER_MAY_PUBLISH_ROOM, user_id, room_id=room_id)

    async def user_may_create_room_alias(self, user_id: str, room_alias: Any) -> Any:
        # The alias is recorded in the audit record's room_id field.
        return await self._decide(_core.CB_USER_MAY_CREATE_ROOM_ALIAS, user_id, room_id=str(room_alias))

    async def user_may_send_3pid_invite(self, inviter: str, medium: str, address: str, room_id: str) -> Any:
        return await self._decide(_core.CB_USER_MAY_SEND_3PID_INVITE, inviter, room_id=room_id)

    async def check_username_for_spam(self, user_profile: Mapping[str, Any], requester_id: str) -> bool:
        """True hides the user from the requester's user directory search."""
        result = await self._decide(
            _core.CB_CHECK_USERNAME_FOR_SPAM, requester_id, target=user_profile["user_id"]
        )
        return result is not NOT_SPAM

    async def federated_user_may_invite(self, event: Any) -> Any:
        return await self._decide(
            _core.CB_FEDERATED_USER_MAY_INVITE,
            event.sender,
            target=event.get_state_key(),
            room_id=event.room_id,
        )


def _refusal(denial: tuple[Any, dict]) -> SynapseError:
    """A denial as an exception, for the callbacks whose return value cannot
    refuse with a message: Synapse answers it as it answers a spam
    checker's refusal (403, errcode, the module's message, school_policy),
    as JSON to a client and as an HTML page to a browser."""
    errcode, fields = denial
    return SynapseError(
        403, fields["error"], errcode, additional_fields={"school_policy": fields["school_policy"]}
    )


def _predecessor(room_config: Mapping[str, Any]) -> str | None:
    """The room a createRoom body names as its predecessor
    (creation_content.predecessor.room_id, which Synapse sets in the body
    of a room upgrade), or None."""
    creation = room_config.get("creation_content")
    predecessor = creation.get("predecessor") if isinstance(creation, Mapping) else None
    room_id = predecessor.get("room_id") if isinstance(predecessor, Mapping) else None
    return room_id if isinstance(room_id, str) else None


def _apply_patch(document: dict, operations: list[dict]) -> None:
    """Applies the engine's JSON Patch (RFC 6902) "add" operations in order.
    The document itself changes; every list or map on the way to a change
    is copied first, as the caller may share it (ModuleApi.create_room's
    config)."""
    for operation in operations:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in operation["path"].split("/")[1:]]
        parent: Any = document
        for token in tokens[:-1]:
            key = int(token) if isinstance(parent, list) else token
            child = parent[key]
            child = list(child) if isinstance(child, (list, tuple)) else dict(child)
            parent[key] = child
            parent = child
        if isinstance(parent, list):
            if tokens[-1] != "-":
                raise ValueError(f"unexpected operation {operation!r}")
            parent.append(operation["value"])
        else:
            parent[tokens[-1]] = operation["value"]


class _AllowThenSync:
    """Marker: the event is allowed, and the power levels must follow it."""
