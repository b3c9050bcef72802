"""Message-ID normalisation and the idempotency key of DESIGN §2."""

from __future__ import annotations

import hashlib
import re

_ID = re.compile(r"<([^<>]+)>")


def normalize_message_id(value: str | None) -> str | None:
    """`<Local@Example.COM>` → `Local@example.com`; folding and blanks removed; None if empty."""
    if not value:
        return None
    match = _ID.search(value)
    text = match.group(1) if match else value
    text = re.sub(r"\s+", "", text).strip("<>")
    if not text:
        return None
    local, at, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}" if at else text


def message_ids(value: str | None) -> tuple[str, ...]:
    """All ids of a References or In-Reply-To header, normalised, in order, without repeats."""
    if not value:
        return ()
    found = [normalize_message_id(m) for m in _ID.findall(value)] or [
        normalize_message_id(v) for v in value.split()]
    unique: list[str] = []
    for item in found:
        if item and item not in unique:
            unique.append(item)
    return tuple(unique)


def idempotency_key(message_id: str | None, raw: bytes) -> str:
    """`mid:` + normalised Message-ID, or `sha256:` + digest of the raw bytes without one."""
    normalized = normalize_message_id(message_id)
    if normalized:
        return "mid:" + normalized[:590]
    return "sha256:" + hashlib.sha256(raw).hexdigest()
