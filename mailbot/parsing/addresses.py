"""Address headers → Address values, robust to garbage.

Addresses are split before encoded words are decoded (RFC 2047 §6.2): a display name
`=?iso-8859-1?Q?B=FCrling,=20Andreas?=` holds a comma only once decoded, and must not be cut
there. Quoted strings and encoded words are set aside while the list is split, and a comment
between a display name and its `<addr-spec>` is not part of the name.
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from functools import lru_cache

from mailbot.parsing.headers import decode_header_value
from mailbot.parsing.model import Address

_ANGLE = re.compile(r"<([^<>@\s]+@[^<>\s]+)>")
_ASCII_SPACE = re.compile(r"[ \t\r\n]+")  # an ideographic space in a name stays
_BARE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_SET_ASIDE = re.compile(r'"(?:[^"\\]|\\.)*"|=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=')
_COMMENT_BEFORE_ANGLE = re.compile(r"\s*\([^()]*\)(?=\s*<)")
_TOKEN = re.compile("\ue000([0-9]+)\ue001")
KEPT_VALUE_LENGTH = 1000  # longer header values are parsed, not kept


def parse_addresses(values: tuple[str, ...] | list[str],
                    fallbacks: tuple[str, ...] = ()) -> tuple[Address, ...]:
    """All mailboxes named in the given raw header values, in order, without repeats.

    Values are as received (folded lines joined, 8-bit bytes as surrogate escapes); display
    names are decoded after the split, raw 8-bit ones with the `fallbacks` charsets. The
    answers for short values are kept: the same support address and the same customers turn
    up in mail after mail.
    """
    values, fallbacks = tuple(values), tuple(fallbacks)
    if sum(map(len, values)) <= KEPT_VALUE_LENGTH:
        return _kept_addresses(values, fallbacks)
    return _addresses(values, fallbacks)


@lru_cache(maxsize=4096)
def _kept_addresses(values: tuple[str, ...], fallbacks: tuple[str, ...]) -> tuple[Address, ...]:
    return _addresses(values, fallbacks)


def _addresses(values: tuple[str, ...], fallbacks: tuple[str, ...]) -> tuple[Address, ...]:
    found: list[Address] = []
    seen: set[str] = set()
    for name, email in _pairs(values):
        email = decode_header_value(email).strip().strip("<>").lower()
        if "@" not in email or email in seen or " " in email:
            continue
        seen.add(email)
        name = decode_header_value(name, fallbacks)
        found.append(Address(_ASCII_SPACE.sub(" ", name).strip().strip('"').strip(), email))
    return tuple(found)


def _pairs(values: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        protected, aside = _set_aside(value)
        try:
            parsed = getaddresses([_COMMENT_BEFORE_ANGLE.sub("", protected)])
        except Exception:
            parsed = []
        good = [(_restore(n, aside), _restore(e, aside)) for n, e in parsed if "@" in e]
        if not good:
            good = [("", m) for m in _ANGLE.findall(value)] or [
                ("", m) for m in _BARE.findall(value)]
        pairs.extend(good)
    return pairs


def _set_aside(value: str) -> tuple[str, list[str]]:
    """The value with quoted strings and encoded words replaced by numbered tokens."""
    aside: list[str] = []

    def token(match: re.Match[str]) -> str:
        aside.append(match.group(0))
        return f"\ue000{len(aside) - 1}\ue001"

    return _SET_ASIDE.sub(token, value), aside


def _restore(text: str, aside: list[str]) -> str:
    def original(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index >= len(aside):
            return ""
        piece = aside[index]
        if piece.startswith('"'):
            return re.sub(r"\\(.)", r"\1", piece[1:-1])
        return piece

    return _TOKEN.sub(original, text)
