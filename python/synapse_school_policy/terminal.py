"""Text the command line prints to the operator's terminal.

Much of what the CLI shows was written by someone else: a pupil chooses
the event type the audit records, the school cloud the user ids, anyone
the text an error message echoes. A terminal acts on some characters
instead of showing them: ESC starts control sequences (retitle, clear,
OSC 8 links, cursor moves), CR and LF start a line that can pass for one
of the table's own, and the bidi controls reorder what follows them. So
every such character is shown as an escape in the style of Python's
repr: `\\x1b`, `\\u202e`, `\\n`, and a backslash as `\\\\` so that the
escaped text reads back to exactly what was stored (`--json` gives the
value itself).

Escaped is whatever Python's `str.isprintable()` calls non-printable:
the Unicode categories Cc (C0, DEL, C1), Cf (bidi overrides and
isolates, LRM/RLM/ALM, zero-width and other format characters), Cs (lone
surrogates, which is what undecodable bytes of a command-line argument
become), Co, Cn, Zl and Zp, and the spaces of category Zs other than
U+0020, which look like a space but are not one (a school id with a
no-break space would otherwise read as one with a space).
"""
from __future__ import annotations

_SHORT = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape(text: str) -> str:
    """`text` with every non-printable character and the backslash escaped;
    one line, and it does to the terminal nothing but show itself."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    short = _SHORT.get(c)
    if short is not None:
        return short
    if c.isprintable():
        return c
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
