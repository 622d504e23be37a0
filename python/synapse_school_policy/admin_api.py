"""The admin REST API under /_synapse/client/school_policy/v1.

Only service users and server admins may call it. Request bodies are
validated by the engine, whose messages name the bad field; anything that
touches the disk runs in a thread so the reactor never waits on it.
"""
from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Callable
from urllib.parse import unquote_to_bytes

from synapse.module_api.errors import Codes, SynapseError
from synapse.module_api import DirectServeJsonResource
from synapse.module_api import ModuleApi

from synapse_school_policy import _core

ADMIN_API_PREFIX = "/_synapse/client/school_policy/v1"

_USER_PATH = re.compile(r"^/users/([^/]+)$")

# Query integers: ASCII digits only (int() would also take "+1", " 1", "1_0"
# and other scripts' digits), and what the engine's int64 holds.
_DIGITS = re.compile(r"[0-9]+")
_INT64_MAX = 2**63 - 1

Handler = Callable[[Any, "re.Match[str] | None"], Awaitable[tuple[int, Any]]]


class AdminResource(DirectServeJsonResource):
    # Leaf: every path below the prefix reaches this resource, which routes itself.
    isLeaf = True

    def __init__(self, api: ModuleApi, engine: Any, service_users: frozenset[str]):
        super().__init__()
        self._api = api
        self._engine = engine
        self._service_users = service_users
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("PUT", _USER_PATH, self._put_user),
            ("GET", _USER_PATH, self._get_user),
            ("DELETE", _USER_PATH, self._delete_user),
            ("POST", re.compile(r"^/roster$"), self._post_roster),
            ("GET", re.compile(r"^/audit$"), self._get_audit),
            ("GET", re.compile(r"^/status$"), self._get_status),
        ]

    async def _async_render_GET(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "GET")

    async def _async_render_PUT(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "PUT")

    async def _async_render_POST(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "POST")

    async def _async_render_DELETE(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "DELETE")

    async def _route(self, request: Any, method: str) -> tuple[int, Any]:
        await self._authorise(request)
        path = _text(request.path, "path")[len(ADMIN_API_PREFIX):]
        path_known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            path_known = True
            if route_method == method:
                return await handler(request, match)
        if path_known:
            raise SynapseError(405, f"{method} is not supported on {path}", Codes.UNRECOGNIZED)
        raise SynapseError(404, f"No such endpoint: {path}", Codes.UNRECOGNIZED)

    async def _authorise(self, request: Any) -> None:
        # get_user_by_req raises the 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN errors.
        requester = await self._api.get_user_by_req(request)
        user_id = requester.user.to_string()
        if user_id in self._service_users or await self._api.is_user_admin(user_id):
            return
        raise SynapseError(
            403, "Only service users and server admins may use this API", Codes.FORBIDDEN
        )

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._api.defer_to_thread(fn, *args)
        except _core.JsonSyntaxError as exc:
            raise SynapseError(400, str(exc), Codes.BAD_JSON) from exc
        except _core.InputError as exc:
            raise SynapseError(400, str(exc), Codes.INVALID_PARAM) from exc
        except _core.StoreError as exc:
            # The PostgreSQL store is unreachable: a retry later can succeed.
            raise SynapseError(503, f"the school policy store failed: {exc}", Codes.UNKNOWN) from exc

    async def _put_user(self, request: Any, match: Any) -> tuple[int, Any]:
        user_id = _path_user_id(match)
        body = request.content.read()
        entry = await self._in_thread(self._engine.roster_put, user_id, body)
        return 200, json.loads(entry)

    async def _get_user(self, request: Any, match: Any) -> tuple[int, Any]:
        user_id = _path_user_id(match)
        try:
            # Memory only: no thread needed.
            entry = self._engine.roster_get(user_id)
        except _core.InputError as exc:
            raise SynapseError(400, str(exc), Codes.INVALID_PARAM) from exc
        if entry is None:
            raise SynapseError(404, f"{user_id} is not on the roster", Codes.NOT_FOUND)
        return 200, json.loads(entry)

    async def _delete_user(self, request: Any, match: Any) -> tuple[int, Any]:
        user_id = _path_user_id(match)
        await self._in_thread(self._engine.roster_delete, user_id)
        return 200, {}

    async def _post_roster(self, request: Any, match: Any) -> tuple[int, Any]:
        body = request.content.read()
        upserted = await self._in_thread(self._engine.roster_upsert, body)
        return 200, {"upserted": upserted}

    async def _get_audit(self, request: Any, match: Any) -> tuple[int, Any]:
        args = request.args
        query = {
            "since": _int_param(args, "since", 0),
            "until": _int_param(args, "until", 0),
            "limit": _int_param(args, "limit", 100, 1, 1000),
            "before": _int_param(args, "from", 0),
            "rule": _str_param(args, "rule"),
            "school": _str_param(args, "school"),
            "user": _str_param(args, "user"),
        }
        if query["rule"] is not None and query["rule"] not in _core.RULE_IDS:
            raise SynapseError(
                400, f"rule: unknown rule id {query['rule']!r}", Codes.INVALID_PARAM
            )
        result = await self._in_thread(lambda: self._engine.audit_query(**query))
        return 200, json.loads(result)

    async def _get_status(self, request: Any, match: Any) -> tuple[int, Any]:
        # With PostgreSQL this reads the shared tables, so any worker answers
        # for the reconciler on the background-tasks process.
        status = json.loads(await self._in_thread(self._engine.reconcile_status))
        # The roster feed runs on the background-tasks process; elsewhere it
        # shows state "not_running_here" (docs/roster-feed.md).
        feed = json.loads(self._engine.roster_feed_status())
        if feed is not None:
            status["roster_feed"] = feed
        return 200, status


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SynapseError(400, f"{name}: not valid UTF-8", Codes.INVALID_PARAM) from None


def _path_user_id(match: "re.Match[str]") -> str:
    """The URL-decoded {user_id}; the engine checks the rest (NUL, syntax, server)."""
    return _text(unquote_to_bytes(match.group(1)), "user_id")


def _str_param(args: dict[bytes, list[bytes]], name: str) -> str | None:
    values = args.get(name.encode())
    return _text(values[0], name) if values else None


def _int_param(
    args: dict[bytes, list[bytes]], name: str, default: int, low: int = 0, high: int = _INT64_MAX
) -> int:
    text = _str_param(args, name)
    if text is None or text == "":
        return default
    # The length test first: int() refuses texts of over 4300 digits with a ValueError.
    if (
        len(text) > len(str(high))
        or _DIGITS.fullmatch(text) is None
        or not low <= int(text) <= high
    ):
        raise SynapseError(
            400, f"{name}: expected an integer from {low} to {high}", Codes.INVALID_PARAM
        )
    return int(text)
