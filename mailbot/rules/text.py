"""Text as the rules compare it: Unicode-folded, whitespace-collapsed, reply history removed."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from mailparser_reply import EmailReplyParser

_SPACE = re.compile(r"\s+")
_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_REPLY_PARSER = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl"])
MAX_RULE_TEXT = 100_000


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Case- and compatibility-folded text with runs of whitespace made one space."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def visible_text(body: str) -> str:
    """What the sender wrote in this mail: quoted history, reply headers and signature removed."""
    text = body[:MAX_RULE_TEXT]
    try:
        reply = _REPLY_PARSER.parse_reply(text=text)
    except Exception:
        reply = text
    if not reply.strip() and text.strip():
        reply = text
    return _QUOTED_LINE.sub("", reply).strip()
