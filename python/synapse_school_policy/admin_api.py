"""The admin REST API under /_synapse/client/school_policy/v1.

Who may call what is the engine's decision (Engine.audit_view): service
users and server admins everything; audit readers and school admins the
read endpoints, a school admin confined to their schools. Request bodies
are validated by the engine, whose messages name the bad field; anything
that touches the disk runs in a thread of the module's own pools
(threads.py) so that neither the reactor nor Synapse's thread pool waits
on it.
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

    def __init__(self, api: ModuleApi, engine: Any, service_users: frozenset[str], threads: Any):
        super().__init__()
        self._api = api
        self._engine = engine
        self._threads = threads
        self._service_users = service_users
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("PUT", _USER_PATH, self._put_user),
            ("GET", _USER_PATH, self._get_user),
            ("DELETE", _USER_PATH, self._delete_user),
            ("POST", re.compile(r"^/roster$"), self._post_roster),
            ("GET", re.compile(r"^/audit$"), self._get_audit),
            ("GET", re.compile(r"^/audit/chart$"), self._get_chart),
            ("GET", re.compile(r"^/audit/reads$"), self._get_reads),
            ("GET", re.compile(r"^/status$"), self._get_status),
            ("GET", re.compile(r"^/rules$"), self._get_rules),
            ("GET", re.compile(r"^/me$"), self._get_me),
        ]
        # Routes that read (the engine decides per reader what they see);
        # every other route writes and needs a service user or server admin.
        self._read_routes = {
            self._get_audit, self._get_chart, self._get_reads, self._get_status,
            self._get_rules, self._get_me,
        }

    def render(self, request: Any) -> Any:
        # Before any handler runs, so that every answer carries it: success,
        # the 401 of get_user_by_req, Synapse's 405 for a method it has no
        # handler for, and every error (Synapse's error path only adds
        # headers). Browsers must take the JSON as JSON, never sniff it as
        # HTML: an answer can echo what a user wrote (an event type, a user id).
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return super().render(request)

    async def _async_render_GET(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "GET")

    async def _async_render_PUT(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "PUT")

    async def _async_render_POST(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "POST")

    async def _async_render_DELETE(self, request: Any) -> tuple[int, Any]:
        return await self._route(request, "DELETE")

    async def _route(self, request: Any, method: str) -> tuple[int, Any]:
        # get_user_by_req raises the 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN errors.
        requester = await self._api.get_user_by_req(request)
        reader = requester.user.to_string()
        path = _text(request.path, "path")[len(ADMIN_API_PREFIX):]
        path_known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            path_known = True
            if route_method == method:
                if handler not in self._read_routes:
                    await self._view(reader, "write", {})
                    return await handler(request, match)
                request.school_policy_reader = reader
                return await handler(request, match)
        if path_known:
            raise SynapseError(405, f"{method} is not supported on {path}", Codes.UNRECOGNIZED)
        raise SynapseError(404, f"No such endpoint: {path}", Codes.UNRECOGNIZED)

    async def _view(self, reader: str, op: str, query: dict[str, Any]) -> Any:
        """Asks the engine (in a thread: it may read the store and records
        every read) and turns its 403 into Synapse's error."""
        server_admin = await self._api.is_user_admin(reader)
        request = json.dumps(
            {"op": op, "reader": reader, "server_admin": bool(server_admin), "query": query}
        )
        answer = await self._in_thread(self._engine.audit_view, request, reads=True)
        if answer["status"] != 200:
            raise SynapseError(answer["status"], answer["error"], Codes.FORBIDDEN)
        return answer["body"]

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, reads: bool = False) -> Any:
        """fn(*args) in the module's readers' pool (reads) or store pool,
        its errors as the API's answers."""
        try:
            if reads:
                return await self._threads.read(fn, *args)
            return await self._threads.store(fn, *args)
        except _core.JsonSyntaxError as exc:
            raise SynapseError(400, str(exc), Codes.BAD_JSON) from exc
        except _core.InputError as exc:
            raise SynapseError(400, str(exc), Codes.INVALID_PARAM) from exc
        except _core.DatabaseError as exc:
            # The database refused the statement (an SQL error): retrying
            # will not help; the message is the database's.
            raise SynapseError(500, f"the school policy database failed: {exc}",
                               Codes.UNKNOWN) from exc
        except _core.StoreError as exc:
            # The store cannot be reached (PostgreSQL away, a disk error): a
            # retry later can succeed.
            raise SynapseError(503, f"the school policy store failed: {exc}", Codes.UNKNOWN) from exc

    async def _put_user(self, request: Any, match: Any) -> tuple[int, Any]:
        user_id = _path_user_id(match)
        body = request.content.read()
        return 200, await self._in_thread(self._engine.roster_put, user_id, body)

    async def _get_user(self, request: Any, match: Any) -> tuple[int, Any]:
        user_id = _path_user_id(match)
        try:
            # Memory only: no thread needed.
            entry = self._engine.roster_get(user_id)
        except _core.InputError as exc:
            raise SynapseError(400, str(exc), Codes.INVALID_PARAM) from exc
        if entry is None:
            raise SynapseError(404, f"{user_id} is not on the roster", Codes.NOT_FOUND)
        return 200, entry

    async def _delete_user(self, request: Any, match: Any) -> tuple[int, Any]:
        user_id = _path_user_id(match)
        await self._in_thread(self._engine.roster_delete, user_id)
        return 200, {}

    async def _post_roster(self, request: Any, match: Any) -> tuple[int, Any]:
        body = request.content.read()
        # {"upserted": N, "groups": M}: users written, groups applied
        counts = await self._in_thread(self._engine.roster_upsert, body)
        return 200, counts

    async def _get_audit(self, request: Any, match: Any) -> tuple[int, Any]:
        query = _audit_query(request.args, ("since", "until", "limit", "from"),
                             ("rule", "school", "user", "kind"))
        return 200, await self._view(request.school_policy_reader, "audit", query)

    async def _get_chart(self, request: Any, match: Any) -> tuple[int, Any]:
        query = _audit_query(request.args, ("since", "until", "bucket"), ("rule", "school", "user"))
        return 200, await self._view(request.school_policy_reader, "chart", query)

    async def _get_reads(self, request: Any, match: Any) -> tuple[int, Any]:
        query = _audit_query(request.args, ("since", "until", "limit", "from"), ())
        return 200, await self._view(request.school_policy_reader, "reads", query)

    async def _get_status(self, request: Any, match: Any) -> tuple[int, Any]:
        # With PostgreSQL this reads the shared tables, so any worker answers
        # for the reconciler on the background-tasks process.
        return 200, await self._view(request.school_policy_reader, "status", {})

    async def _get_rules(self, request: Any, match: Any) -> tuple[int, Any]:
        return 200, await self._view(request.school_policy_reader, "rules", {})

    async def _get_me(self, request: Any, match: Any) -> tuple[int, Any]:
        return 200, await self._view(request.school_policy_reader, "access", {})


_INT_RANGES = {"limit": (100, 1, 1000), "bucket": (0, 60000, _INT64_MAX)}


def _audit_query(
    args: dict[bytes, list[bytes]], ints: tuple[str, ...], strings: tuple[str, ...]
) -> dict[str, Any]:
    """The query parameters the endpoint takes, syntax-checked; the engine
    checks the meaning (rule ids, ranges between parameters) and the
    reader's scope. Unknown parameters are ignored, as before."""
    query: dict[str, Any] = {}
    for name in ints:
        default, low, high = _INT_RANGES.get(name, (0, 0, _INT64_MAX))
        value = _int_param(args, name, default, low, high)
        if value != 0:
            query[name] = value
    for name in strings:
        text = _str_param(args, name)
        if text:
            if "\0" in text:
                raise SynapseError(400, f"{name}: contains a NUL character", Codes.INVALID_PARAM)
            query[name] = text
    return query


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
