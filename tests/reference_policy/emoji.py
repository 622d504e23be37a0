"""The emoji key of a reaction, as one-way rooms let it through (docs/rules.md, rule 2)."""
from __future__ import annotations

from typing import Mapping

# Emoji that stand on their own. Letters and digits in disguise are not
# among them: the enclosed alphanumerics (but for the blood types, the
# squared words, and the regional indicators, which count only in pairs, as
# a flag) and the dingbat circled digits, so that no key spells a word or a
# phone number.
EMOJI_BASE_RANGES = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x23FF), (0x24C2, 0x24C2), (0x25A0, 0x27BF), (0x2900, 0x2BFF),
    (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F170, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A), (0x1F200, 0x1FAFF),
)
DINGBAT_DIGITS = range(0x2776, 0x2794)
SKIN_TONES = range(0x1F3FB, 0x1F400)
REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
TAGS = range(0xE0020, 0xE007F)
ZWJ, KEYCAP, BLACK_FLAG, CANCEL_TAG = 0x200D, 0x20E3, 0x1F3F4, 0xE007F
KEYCAP_BASES = frozenset(map(ord, "0123456789#*"))


def _is_base(cp: int) -> bool:
    if cp in DINGBAT_DIGITS or cp in SKIN_TONES:
        return False
    return any(lo <= cp <= hi for lo, hi in EMOJI_BASE_RANGES)


def is_emoji_key(key) -> bool:
    """A reaction key is one emoji, in 1..64 bytes of valid UTF-8: a flag
    (two regional indicators), a keycap ([0-9#*], U+FE0F optional, U+20E3), a
    tag flag (U+1F3F4, tags, U+E007F), or emoji joined by U+200D, each
    followed by presentation selectors or skin tones. Anything else, two
    emoji in a row included, counts as text."""
    if not isinstance(key, str):
        return False
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate is not valid UTF-8
        return False
    if not 1 <= size <= 64:
        return False
    cps = [ord(ch) for ch in key]
    if len(cps) == 2 and all(cp in REGIONAL_INDICATORS for cp in cps):
        return True
    if cps[0] in KEYCAP_BASES:
        return cps[1:] in ([KEYCAP], [0xFE0F, KEYCAP])
    if cps[0] == BLACK_FLAG and len(cps) >= 3 and cps[-1] == CANCEL_TAG and all(cp in TAGS for cp in cps[1:-1]):
        return True
    for element in _split(cps, ZWJ):
        if not element or not _is_base(element[0]):
            return False
        if not all(cp in (0xFE0E, 0xFE0F) or cp in SKIN_TONES for cp in element[1:]):
            return False
    return True


def _split(items: list[int], separator: int) -> list[list[int]]:
    parts: list[list[int]] = [[]]
    for item in items:
        if item == separator:
            parts.append([])
        else:
            parts[-1].append(item)
    return parts


def is_emoji_reaction(content) -> bool:
    """An allowed reaction in a one-way room: exactly {"m.relates_to": {"rel_type": "m.annotation",
    "event_id": <str>, "key": <emoji key>}}, no other keys at either level."""
    if not isinstance(content, Mapping) or set(content) != {"m.relates_to"}:
        return False
    relation = content["m.relates_to"]
    if not isinstance(relation, Mapping) or set(relation) != {"rel_type", "event_id", "key"}:
        return False
    return (
        isinstance(relation["rel_type"], str)
        and relation["rel_type"] == "m.annotation"
        and isinstance(relation["event_id"], str)
        and is_emoji_key(relation["key"])
    )
