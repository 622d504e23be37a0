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

from synapse_school_policy import _core, groups_status
from synapse_school_policy.adopt import Adopter, AdoptError
from synapse_school_policy.room_actions import GROUP_PREFIX, MEMBER

ADMIN_API_PREFIX = "/_synapse/client/school_policy/v1"

_USER_PATH = re.compile(r"^/users/([^/]+)$")
_GROUP_PATH = re.compile(r"^/groups/([^/]+)$")
_ADOPT_PATH = re.compile(r"^/groups/([^/]+)/adopt$")

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
            ("PUT", _GROUP_PATH, self._put_group),
            ("GET", _GROUP_PATH, self._get_group),
            ("DELETE", _GROUP_PATH, self._delete_group),
            ("GET", re.compile(r"^/groups$"), self._get_groups),
            ("POST", _ADOPT_PATH, self._adopt_group),
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
            self._get_rules, self._get_me, self._get_group, self._get_groups,
        }
        self._adopter = Adopter(api, engine, service_users, self._threads.store)

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
                    request.school_policy_reader = reader
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

    # ---- groups (docs/groups.md) ----------------------------------------------

    async def _put_group(self, request: Any, match: Any) -> tuple[int, Any]:
        group_id = _path_text(match, "group")
        body = request.content.read()
        return 200, await self._in_thread(self._engine.group_put, group_id, body)

    async def _delete_group(self, request: Any, match: Any) -> tuple[int, Any]:
        group_id = _path_text(match, "group")
        if not await self._in_thread(self._engine.group_delete, group_id):
            raise SynapseError(404, f"group {group_id} is unknown", Codes.NOT_FOUND)
        return 200, {}

    async def _readable_schools(self, reader: str) -> list[str] | None:
        """The schools whose groups the reader may see (None: every school),
        as the engine scopes the audit: a school admin their own."""
        access = await self._view(reader, "access", {})
        return None if access.get("access") != "school_admin" else list(access.get("schools") or ())

    async def _check_school(self, reader: str, school: str) -> None:
        schools = await self._readable_schools(reader)
        if schools is not None and school not in schools:
            raise SynapseError(403, "school: you may read the groups of the schools you are an "
                                    "admin of only", Codes.FORBIDDEN)

    async def _get_groups(self, request: Any, match: Any) -> tuple[int, Any]:
        school = _str_param(request.args, "school")
        if not school:
            raise SynapseError(400, "school: required (GET /groups?school=S)", Codes.MISSING_PARAM)
        if "\0" in school:
            raise SynapseError(400, "school: contains a NUL character", Codes.INVALID_PARAM)
        start = _str_param(request.args, "from") or None
        if start is not None and "\0" in start:
            raise SynapseError(400, "from: contains a NUL character", Codes.INVALID_PARAM)
        limit = _int_param(request.args, "limit", 100, 1, 1000)
        await self._check_school(request.school_policy_reader, school)
        return 200, await self._in_thread(_groups_page, self._engine, school, start, limit, reads=True)

    async def _get_group(self, request: Any, match: Any) -> tuple[int, Any]:
        group_id = _path_text(match, "group")
        group = await self._in_thread(self._engine.group_get, group_id, reads=True)
        if group is None:
            raise SynapseError(404, f"group {group_id} is unknown", Codes.NOT_FOUND)
        await self._check_school(request.school_policy_reader, group["school"])
        plan = await self._in_thread(self._engine.group_plan, group_id, reads=True)
        room_id = group.get("room_id")
        memberships: dict[str, str] = {}
        if room_id is not None:
            try:
                state = await self._api.get_room_state(room_id, [(MEMBER, None)])
            except Exception:  # noqa: BLE001 - a room this server lost: the group is still shown
                state = {}
            memberships = {key[1]: event.content.get("membership") for key, event in state.items()}
        planned = {m["user_id"]: m for m in (plan or {}).get("members", ())}
        for member in group.get("members", ()):
            entry = planned.get(member["user_id"], {})
            member["in_room"] = memberships.get(member["user_id"])  # join, invite, leave, ... or None
            member["should_be_in_room"] = bool(entry.get("member", False)) and \
                (plan or {}).get("state") != "deleted" and not (plan or {}).get("remove_members_now")
            member["why"] = entry.get("why")
            if room_id is None and member["should_be_in_room"]:
                member["why"] = "the group's room is not made yet"
        return 200, group

    async def _adopt_group(self, request: Any, match: Any) -> tuple[int, Any]:
        group_id = _path_text(match, "group")
        body = _json_object(request.content.read())
        room_id = body.get("room_id")
        if not isinstance(room_id, str) or not room_id.startswith("!") or "\0" in room_id:
            raise SynapseError(400, "room_id: expected a room id (!opaque or !opaque:server)",
                               Codes.INVALID_PARAM)
        unknown = sorted(set(body) - {"room_id"})
        if unknown:
            raise SynapseError(400, f"{unknown[0]}: unknown key", Codes.INVALID_PARAM)
        try:
            return 200, await self._adopter.adopt(group_id, room_id, request.school_policy_reader)
        except AdoptError as exc:
            code = Codes.NOT_FOUND if exc.status == 404 else Codes.INVALID_PARAM
            raise SynapseError(exc.status, str(exc), code) from exc
        except _core.InputError as exc:
            raise SynapseError(400, str(exc), Codes.INVALID_PARAM) from exc
        except _core.StoreError as exc:
            raise SynapseError(503, f"the school policy store failed: {exc}", Codes.UNKNOWN) from exc
        except SynapseError as exc:
            # Synapse refused an action of the adoption (a rule, an auth check).
            raise SynapseError(409, f"the room could not be adopted: {exc.msg}", Codes.FORBIDDEN) from exc

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
        # for the reconciler on the background-tasks process. Each school
        # adds its groups: how many, and how many rooms are not made yet.
        status = await self._view(request.school_policy_reader, "status", {})
        await self._in_thread(groups_status.add_to_status, self._engine, status, reads=True)
        return 200, status

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


def _groups_page(engine: Any, school: str, start: str | None, limit: int) -> dict:
    """A page of the school's groups, each with its recorded room_id."""
    page = engine.groups_list(school, start, limit)
    for group in page["groups"]:
        group["room_id"] = engine.reconcile_get_room(school, GROUP_PREFIX + group["group"])
    return page


def _path_text(match: "re.Match[str]", name: str) -> str:
    """A URL-decoded path segment; the engine checks the rest."""
    return _text(unquote_to_bytes(match.group(1)), name)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SynapseError(400, f"request body: not valid JSON: {exc}", Codes.BAD_JSON) from None
    if not isinstance(body, dict):
        raise SynapseError(400, "request body: expected a JSON object", Codes.BAD_JSON)
    return body


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
