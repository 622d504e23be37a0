"""Type stubs for the C extension synapse_school_policy._core.

Structured results are Python objects (docs/architecture.md, "Results
across the binding"); only Engine.decide answers with constants and tuples.
"""
from typing import Any, Mapping, Sequence

RULE_IDS: tuple[str, ...]
CALLBACK_NAMES: tuple[str, ...]

CB_CHECK_LOGIN_FOR_SPAM: int
CB_USER_MAY_JOIN_ROOM: int
CB_USER_MAY_INVITE: int
CB_USER_MAY_CREATE_ROOM: int
CB_CHECK_EVENT_FOR_SPAM: int
CB_FEDERATED_USER_MAY_INVITE: int
CB_USER_MAY_PUBLISH_ROOM: int
CB_USER_MAY_CREATE_ROOM_ALIAS: int
CB_USER_MAY_SEND_3PID_INVITE: int
CB_CHECK_USERNAME_FOR_SPAM: int
CB_IS_USER_EXPIRED: int
CB_ON_USER_LOGIN: int
CB_CHECK_REGISTRATION_FOR_SPAM: int
CB_AFTER_THE_FACT: int  # audit records of after_event's actions; decide() refuses it

NEED_ROOM: int
NEED_ADMIN: int
NEED_SHARED_ROOMS: int
NEED_MEMBERSHIP: int
NEED_MEMBER_COUNT: int
NEED_PROFILE: int  # after_event: the member's global (displayname, avatar_url)
NEED_MEMBERS: int  # after_event: the room's member events
SYNC_POWER_LEVELS: int
FACT_UNKNOWN: int
FACT_NO: int
FACT_YES: int

class InputError(ValueError): ...
class JsonSyntaxError(InputError): ...
class StoreError(OSError): ...
class DatabaseError(StoreError): ...  # the database refused a statement (SQL error)

class Denial(tuple[str, str, bool, str]):
    """decide()'s denial: (rule id, message, enforced, school ("" if none))."""

    rule: str
    message: str
    enforced: bool
    school: str
    audit_id: int  # the queued audit record (for Engine.wait_durable); 0 when none was queued
    retry_after_ms: int  # > 0: past the flood limit, counted in a summary (M_LIMIT_EXCEEDED)

class Action(tuple[Any, ...]):
    """after_event()'s decision: what to do about an event after the fact."""

    kind: str  # "redact", "withdraw", "close" or "carry_policy"
    rule: str | None  # None for carry_policy, which refuses nothing
    enforced: bool  # False: report-only, audited and nothing done
    school: str
    audit_id: int
    event_id: str  # the event the action undoes
    room_id: str  # where to act (carry_policy: the upgraded room's successor)
    user_id: str | None  # redact: the member to rejoin with their profile; withdraw: the invitee
    sender: str | None  # withdraw: the inviter; carry_policy: who sends the policy event
    state: tuple[tuple[str, Any], ...]  # close, carry_policy: (type, content) to send

# (policy content, policy sender, power levels content, m.room.create content, creator[, policy event id])
RoomFacts = (
    tuple[Mapping[str, Any] | None, str | None, Mapping[str, Any] | None, Mapping[str, Any] | None, str | None]
    | tuple[Mapping[str, Any] | None, str | None, Mapping[str, Any] | None, Mapping[str, Any] | None, str | None, str | None]
)
# (policy content, policy sender, creator)
SharedRoom = tuple[Mapping[str, Any] | None, str | None, str | None]

def check_config(config_json: str) -> None: ...
def check_homeserver(settings_json: str) -> dict[str, Any]: ...  # {findings: [{setting, verdict, problem}], hardened_block}
def reconcile_status_offline(config_json: str) -> dict[str, Any]: ...
def roster_check(body: bytes | str, server_name: str) -> list[dict[str, Any]]: ...

class Engine:
    def __new__(cls, config_json: str, server_name: str, worker_name: str) -> "Engine": ...
    @property
    def policy_event_type(self) -> str: ...
    @property
    def strict_homeserver_config(self) -> bool: ...
    def open(self, *, offline: bool = False, worker: bool = False) -> None: ...
    def decide(
        self,
        callback: int,
        actor: str,
        target: str | None,
        room_id: str | None,
        event_type: str | None,
        state_key: str | None,
        content: Any,
        room: RoomFacts | None,
        actor_admin: int,
        is_invited: bool | None,
        shared_rooms: Sequence[SharedRoom] | None,
        actor_membership: str | None,
        member_count: int | None,
        redacts: str | None = None,
    ) -> None | int | Denial: ...
    def after_event(
        self,
        event: Any,
        state: Mapping[tuple[str, str], Any] | None = None,
        members: Mapping[tuple[str, str], Any] | None = None,
        profile: tuple[str | None, str | None] | None = None,
        sender_admin: bool | None = None,
    ) -> None | int | Action: ...
    def wait_durable(self, audit_id: int, timeout_ms: int) -> bool: ...
    def durable_fd(self) -> int: ...
    def last_durable_id(self) -> int: ...
    def audit_stalled_ms(self) -> int: ...
    def audit_close_summaries(self, all: bool = False) -> int: ...
    def flood_stats(self) -> dict[str, int]: ...
    def create_room_invitees(self, actor: str, body: Any) -> list[str]: ...
    def power_levels_update(
        self, room_policy: Mapping[str, Any] | None, power_levels: Mapping[str, Any] | None
    ) -> dict[str, Any] | None: ...
    def room_shape(self, request: Mapping[str, Any]) -> list[dict[str, Any]]: ...
    def roster_put(self, user_id: str, body: bytes | str) -> dict[str, Any]: ...
    def roster_upsert(self, body: bytes | str) -> int: ...
    def roster_delete(self, user_id: str) -> bool: ...
    def reconcile_plan(self, school: str, user_id: str) -> dict[str, Any]: ...
    def reconciler_settings(self) -> dict[str, int]: ...
    @property
    def reconciler_user(self) -> str: ...
    def roster_get(self, user_id: str) -> dict[str, Any] | None: ...
    def roster_size(self) -> int: ...
    def audit_query(
        self,
        *,
        since: int = 0,
        until: int = 0,
        rule: str | None = None,
        school: str | None = None,
        user: str | None = None,
        limit: int = 100,
        before: int = 0,
        kind: str | None = None,
    ) -> dict[str, Any]: ...
    def audit_action(self, record: dict[str, str | None]) -> int: ...
    def audit_view(self, request_json: str) -> dict[str, Any]: ...
    def audit_flush(self) -> None: ...
    def audit_stats(self) -> dict[str, int]: ...
    def store_status(self) -> dict[str, Any]: ...
    def audit_purge(self, before_ms: int) -> int: ...
    def store_sync(self, timeout_ms: int = 10000) -> None: ...
    def reconcile_mark(self, school: str, user_ids: Sequence[str]) -> None: ...
    def reconcile_due(self, now_ms: int, max: int) -> list[dict[str, Any]]: ...
    def reconcile_done(self, school: str, user_id: str, generation: int) -> None: ...
    def reconcile_failed(
        self, school: str, user_id: str, generation: int, error: str, retry_at_ms: int
    ) -> None: ...
    def reconcile_set_room(self, school: str, kind: str, room_id: str | None) -> None: ...
    def reconcile_get_room(self, school: str, kind: str) -> str | None: ...
    def reconcile_sync_config(self) -> int: ...
    def reconcile_status(self) -> dict[str, Any]: ...
    def roster_feed_start(self) -> None: ...
    def roster_feed_status(self) -> dict[str, Any] | None: ...
