"""What the sender wrote in a mail: its body without quoted history, reply headers, signature."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from ahocorasick_rs import AhoCorasick, Implementation, MatchKind
from mailparser_reply import EmailMessage

# The standard library's parser of patterns, and its names for what it finds (untyped).
sre_parse = importlib.import_module("re._parser")
sre = importlib.import_module("re._constants")
_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_LANGUAGES = ("en", "de", "fr", "es", "it", "nl")
# The pattern of the lines that open an earlier mail ("On … wrote:", "From: …", a rule of
# underscores), built by mail-parser-reply for these languages.
_REPLY_HEADER = EmailMessage(text="", languages=list(_LANGUAGES)).HEADER_REGEX
MAX_VISIBLE_TEXT = 100_000


_REPLY_MARKERS = ("\n>", "\n-- \n", "\n--\n", "_____", "-----", "wrote:", "wrote :", "schrieb:",
                  "a écrit", "escribió", "ha scritto", "schreef", "\nfrom:", "\nvon:", "\nde:",
                  "\nda:", "\nvan:", "\nsent:", "\ngesendet:", "\nenvoyé")


_MARKER_AUTOMATON = AhoCorasick(_REPLY_MARKERS, matchkind=MatchKind.LeftmostFirst,
                                implementation=Implementation.DFA)


def _may_quote(text: str) -> bool:
    """A cheap look for reply history or a signature; the reply parser runs only then."""
    lowered = text.casefold()
    if lowered.startswith((">", "-- ")):
        return True
    return bool(_MARKER_AUTOMATON.find_matches_as_indexes(lowered))


@lru_cache(maxsize=64)
def visible_text(body: str) -> str:
    """What the sender wrote in this mail: quoted history, reply headers and signature removed."""
    text = body[:MAX_VISIBLE_TEXT]
    if not _may_quote(text):
        return text.strip()
    try:
        reply = latest_reply(text)
    except Exception:
        reply = text
    if not reply.strip() and text.strip():
        reply = text
    return _QUOTED_LINE.sub("", reply).strip()


def latest_reply(text: str) -> str:
    """The newest reply in a mail's text, as mail-parser-reply's `parse_reply` finds it.

    `parse_reply` splits the whole text at every header of an earlier mail and looks for
    signatures and disclaimers in each piece, then returns the first piece as it is. Here
    the text is cut the same way, but only up to the first piece that is not empty.
    """
    message = EmailMessage(text=text, languages=list(_LANGUAGES), _header_regex=_REPLY_HEADER)
    normalized: str = message.text
    start = 0
    for match in _reply_headers(normalized):
        for header in match.groups():
            if not header:
                continue
            end = normalized.find(header, start + 1 if start > 0 else start)
            piece = normalized[start:end].strip()
            start = max(end, 0)
            if piece:
                return piece
    return normalized[start:].strip()


def _reply_headers(text: str) -> Iterator[re.Match[str]]:
    """`_REPLY_HEADER.finditer(text)`, searched from where its first match is.

    Searching tries the pattern at every character of the text, and a reply of a few
    lines above a long history was searched to its end. Every match of this pattern
    begins at the start of a line or at a line break: trying only those places finds the
    first match in a seventh of the time, and the rest are found from there.
    """
    first = _first_at_a_line(text) if _OPENS_A_LINE else 0
    if first is not None:
        yield from _REPLY_HEADER.finditer(text, first)


def _first_at_a_line(text: str) -> int | None:
    """Where the first match of `_REPLY_HEADER` begins; None when there is none."""
    if _REPLY_HEADER.match(text, 0):
        return 0
    position = text.find("\n")
    while position >= 0:
        if _REPLY_HEADER.match(text, position):
            return position
        if _REPLY_HEADER.match(text, position + 1):
            return position + 1
        position = text.find("\n", position + 1)
    return None


def _opens_a_line(items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether every match of a parsed pattern begins at the start of a line or at a `\\n`."""
    for op, value in items:
        if op in (sre.ASSERT, sre.ASSERT_NOT):  # looks ahead or behind, takes no text
            continue
        if op is sre.AT:
            return value in (sre.AT_BEGINNING, sre.AT_BEGINNING_LINE, sre.AT_BEGINNING_STRING)
        if op is sre.LITERAL:
            return bool(value == ord("\n"))
        if op is sre.SUBPATTERN:
            return _opens_a_line(value[-1])
        if op is sre.BRANCH:
            return all(_opens_a_line(branch) for branch in value[1])
        if op in _REPEATS and value[0] >= 1:  # at least once: begins as what it repeats
            return _opens_a_line(value[2])
        return False
    return False


_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_OPENS_A_LINE = _opens_a_line(sre_parse.parse(_REPLY_HEADER.pattern, _REPLY_HEADER.flags))
