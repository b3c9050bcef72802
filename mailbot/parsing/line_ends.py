"""The standard library's MIME parser, looking for a part's last line break at its end only.

Before each boundary, `email.feedparser` strips the line break that ends the part above it,
found with `NLCRE_eol.search(payload)`: the pattern `(\\r\\n|\\r|\\n)\\Z` tried at every
position of the payload, all 270 KB of a 200 KB attachment's base64, to match only in its
last two characters. A match ends where the text does, so it begins at one of the last two
positions, and searching from there finds the same one.
"""

from __future__ import annotations

import email.feedparser
import re
from typing import Any

_LINE_BREAK_AT_END = re.compile(r"(\r\n|\r|\n)\Z")


class LineBreakAtEnd:
    """`NLCRE_eol`, searched from the text's second-to-last character."""

    def search(self, text: str, pos: int = 0, endpos: int = 2**63 - 1) -> re.Match[str] | None:
        end = min(len(text), endpos)
        return _LINE_BREAK_AT_END.search(text, max(pos, end - 2), endpos)

    def __getattr__(self, name: str) -> Any:
        return getattr(_LINE_BREAK_AT_END, name)


def look_at_the_end_only() -> None:
    """Make `email.feedparser` find a payload's last line break as above."""
    email.feedparser.NLCRE_eol = LineBreakAtEnd()  # type: ignore[attr-defined]  # not in the stubs
