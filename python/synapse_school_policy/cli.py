"""The `synapse-school-policy` command line.

It reads the module config from homeserver.yaml (--config) and is a client
of the engine: every command that touches the store opens it with the
engine's offline open (`Engine.open(offline=True)`, ssp_open_options in
csrc/ssp.h), so the parsing, the input rules and the store code are the
ones behind the admin API. No SQL and no reading of store files here.

- PostgreSQL (`database:`): the store opens as a worker does (files named
  after the worker "cli" in data_dir), only with the database reachable.
  Roster writes go through the engine's own roster push, the statement and
  trigger of POST /roster, so every running worker picks them up; a command
  returns once they are in the database.
- Embedded store: data_dir belongs to the running Synapse, so the offline
  open reads a private copy and never writes to data_dir's store files; the
  commands that write refuse and point at the admin API.
- Reads of the audit go through the engine's audit view, like GET /audit,
  and are recorded in the read log (reader: the module's own user, access
  "operator", worker "cli").
- Everything printed as text goes through terminal.escape (table cells,
  messages, argparse's errors): pupils choose event types, and the terminal
  must only show them. JSON output is ASCII (json.dumps escapes the rest).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from typing import Any, Callable, NoReturn

from synapse_school_policy.terminal import escape

MODULE = "synapse_school_policy.SchoolPolicy"

# The engine's worker name for the command line: the read log and the
# PostgreSQL store's files in data_dir (cli.lock: one command at a time).
CLI_WORKER = "cli"

# A page of the audit view holds at most this many records.
AUDIT_PAGE_MAX = 1000

SYNC_TIMEOUT_MS = 30_000


class CliError(Exception):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse's own errors echo the arguments given (an unrecognized one
    as it is): escaped like every other message. Its subparsers are of this
    class too (add_subparsers makes them of the parser's class)."""

    def error(self, message: str) -> NoReturn:
        super().error(escape(message))


def yaml_problem(exc: Exception) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own
    message spans lines and quotes the file)."""
    import yaml

    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and mark is not None:
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        # A character YAML refuses (a control character, say).
        return (f"unacceptable character #x{exc.character:04x}: {exc.reason} "
                f"(character {exc.position})")
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def read_homeserver_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path) as f:
            hs = yaml.safe_load(f) or {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {yaml_problem(exc)}") from exc
    return hs if isinstance(hs, dict) else {}


def load_module_config(path: str) -> dict:
    hs = read_homeserver_yaml(path)
    for entry in hs.get("modules") or ():
        if isinstance(entry, dict) and entry.get("module") == MODULE:
            config = entry.get("config") or {}
            from synapse_school_policy import _core

            try:
                _core.check_config(json.dumps(config))
            except _core.InputError as exc:
                raise CliError(f"{path}: module config: {exc}") from exc
            return config
    raise CliError(f"{path} has no modules entry for {MODULE}")


def load_server_name(path: str) -> str:
    """homeserver.yaml's server_name: the roster holds users of this server only."""
    name = read_homeserver_yaml(path).get("server_name")
    if not isinstance(name, str) or not name:
        raise CliError(f"{path}: server_name: missing; the roster holds users of this server only")
    return name


def parse_duration_ms(text: str) -> int:
    """'90d', '12h', '30m', '45s' -> milliseconds."""
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if not match:
        raise CliError(f'expected a duration such as 30m, 12h or 90d, got "{text}"')
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]
    return int(match.group(1)) * unit * 1000


def parse_since_ms(text: str) -> int:
    """A duration back from now (1h, 7d), or ms since the epoch."""
    if text.isascii() and text.isdigit():  # isdigit alone also takes "²", which int() refuses
        return int(text)
    return int(time.time() * 1000) - parse_duration_ms(text)


# ---- the engine -------------------------------------------------------------

class OfflineEngine:
    """The engine opened offline on the store of homeserver.yaml's module config."""

    def __init__(self, config_path: str):
        from synapse_school_policy import _core

        self.core = _core
        self.config = load_module_config(config_path)
        self.server_name = load_server_name(config_path)
        try:
            self.engine = _core.Engine(json.dumps(self.config), self.server_name, CLI_WORKER)
            self.engine.open(offline=True)
        except (_core.InputError, _core.StoreError) as exc:
            raise CliError(str(exc)) from exc

    def call(self, fn: Callable[..., Any], *args: Any, where: Callable[[str], str] = str,
             **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self.core.InputError as exc:  # JsonSyntaxError included
            raise CliError(where(str(exc))) from exc
        except self.core.StoreError as exc:
            raise CliError(str(exc)) from exc

    def close(self) -> None:
        """Frees the engine: on PostgreSQL its thread stops after pushing."""
        self.engine = None


# ---- roster files -----------------------------------------------------------

def read_roster_file(path: str) -> tuple[bytes, Callable[[str], str], int]:
    """CSV (user_id,school,role; a header line is optional) or JSON in the
    POST /roster shape -> (a POST /roster body, a function that names the
    file's line or field in the engine's messages, the number of users).

    The CSV is only turned into that body here; parsing the body and every
    input rule are the engine's, as for POST /roster."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    if data.lstrip().startswith(b"{"):
        try:
            users = json.loads(data).get("users")
            count = len(users) if isinstance(users, list) else 0
        except (ValueError, AttributeError):
            count = 0  # the engine names what is wrong
        return data, lambda message: f"{path}: {message}", count
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    # Every row goes to the engine as it is, in the file's order (a user's
    # rows gathered into one entry): a (user, school) pair given twice is
    # the engine's "listed twice" error, named by its line, as in POST /roster.
    by_user: dict[str, list[tuple[str, str, int]]] = {}
    for line_no, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or (line_no == 1 and row[0].strip() == "user_id"):
            continue
        if len(row) != 3:
            raise CliError(f"{path}:{line_no}: expected user_id,school,role")
        user_id, school, role = (c.strip() for c in row)
        by_user.setdefault(user_id, []).append((school, role, line_no))
    entries = [
        {"user_id": u, "schools": [{"school": s, "role": r} for s, r, _ in rows]}
        for u, rows in by_user.items()
    ]
    lines = [[n for _, _, n in rows] for rows in by_user.values()]

    def where(message: str) -> str:
        # users[i].schools[j].role -> line N.role; users[i].user_id -> line N: user_id
        def rename(m: "re.Match[str]") -> str:
            i = int(m.group(1))
            j = int(m.group(2)) if m.group(2) is not None else 0
            line = f"line {lines[i][j] if lines[i] else '?'}"
            return f"{line}: user_id" if m.group(3) else line

        return re.sub(r"^users\[(\d+)\](?:\.schools\[(\d+)\])?(\.user_id)?", rename, message)

    return json.dumps({"users": entries}).encode(), where, len(entries)


def _memberships(schools: Any) -> set[tuple[str, str]]:
    return {(m.get("school"), m.get("role")) for m in schools or () if isinstance(m, dict)}


def import_roster(store: OfflineEngine, path: str) -> str:
    started = time.monotonic()
    body, where, count = read_roster_file(path)
    # Which users the import changes, against the roster the engine loaded
    # at open (for the summary only: the whole file is written, and the
    # engine's push leaves rows that do not change alone).
    try:
        users = json.loads(body).get("users")
    except (ValueError, AttributeError):
        users = None
    before = {}
    if isinstance(users, list):
        for u in users:
            uid = u.get("user_id") if isinstance(u, dict) else None
            if isinstance(uid, str) and "\0" not in uid:
                entry = store.call(store.engine.roster_get, uid)
                before[uid] = _memberships(entry["schools"]) if entry is not None else set()
    counts = store.call(store.engine.roster_upsert, body, where=where)
    upserted = counts["upserted"]
    store.call(store.engine.store_sync, timeout_ms=SYNC_TIMEOUT_MS)
    changed = sum(1 for u in users if before.get(u["user_id"]) != _memberships(u.get("schools"))) \
        if isinstance(users, list) else upserted
    groups = f" and {counts['groups']} groups" if counts.get("groups") else ""
    return (f"imported {upserted if upserted is not None else count} users ({changed} changed)"
            f"{groups} in {time.monotonic() - started:.2f} s")


def show_user(store: OfflineEngine, user_id: str) -> dict | None:
    entry = store.call(store.engine.roster_get, user_id)
    if entry is None:
        return None
    entry["schools"] = sorted(entry["schools"], key=lambda m: m["school"])
    return entry


# ---- the audit ---------------------------------------------------------------

AUDIT_OPTIONS = ("since", "rule", "school", "user", "limit", "kind")


def _option_message(message: str) -> str:
    """The engine names the query field; the command line's option is --field."""
    for name in AUDIT_OPTIONS:
        if message.startswith(f"{name}:"):
            return f"--{message}"
    return message


def audit_view(store: OfflineEngine, op: str, query: dict) -> dict:
    """One request to the engine's audit view, as the admin API makes it,
    by the module's own user (a service user: access "operator")."""
    request = {"op": op, "reader": store.engine.reconciler_user, "server_admin": False,
               "query": query}
    response = store.call(store.engine.audit_view, json.dumps(request), where=_option_message)
    if response.get("status") != 200:
        raise CliError(response.get("error") or f"audit view answered {response.get('status')}")
    return response["body"]


def query_audit(store: OfflineEngine, since: int | None, rule: str | None, school: str | None,
                user: str | None, limit: int, kind: str | None = None) -> list[dict]:
    """Newest first; more than a page is read page by page (each page a read
    in the read log)."""
    if limit < 1:
        raise CliError("--limit: expected a positive integer")
    query: dict[str, Any] = {k: v for k, v in (("since", since), ("rule", rule), ("school", school),
                                               ("user", user), ("kind", kind)) if v is not None}
    records: list[dict] = []
    while len(records) < limit:
        query["limit"] = min(AUDIT_PAGE_MAX, limit - len(records))
        page = audit_view(store, "audit", query)
        records += page["records"]
        if not page.get("next"):
            break
        query["from"] = int(page["next"])
    return records


def purge_audit(store: OfflineEngine, older_than: str) -> int:
    # The engine takes a point in time: the duration ends now.
    before_ms = int(time.time() * 1000) - parse_duration_ms(older_than)
    return store.call(store.engine.audit_purge, before_ms=before_ms)


# ---- commands --------------------------------------------------------------

def _print_table(records: list[dict]) -> None:
    """One line a record. A summary of a flood shows its count and the time
    its last denial ended; an action shows what the module did in the rule
    column's place (kind "action"), its group and its reason."""
    columns = ("id", "time", "kind", "rule/action", "count", "callback", "enforced", "actor",
               "target", "room_id", "event_type", "group", "school", "reason", "worker")
    rows = []
    for r in records:
        when = _utc(r["ts"])
        if r.get("last_ts"):
            when += " to " + _utc(r["last_ts"])[11:]
        what = r.get("action") if r.get("kind") == "action" else r.get("rule")
        cells = [r.get("kind"), what, r.get("count", 1), r.get("callback"), r.get("enforced"),
                 r.get("actor"), r.get("target"), r.get("room_id"), r.get("event_type"),
                 r.get("group"), r.get("school"), r.get("reason"), r.get("worker")]
        rows.append([str(r.get("id", "")), when] + ["" if c is None else str(c) for c in cells])
    _print_columns(columns, rows)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _print_columns(columns: tuple[str, ...], rows: list) -> None:
    """Every table the command prints: each cell escaped (so a row is one
    line and its cells are what they show), then aligned."""
    cells = [[escape(v) for v in row] for row in (columns, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _print_json(value: Any) -> None:
    # ensure_ascii (json.dumps' default, spelled out because it is what keeps
    # a control character or a bidi override out of the terminal): every
    # character outside printable ASCII is written as a \u escape.
    print(json.dumps(value, ensure_ascii=True))


def doctor(path: str) -> int:
    """Checks homeserver.yaml: the self-check's Synapse settings and the
    module config. Refusals and config errors are problems (exit 1);
    warnings and notes are printed, and the hardened block with them."""
    import yaml

    from synapse_school_policy import _core, homeserver_check

    try:
        with open(path, encoding="utf-8") as f:
            homeserver = yaml.safe_load(f) or {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {yaml_problem(exc)}") from exc
    if not isinstance(homeserver, dict):
        raise CliError(f"{path} does not hold a YAML mapping")
    module_config = next(
        (e.get("config") or {} for e in homeserver.get("modules") or () if isinstance(e, dict) and e.get("module") == MODULE),
        None,
    )
    result = homeserver_check.check(
        homeserver_check.settings_from_yaml(homeserver, _announcement_rooms(module_config))
    )
    found = result["findings"]
    problems = [f"{f['setting']}: {f['problem']}" for f in found if f["verdict"] == "refuse"]
    if module_config is None:
        problems.append(f"modules: {MODULE} is not configured")
    else:
        try:
            _core.check_config(json.dumps(module_config))
        except _core.InputError as exc:
            problems.append(f"modules.{MODULE}.config.{exc}")
    for problem in problems:
        print(f"problem: {escape(problem)}")
    for label, verdict in (("warning", "warn"), ("note", "report")):
        for f in found:
            if f["verdict"] == verdict:
                print(f"{label}: {escape(f['setting'])}: {escape(f['problem'])}")
    warnings = sum(f["verdict"] == "warn" for f in found)
    notes = sum(f["verdict"] == "report" for f in found)
    summary = f"{len(problems)} problem(s)" if problems else "no problems found"
    if warnings or notes:
        summary += f", {warnings} warning(s), {notes} note(s)"
    print(f"{escape(path)}: {summary}")
    if found:
        print()
        # Line by line: the block's line breaks are its own, anything else
        # (a server name or room id from the config) is escaped.
        for line in result["hardened_block"].splitlines():
            print(escape(line))
    return 1 if problems else 0


def _announcement_rooms(module_config: dict | None) -> list[str] | None:
    """The announcement rooms in the module's store, read as `status` reads
    them; None when they cannot be read (no valid config, store away)."""
    from synapse_school_policy import _core, homeserver_check

    if module_config is None:
        return None
    try:
        return homeserver_check.announcement_rooms(_core.reconcile_status_offline(json.dumps(module_config)))
    except (_core.InputError, _core.StoreError):
        return None


def show_status(config: dict, as_json: bool) -> int:
    """Reads the store as the running module does (the engine's own code),
    without opening it for writing, so it works while Synapse runs."""
    from synapse_school_policy import _core

    try:
        status = _core.reconcile_status_offline(json.dumps(config))
    except (_core.InputError, _core.StoreError) as exc:
        raise CliError(str(exc)) from exc
    if as_json:
        _print_json(status)
        return 0
    columns = ("school", "messenger", "teachers_room", "announcement_room", "pending", "last_error")
    rows = [
        (school, "on" if s["messenger"] else "off", s["teachers_room"] or "-",
         s["announcement_room"] or "-", str(s["pending"]), s["last_error"] or "-")
        for school, s in status["schools"].items()
    ]
    _print_columns(columns, rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="synapse-school-policy")
    parser.add_argument("--config", "-c", default="homeserver.yaml",
                        help="homeserver.yaml holding the module config")
    sub = parser.add_subparsers(dest="command", required=True)
    roster = sub.add_parser("roster").add_subparsers(dest="roster_command", required=True)
    imp = roster.add_parser("import", help="import CSV (user_id,school,role) or JSON ({\"users\": [...]})")
    imp.add_argument("file")
    show = roster.add_parser("show", help="show one user's roster entries")
    show.add_argument("user")
    audit = sub.add_parser("audit", help="query the audit log, newest first")
    audit.add_argument("--since", help="e.g. 1h, 7d, or ms since the epoch")
    audit.add_argument("--rule")
    audit.add_argument("--school")
    audit.add_argument("--user", help="actor or target")
    audit.add_argument("--kind", choices=("denial", "action"),
                       help="denials only, or only what the module did (default: both)")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    audit_sub = audit.add_subparsers(dest="audit_command")
    purge = audit_sub.add_parser("purge", help="delete old audit records")
    purge.add_argument("--older-than", required=True, help="e.g. 90d")
    status = sub.add_parser("status", help="each school's opt-in, special rooms and pending reconciliation")
    status.add_argument("--json", action="store_true", help="the GET /status body instead of a table")
    doc = sub.add_parser(
        "doctor", help="check homeserver.yaml for settings that weaken the school rules; print the hardened settings"
    )
    doc.add_argument("homeserver_yaml", nargs="?", help="path of homeserver.yaml (default: --config)")
    args = parser.parse_args(argv)

    store = None
    try:
        if args.command == "doctor":
            return doctor(args.homeserver_yaml or args.config)
        if args.command == "status":
            return show_status(load_module_config(args.config), args.json)
        if args.command == "audit" and args.audit_command is None and args.since:
            since = parse_since_ms(args.since)  # a bad --since fails before the store opens
        else:
            since = None
        store = OfflineEngine(args.config)
        if args.command == "roster" and args.roster_command == "import":
            print(import_roster(store, args.file))
        elif args.command == "roster":
            entry = show_user(store, args.user)
            if entry is None:
                print(f"{escape(args.user)} is not on the roster", file=sys.stderr)
                return 1
            _print_json(entry)
        elif args.audit_command == "purge":
            deleted = purge_audit(store, args.older_than)
            print(f"deleted {deleted} audit records older than {escape(args.older_than)}")
        else:
            records = query_audit(store, since, args.rule, args.school, args.user, args.limit,
                                  args.kind)
            if args.json:
                for r in records:
                    _print_json(r)
            else:
                _print_table(records)
    except CliError as exc:
        print(f"synapse-school-policy: {escape(str(exc))}", file=sys.stderr)
        return 2
    finally:
        if store is not None:
            store.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
