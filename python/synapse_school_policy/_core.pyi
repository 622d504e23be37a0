"""Type stubs for the C extension synapse_school_policy._core."""
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

NEED_ROOM: int
NEED_ADMIN: int
NEED_SHARED_ROOMS: int
SYNC_POWER_LEVELS: int
FACT_UNKNOWN: int
FACT_NO: int
FACT_YES: int

class InputError(ValueError): ...
class JsonSyntaxError(InputError): ...
class StoreError(OSError): ...

Denial = tuple[str, str, bool, str]  # rule id, message, enforced, school ("" if none)

def check_config(config_json: str) -> None: ...
def check_homeserver(settings_json: str) -> str: ...

class Engine:
    def __new__(cls, config_json: str, server_name: str, worker_name: str) -> "Engine": ...
    @property
    def policy_event_type(self) -> str: ...
    @property
    def strict_homeserver_config(self) -> bool: ...
    def open(self) -> None: ...
    def decide(
        self,
        callback: int,
        actor: str,
        target: str | None,
        room_id: str | None,
        event_type: str | None,
        state_key: str | None,
        content: Any,
        room_known: bool,
        room_policy: Mapping[str, Any] | None,
        room_power_levels: Mapping[str, Any] | None,
        actor_admin: int,
        is_invited: bool | None,
        shared_rooms: Sequence[Mapping[str, Any] | None] | None,
    ) -> None | int | Denial: ...
    def power_levels_update(
        self, room_policy: Mapping[str, Any] | None, power_levels: Mapping[str, Any] | None
    ) -> dict[str, Any] | None: ...
    def roster_put(self, user_id: str, body: bytes | str) -> str: ...
    def roster_upsert(self, body: bytes | str) -> int: ...
    def roster_delete(self, user_id: str) -> bool: ...
    def reconcile_plan(self, school: str, user_id: str) -> str: ...
    def reconciler_settings(self) -> dict[str, int]: ...
    @property
    def reconciler_user(self) -> str: ...
    def roster_get(self, user_id: str) -> str | None: ...
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
    ) -> str: ...
    def audit_flush(self) -> None: ...
    def audit_stats(self) -> dict[str, int]: ...
