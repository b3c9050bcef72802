"""Text as the rules compare it: Unicode-folded, whitespace-collapsed."""

from __future__ import annotations

import unicodedata
from functools import lru_cache


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Case- and compatibility-folded text with runs of whitespace made one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
