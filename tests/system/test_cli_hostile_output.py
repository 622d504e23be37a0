"""A pupil's event type on the operator's terminal.

Through a real Synapse, a pupil in a one-way course sends events whose
types carry terminal control sequences (retitle, clear screen, an OSC 8
link), a CR/LF that would forge a table line, bidi overrides and isolates,
C1 controls and DEL. Each is denied and audited as it came. Then the real
command line (`synapse-school-policy audit`, a subprocess as the operator
runs it) prints the audit: its bytes hold none of those characters, each
record is one line with its columns where the header puts them, and the
event types read as escapes. `--json` gives them back exactly."""
import json
import subprocess
import sys
import time

import pytest

from support import School, base_config, membership, uid

pytestmark = pytest.mark.integration

# event type as the pupil sends it -> as the table shows it
HOSTILE = {
    "\x1b]0;pwned\x07m.title": r"\x1b]0;pwned\x07m.title",
    "\x1b[2J\x1b[3J\x1b[Hm.clear": r"\x1b[2J\x1b[3J\x1b[Hm.clear",
    "\x1b]8;;https://evil.example/\x1b\\m.link\x1b]8;;\x1b\\": r"\x1b]8;;https://evil.example/\x1b\\m.link\x1b]8;;\x1b\\",
    "m.forged\r\n9999  2000-01-01 00:00:00  one_way": r"m.forged\r\n9999  2000-01-01 00:00:00  one_way",
    "m.room.\u202eegassem": r"m.room.\u202eegassem",
    "m.\u2066isolated\u2069.\u200f\u061c\u200e": r"m.\u2066isolated\u2069.\u200f\u061c\u200e",
    "m.c1\x9b2J\x9d0;t\x9c.del\x7f": r"m.c1\x9b2J\x9d0;t\x9c.del\x7f",
}

# What must never reach the terminal, as UTF-8: C0 controls (tab and
# newline only as the table's own line ends), DEL, C1 (U+0080..U+009F),
# the bidi controls.
FORBIDDEN = [bytes([b]) for b in range(0x20) if b != 0x0A] + [b"\x7f"] + \
    [chr(c).encode() for c in range(0x80, 0xA0)] + \
    [chr(c).encode() for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)]


def run_cli(config_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "synapse_school_policy.cli", "--config", str(config_path), *args],
        capture_output=True, timeout=120,
    )


@pytest.fixture(scope="module")
def audited(module_synapse_factory, tmp_path_factory):
    """A Synapse whose audit holds one denial for each hostile event type."""
    world = School(module_synapse_factory(base_config(tmp_path_factory.mktemp("policy") / "store")))
    world.register("sync")
    for name in ("teacher", "pupil"):
        world.register(name)
    world.put_roster("teacher", membership("gym-nord", "teacher"))
    world.put_roster("pupil", membership("gym-nord", "student"))
    course = world.managed_room("gym-nord", invite=["teacher", "pupil"], moderators=["teacher"])
    assert world.users["pupil"].join(course)[0] == 200
    for event_type in HOSTILE:
        status, body = world.users["pupil"].send(course, event_type, {"body": "x"})
        assert status == 403 and body["school_policy"]["rule"] == "one_way", (event_type, status, body)
    deadline = time.monotonic() + 10
    while len(world.audit(user=uid("pupil"), rule="one_way")) < len(HOSTILE):
        assert time.monotonic() < deadline, "the denials never reached the audit"
        time.sleep(0.1)
    return world


def test_the_audit_table_shows_hostile_event_types_escaped_one_line_per_record(audited):
    res = run_cli(audited.server.config_path, "audit", "--user", uid("pupil"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for raw in FORBIDDEN:
        assert raw not in out, f"{raw!r} reached the terminal"
    header, *rows = out.decode("utf-8").splitlines()
    assert len(rows) == len(HOSTILE), out
    # Every row's columns start where the header's do: nothing moved a cell.
    school_at = header.index("school")
    assert all(row[school_at:].startswith("gym-nord") for row in rows), out
    event_at = header.index("event_type")
    shown = {row[event_at:school_at].rstrip() for row in rows}
    assert shown == set(HOSTILE.values())


def test_the_audit_as_json_gives_the_hostile_event_types_back_exactly(audited):
    res = run_cli(audited.server.config_path, "audit", "--user", uid("pupil"), "--json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.isascii(), "JSON output is ASCII: every other character is a \\u escape"
    records = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert {r["event_type"] for r in records} == set(HOSTILE)
