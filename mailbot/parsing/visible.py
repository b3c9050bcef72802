"""What the sender wrote in a mail: its body without quoted history, reply headers, signature."""

from __future__ import annotations

import re
from functools import lru_cache

from ahocorasick_rs import AhoCorasick, Implementation, MatchKind
from mailparser_reply import EmailReplyParser

_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_REPLY_PARSER = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl"])
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
        reply = _REPLY_PARSER.parse_reply(text=text)
    except Exception:
        reply = text
    if not reply.strip() and text.strip():
        reply = text
    return _QUOTED_LINE.sub("", reply).strip()
