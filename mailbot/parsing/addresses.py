"""Address headers → Address values, robust to garbage."""

from __future__ import annotations

import re
from email.utils import getaddresses

from mailbot.parsing.model import Address

_ANGLE = re.compile(r"<([^<>@\s]+@[^<>\s]+)>")
_ASCII_SPACE = re.compile(r"[ \t\r\n]+")  # an ideographic space in a name stays
_BARE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def parse_addresses(values: tuple[str, ...] | list[str]) -> tuple[Address, ...]:
    """All mailboxes named in the given decoded header values, in order, without repeats."""
    found: list[Address] = []
    seen: set[str] = set()
    for name, email in _pairs(values):
        email = email.strip().strip("<>").lower()
        if "@" not in email or email in seen or " " in email:
            continue
        seen.add(email)
        found.append(Address(_ASCII_SPACE.sub(" ", name).strip().strip('"').strip(), email))
    return tuple(found)


def _pairs(values: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        try:
            parsed = getaddresses([value])
        except Exception:
            parsed = []
        good = [(n, e) for n, e in parsed if "@" in e]
        if not good:
            good = [("", m) for m in _ANGLE.findall(value)] or [
                ("", m) for m in _BARE.findall(value)]
        pairs.extend(good)
    return pairs
