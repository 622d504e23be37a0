"""What the command line prints as text is escaped: control characters (C0,
C1, DEL), bidi overrides and isolates, every other non-printable character
and so every ESC/OSC sequence are shown as `\\x1b`-style escapes, in table
cells, in messages that echo input and in argparse's errors; JSON output
stays ASCII. No Synapse here: the commands run in-process on an embedded
store in a temporary directory."""
import json
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_school_policy import _core, cli
from synapse_school_policy.terminal import escape

SERVER = "school.test"

ESCAPE_TOKEN = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[tnr\\])")


def unescape(text: str) -> str:
    """The reverse of escape(), written independently of it."""
    def one(m: "re.Match[str]") -> str:
        token = m.group(1)
        short = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
        return short[token] if token in short else chr(int(token[1:], 16))

    return ESCAPE_TOKEN.sub(one, text)


# ---- the escaping function ----------------------------------------------------

@pytest.mark.parametrize(
    "raw, shown",
    [
        ("\x1b]0;pwned\x07", r"\x1b]0;pwned\x07"),  # OSC: retitle the terminal
        ("\x1b[2J\x1b[H", r"\x1b[2J\x1b[H"),  # CSI: clear the screen
        ("\x1b]8;;https://evil.example/\x1b\\x\x1b]8;;\x1b\\",  # OSC 8: a link
         r"\x1b]8;;https://evil.example/\x1b\\x\x1b]8;;\x1b\\"),
        ("a\r\nb\tc", r"a\r\nb\tc"),
        ("\x00\x08\x7f", r"\x00\x08\x7f"),  # NUL, backspace, DEL
        ("\x85\x9b\x9d\x9c", r"\x85\x9b\x9d\x9c"),  # C1: NEL, CSI, OSC, ST
        ("\u202a\u202b\u202c\u202d\u202e", r"\u202a\u202b\u202c\u202d\u202e"),  # embeddings, overrides
        ("\u2066\u2067\u2068\u2069", r"\u2066\u2067\u2068\u2069"),  # isolates
        ("\u200e\u200f\u061c", r"\u200e\u200f\u061c"),  # LRM, RLM, ALM
        ("\u200b\u200d\ufeff\u00ad", r"\u200b\u200d\ufeff\xad"),  # zero width (joiner), BOM, soft hyphen
        ("\u2028\u2029", r"\u2028\u2029"),  # line and paragraph separators
        ("\ue000\U000f0000", r"\ue000\U000f0000"),  # private use
        ("\udc80\ud800", r"\udc80\ud800"),  # lone surrogates (undecodable argv bytes)
        ("\U000e0001\U0010ffff", r"\U000e0001\U0010ffff"),  # a tag character; unassigned
        ("gym\u00a0nord\u3000", r"gym\xa0nord\u3000"),  # spaces that are not U+0020
        ("a\\x1b", r"a\\x1b"),  # a backslash as such: the escapes stay unambiguous
    ],
)
def test_terminal_controls_and_invisible_characters_are_shown_as_escapes(raw, shown):
    assert escape(raw) == shown
    assert unescape(shown) == raw


@pytest.mark.parametrize(
    "text",
    ["@anna:school.test", "m.room.message", "gym-nord", "Grüße, Schüler", "学校",
     "שלום", "مدرسة", "🏫🎒", "a b", "!room:school.test", ""],
)
def test_printable_text_is_printed_as_it_is(text):
    assert escape(text) == text


def test_every_code_point_of_the_non_printable_categories_is_escaped():
    categories = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    chosen = "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in categories)
    assert len(chosen) > 900_000  # Cn and Co are most of it
    shown = escape(chosen)
    assert ESCAPE_TOKEN.sub("", shown) == "", "nothing but escapes is left"
    assert unescape(shown) == chosen


@settings(database=None, deadline=None)  # no example store in the checkout; a loaded machine is slow
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))
def test_escaped_text_is_printable_and_reads_back_to_the_original(text):
    shown = escape(text)
    assert shown.isprintable()
    assert unescape(shown) == text


# ---- tables and JSON -----------------------------------------------------------

def test_a_table_row_is_one_line_and_its_cells_stay_in_their_columns(capsys):
    cli._print_columns(
        ("event_type", "school"),
        [["m.x\r\n9999  forged  row", "gym-nord"], ["\x1b]0;t\x07\u202egnol", "gs-sued"],
         ["m.room.message", "gym-nord"]],
    )
    header, *rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3
    assert rows[0].startswith(r"m.x\r\n9999  forged  row")
    assert rows[1].startswith(r"\x1b]0;t\x07\u202egnol")
    school_at = header.index("school")
    assert [row[school_at:] for row in rows] == ["gym-nord", "gs-sued", "gym-nord"]


def test_json_output_is_ascii_and_gives_the_value_back(capsys):
    value = {"event_type": "\x1b]0;t\x07\x7f\x9b\u202e\u2028\ud800", "k\x1b": "\\"}
    cli._print_json(value)
    out = capsys.readouterr().out
    assert out.isascii() and out.count("\n") == 1
    assert all(c.isprintable() for c in out.rstrip("\n"))
    assert json.loads(out) == value


# ---- the commands, in-process ---------------------------------------------------

@pytest.fixture
def store(tmp_path):
    """An embedded store with a roster entry and a reconciliation that failed
    with a hostile error text (what Synapse's answers can carry), and its
    homeserver.yaml."""
    config = {"data_dir": str(tmp_path / "store"),
              "schools": {"gym-nord": {"messenger": True}}}
    engine = _core.Engine(json.dumps(config), SERVER, "main")
    engine.open()
    engine.reconcile_mark("gym-nord", [f"@a:{SERVER}"])
    (due,) = engine.reconcile_due(2**40, 10)
    engine.reconcile_failed(due["school"], due["user_id"], due["generation"],
                            "M_FORBIDDEN\x1b]0;t\x07\r\nforged", 0)
    hs = tmp_path / "homeserver.yaml"
    hs.write_text(json.dumps({"server_name": SERVER,
                              "modules": [{"module": "synapse_school_policy.SchoolPolicy",
                                           "config": config}]}))
    yield hs
    del engine


def run(capsys, *argv):
    """(exit status, stdout, stderr) of the command line run in-process."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_clean(text: str) -> None:
    """Only the command's own line ends; nothing the terminal acts on."""
    assert all(line.isprintable() for line in text.split("\n")), repr(text)


def test_the_status_table_escapes_the_last_error(store, capsys):
    status, out, err = run(capsys, "--config", store, "status")
    assert status == 0, err
    assert_clean(out)
    header, row = out.splitlines()
    assert row.endswith(r"M_FORBIDDEN\x1b]0;t\x07\r\nforged")
    assert json.loads(run(capsys, "--config", store, "status", "--json")[1])[
        "schools"]["gym-nord"]["last_error"] == "M_FORBIDDEN\x1b]0;t\x07\r\nforged"


@pytest.mark.parametrize(
    "argv, shown",
    [
        (("audit", "--rule", "one_way\x1b]0;t\x07"), r'unknown rule id "one_way\x1b]0;t\x07"'),
        (("audit", "--since", "7d\x1b[2J"), r'got "7d\x1b[2J"'),
        (("roster", "show", "@a\u202e:school.test"), r"@a\u202e:school.test"),
        (("roster", "show", f"@nobody\x1b[2J:{SERVER}"), r"@nobody\x1b[2J:school.test"),
    ],
)
def test_messages_that_echo_the_input_escape_it(store, capsys, argv, shown):
    status, out, err = run(capsys, "--config", store, *argv)
    assert_clean(out)
    assert_clean(err)
    assert shown in out + err, (status, out, err)


def test_argparse_errors_escape_what_they_echo(capsys):
    status, out, err = run(capsys, "doctor", "a.yaml", "\x1b]0;t\x07extra")
    assert status == 2
    assert_clean(err)
    assert r"unrecognized arguments: \x1b]0;t\x07extra" in err


def test_an_undecodable_argument_is_escaped_not_a_crash(store, capsys):
    # Undecodable bytes of argv reach Python as lone surrogates.
    status, out, err = run(capsys, "--config", store, "audit", "--since",
                           b"7\xffd".decode("utf-8", "surrogateescape"))
    assert status == 2
    assert_clean(err)
    assert r'got "7\udcffd"' in err


def test_doctor_escapes_the_config_key_it_names(tmp_path, capsys):
    hs = tmp_path / "homeserver.yaml"
    hs.write_text(json.dumps({"server_name": SERVER, "modules": [{
        "module": "synapse_school_policy.SchoolPolicy",
        "config": {"schools": {"gym\x1b]0;t\x07": {"messenger": "yes"}}}}]}))
    status, out, err = run(capsys, "doctor", hs)
    assert status == 1
    assert_clean(out)
    assert r"schools.gym\x1b]0;t\x07" in out


def test_doctor_escapes_the_path_it_cannot_read(tmp_path, capsys):
    status, out, err = run(capsys, "doctor", tmp_path / "missing\x1b[2J.yaml")
    assert status == 2
    assert_clean(err)
    assert r"missing\x1b[2J.yaml" in err


@pytest.mark.parametrize(
    "content, where",
    [
        ("server_name: school.test\nmodules: [\n  a: [b\n", "(line 4, column 1)"),
        ("server_name: school.test\nmodules: [\n  \x1b]0;t\x07\n", "(character 38)"),
    ],
)
def test_a_yaml_error_is_one_line_saying_where(tmp_path, capsys, content, where):
    """PyYAML's own message spans lines and quotes the file."""
    hs = tmp_path / "homeserver.yaml"
    hs.write_text(content)
    for argv in (("doctor", hs), ("--config", hs, "status")):
        status, out, err = run(capsys, *argv)
        assert status == 2
        assert_clean(err)
        assert len(err.splitlines()) == 1 and "is not valid YAML: " in err and where in err, err

