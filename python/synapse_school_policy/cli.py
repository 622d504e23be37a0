"""The `synapse-school-policy` command line.

It reads the module config from homeserver.yaml (--config) and works on the
module's store directly:

- with `database:` (PostgreSQL), every command, through the documented
  tables of schema school_policy (docs/schema.md); roster writes fire the
  same trigger as the admin API, so every running worker picks them up;
- with the embedded store, the read-only commands (`roster show`, `audit`)
  read data_dir's files; writes go through the running Synapse's admin API.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from typing import Any, Iterable

MODULE = "synapse_school_policy.SchoolPolicy"

# The same statement the engine's store thread runs for the admin API
# (csrc/pgstore.c ROSTER_PUSH_SQL): the last entry of a user wins, rows that
# do not change are left alone, so a repeated import notifies nobody.
ROSTER_PUSH_SQL = """
WITH input AS (
  SELECT t.ord, t.e->>'user_id' AS user_id, t.e->'schools' AS schools
  FROM json_array_elements(%s::json) WITH ORDINALITY AS t(e, ord)),
 latest AS (SELECT DISTINCT ON (user_id) user_id, schools FROM input ORDER BY user_id, ord DESC),
 wanted AS (SELECT l.user_id, s->>'school' AS school, s->>'role' AS role
  FROM latest l, json_array_elements(l.schools) s),
 removed AS (DELETE FROM school_policy.roster r USING latest l
  WHERE r.user_id = l.user_id AND NOT EXISTS (SELECT 1 FROM wanted w
   WHERE w.user_id = r.user_id AND w.school = r.school))
INSERT INTO school_policy.roster AS r (user_id, school, role)
SELECT user_id, school, role FROM wanted
ON CONFLICT (user_id, school) DO UPDATE SET role = EXCLUDED.role
WHERE r.role IS DISTINCT FROM EXCLUDED.role
"""

AUDIT_FIELDS = ("id", "ts", "rule", "callback", "enforced", "actor", "target", "room_id",
                "event_type", "school", "worker")


class CliError(Exception):
    pass


def read_homeserver_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path) as f:
            hs = yaml.safe_load(f) or {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
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


def parse_duration_ms(text: str) -> int:
    """'90d', '12h', '30m', '45s' -> milliseconds."""
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if not match:
        raise CliError(f"expected a duration such as 30m, 12h or 90d, got {text!r}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]
    return int(match.group(1)) * unit * 1000


def parse_since_ms(text: str) -> int:
    """A duration back from now (1h, 7d), or ms since the epoch."""
    if text.isdigit():
        return int(text)
    return int(time.time() * 1000) - parse_duration_ms(text)


# ---- roster files ----------------------------------------------------------

def load_server_name(path: str) -> str:
    """homeserver.yaml's server_name: the roster holds users of this server only."""
    name = read_homeserver_yaml(path).get("server_name")
    if not isinstance(name, str) or not name:
        raise CliError(f"{path}: server_name: missing; the roster holds users of this server only")
    return name


def read_roster_file(path: str, server_name: str) -> list[dict]:
    """CSV (user_id,school,role; a header line is optional) or JSON in the
    POST /roster shape. Returns [{"user_id", "schools": [...]}], one per user.

    Both go through the engine's own validator (_core.roster_check), the one
    behind POST /roster, so the rules and messages are the same."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    if data.lstrip().startswith(b"{"):
        return _check(data, server_name, lambda message: f"{path}: {message}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    by_user: dict[str, dict[str, tuple[str, int]]] = {}
    for line_no, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or (line_no == 1 and row[0].strip() == "user_id"):
            continue
        if len(row) != 3:
            raise CliError(f"{path}:{line_no}: expected user_id,school,role")
        user_id, school, role = (c.strip() for c in row)
        by_user.setdefault(user_id, {})[school] = (role, line_no)
    entries = [
        {"user_id": u, "schools": [{"school": s, "role": r} for s, (r, _) in schools.items()]}
        for u, schools in by_user.items()
    ]
    lines = [[n for _, n in schools.values()] for schools in by_user.values()]

    def where(message: str) -> str:
        # users[i].schools[j].role -> line N.role; users[i].user_id -> line N: user_id
        def rename(m: "re.Match[str]") -> str:
            i = int(m.group(1))
            j = int(m.group(2)) if m.group(2) is not None else 0
            line = f"line {lines[i][j] if lines[i] else '?'}"
            return f"{line}: user_id" if m.group(3) else line

        return re.sub(r"^users\[(\d+)\](?:\.schools\[(\d+)\])?(\.user_id)?", rename, message)

    return _check(json.dumps({"users": entries}), server_name, where)


def _check(body: bytes | str, server_name: str, where) -> list[dict]:
    from synapse_school_policy import _core

    try:
        return _core.roster_check(body, server_name)
    except _core.InputError as exc:  # JsonSyntaxError included
        raise CliError(where(str(exc))) from exc


# ---- stores ----------------------------------------------------------------

class PostgresStore:
    def __init__(self, dsn: str):
        try:
            import psycopg2
        except ImportError as exc:  # pragma: no cover - Synapse on PostgreSQL has it
            raise CliError("psycopg2 is needed for the PostgreSQL store (pip install psycopg2)") from exc
        try:
            self.conn = psycopg2.connect(dsn)
        except psycopg2.Error as exc:
            raise CliError(f"database: cannot connect: {exc}".strip()) from exc
        with self.conn.cursor() as cur:
            cur.execute("SELECT to_regclass('school_policy.roster')")
            if cur.fetchone()[0] is None:
                raise CliError("database: schema school_policy does not exist yet; start Synapse "
                               "with the module once to create it")

    def import_roster(self, entries: list[dict]) -> int:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(ROSTER_PUSH_SQL, (json.dumps(entries),))
            return cur.rowcount

    def show(self, user_id: str) -> list[dict] | None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT school, role FROM school_policy.roster WHERE user_id = %s "
                        "ORDER BY school", (user_id,))
            rows = cur.fetchall()
        return [{"school": s, "role": r} for s, r in rows] or None

    def audit(self, since: int, rule: str | None, school: str | None, user: str | None,
              limit: int) -> list[dict]:
        sql = ("SELECT id, (extract(epoch FROM ts) * 1000)::bigint, rule, callback, enforced, "
               "actor, target, room_id, event_type, school, worker FROM school_policy.audit WHERE true")
        args: list[Any] = []
        if since:
            sql += " AND ts >= timestamptz 'epoch' + %s * interval '1 ms'"
            args.append(since)
        for column, value in (("rule", rule), ("school", school)):
            if value is not None:
                sql += f" AND {column} = %s"
                args.append(value)
        if user is not None:
            sql += " AND (actor = %s OR target = %s)"
            args += [user, user]
        sql += " ORDER BY id DESC LIMIT %s"
        args.append(limit)
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return [dict(zip(AUDIT_FIELDS, row)) for row in cur.fetchall()]

    def purge(self, older_than_ms: int) -> int:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("DELETE FROM school_policy.audit WHERE ts < now() - %s * interval '1 ms'",
                        (older_than_ms,))
            return cur.rowcount


class EmbeddedStore:
    """Read-only access to the embedded store's files."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir

    def _lines(self, name: str) -> Iterable[dict]:
        path = os.path.join(self.data_dir, name)
        try:
            with open(path) as f:
                for line in f:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
        except FileNotFoundError:
            return

    def import_roster(self, entries: list[dict]) -> int:
        raise CliError("roster import needs the PostgreSQL store (database:); with the embedded "
                       "store, POST the file's users to the running Synapse's admin API "
                       "(/_synapse/client/school_policy/v1/roster)")

    def show(self, user_id: str) -> list[dict] | None:
        schools = None
        for entry in self._lines("roster.jsonl"):
            if entry.get("user_id") == user_id:
                schools = entry.get("schools") or None
        return schools

    def audit(self, since: int, rule: str | None, school: str | None, user: str | None,
              limit: int) -> list[dict]:
        matches = [
            r for r in self._lines("audit.jsonl")
            if (not since or r.get("ts", 0) >= since)
            and (rule is None or r.get("rule") == rule)
            and (school is None or r.get("school") == school)
            and (user is None or user in (r.get("actor"), r.get("target")))
        ]
        return list(reversed(matches[-limit:]))

    def purge(self, older_than_ms: int) -> int:
        raise CliError("audit purge needs the PostgreSQL store (database:)")


def open_store(config: dict) -> PostgresStore | EmbeddedStore:
    if config.get("database"):
        return PostgresStore(config["database"])
    return EmbeddedStore(config["data_dir"])


# ---- commands --------------------------------------------------------------

def _print_table(records: list[dict]) -> None:
    columns = ("id", "time", "rule", "callback", "enforced", "actor", "target", "room_id",
               "event_type", "school", "worker")
    rows = []
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["ts"] / 1000))
        rows.append([str(r["id"]), when] + ["" if r.get(c) is None else str(r.get(c)) for c in columns[2:]])
    _print_columns(columns, rows)


def _print_columns(columns: tuple[str, ...], rows: list) -> None:
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def doctor(path: str) -> int:
    """Checks homeserver.yaml: the self-check's Synapse settings and the module config."""
    import yaml

    from synapse_school_policy import _core, homeserver_check

    try:
        with open(path, encoding="utf-8") as f:
            homeserver = yaml.safe_load(f) or {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(homeserver, dict):
        raise CliError(f"{path} does not hold a YAML mapping")
    problems = [
        f"{f['setting']}: {f['problem']}"
        for f in homeserver_check.findings(homeserver_check.settings_from_yaml(homeserver))
    ]
    module_config = next(
        (e.get("config") or {} for e in homeserver.get("modules") or () if isinstance(e, dict) and e.get("module") == MODULE),
        None,
    )
    if module_config is None:
        problems.append(f"modules: {MODULE} is not configured")
    else:
        try:
            _core.check_config(json.dumps(module_config))
        except _core.InputError as exc:
            problems.append(f"modules.{MODULE}.config.{exc}")
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        return 1
    print(f"{path}: no problems found")
    return 0


def show_status(config: dict, as_json: bool) -> int:
    """Reads the store as the running module does (the engine's own code),
    without opening it for writing, so it works while Synapse runs."""
    from synapse_school_policy import _core

    try:
        status = _core.reconcile_status_offline(json.dumps(config))
    except (_core.InputError, _core.StoreError) as exc:
        raise CliError(str(exc)) from exc
    if as_json:
        print(json.dumps(status))
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
    parser = argparse.ArgumentParser(prog="synapse-school-policy")
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
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    audit_sub = audit.add_subparsers(dest="audit_command")
    purge = audit_sub.add_parser("purge", help="delete old audit records")
    purge.add_argument("--older-than", required=True, help="e.g. 90d")
    status = sub.add_parser("status", help="each school's opt-in, special rooms and pending reconciliation")
    status.add_argument("--json", action="store_true", help="the GET /status body instead of a table")
    doc = sub.add_parser("doctor", help="check homeserver.yaml for settings that break the school rules")
    doc.add_argument("homeserver_yaml", nargs="?", help="path of homeserver.yaml (default: --config)")
    args = parser.parse_args(argv)

    try:
        if args.command == "doctor":
            return doctor(args.homeserver_yaml or args.config)
        config = load_module_config(args.config)
        if args.command == "status":
            return show_status(config, args.json)
        store = open_store(config)
        if args.command == "roster" and args.roster_command == "import":
            started = time.monotonic()
            entries = read_roster_file(args.file, load_server_name(args.config))
            changed = store.import_roster(entries)
            print(f"imported {len(entries)} users ({changed} rows changed) in "
                  f"{time.monotonic() - started:.2f} s")
        elif args.command == "roster":
            schools = store.show(args.user)
            if schools is None:
                print(f"{args.user} is not on the roster", file=sys.stderr)
                return 1
            print(json.dumps({"user_id": args.user, "schools": schools}))
        elif args.audit_command == "purge":
            deleted = store.purge(parse_duration_ms(args.older_than))
            print(f"deleted {deleted} audit records older than {args.older_than}")
        else:
            if args.rule is not None:
                from synapse_school_policy import _core

                if args.rule not in _core.RULE_IDS:
                    raise CliError(f"--rule: unknown rule id {args.rule!r}")
            records = store.audit(parse_since_ms(args.since) if args.since else 0, args.rule,
                                  args.school, args.user, max(1, args.limit))
            if args.json:
                for r in records:
                    print(json.dumps(r))
            else:
                _print_table(records)
    except CliError as exc:
        print(f"synapse-school-policy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
