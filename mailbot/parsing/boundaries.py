"""The standard library's MIME parser, matching boundary lines without a regex of their own.

For each multipart, `email.feedparser` compiles
`(?P<sep>--BOUNDARY)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\r\\n|\\r|\\n)?$`. Boundaries are
unique to a mail, so `re`'s cache never holds one, and each compile costs about 100 µs of pure
Python. A line matches that pattern exactly when it starts with the separator and the rest of
the pattern, compiled once, matches from the separator's end; `BoundaryLine` does that.

The parser only asks a match whether it matched and for its `end` and `linesep` groups, which
are the same match's. Anything else asked of a `BoundaryLine` goes to the full pattern,
compiled when first needed.
"""

from __future__ import annotations

import email.feedparser
import re
from typing import Any

_BEFORE = "(?P<sep>"
_AFTER = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_AFTER_SEPARATOR = re.compile(_AFTER[1:])
_ESCAPED_CHARACTER = re.compile(r"\\(.)", re.DOTALL)


class BoundaryLine:
    """The feedparser's boundary pattern for one separator, matched without compiling it."""

    __slots__ = ("_full", "_length", "separator")

    def __init__(self, separator: str) -> None:
        self.separator = separator
        self._length = len(separator)
        self._full: re.Pattern[str] | None = None

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _AFTER_SEPARATOR.match(line, self._length)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (a copy being made): not the pattern's
            raise AttributeError(name)
        if self._full is None:
            self._full = re.compile(_BEFORE + re.escape(self.separator) + _AFTER)
        return getattr(self._full, name)


def boundary_line(pattern: str) -> BoundaryLine | None:
    """The `BoundaryLine` for a feedparser boundary pattern; None for any other pattern."""
    if not (pattern.startswith(_BEFORE) and pattern.endswith(_AFTER)):
        return None
    escaped = pattern[len(_BEFORE):-len(_AFTER)]
    separator = _ESCAPED_CHARACTER.sub(r"\1", escaped)
    return BoundaryLine(separator) if re.escape(separator) == escaped else None


class _ReForTheFeedParser:
    """The `re` module as `email.feedparser` sees it: boundary patterns become BoundaryLines."""

    def compile(self, pattern: Any, flags: int = 0) -> Any:
        if flags == 0 and isinstance(pattern, str):
            line = boundary_line(pattern)
            if line is not None:
                return line
        return re.compile(pattern, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


def match_boundaries_without_compiling() -> None:
    """Make `email.feedparser` match boundary lines with `BoundaryLine`."""
    email.feedparser.re = _ReForTheFeedParser()  # type: ignore[attr-defined]  # not in the stubs
