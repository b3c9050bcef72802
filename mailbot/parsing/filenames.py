"""Attachment filenames made safe to show and store: no paths, no control characters, bounded."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterable

_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE = re.compile(r'[<>:"|?*]')


def sanitize_filename(name: str, max_length: int = 150) -> str:
    """The last path component, NFC, without control or reserved characters, length-bounded."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[/\\]", text)[-1]
    text = _CONTROL.sub("", text)
    text = _UNSAFE.sub("_", text)
    text = " ".join(text.split()).lstrip(". ").rstrip(". ")
    if _RESERVED.match(text):
        text = "_" + text
    if len(text) > max_length:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 16 and stem:
            text = stem[: max_length - len(ext) - 1].rstrip() + "." + ext
        else:
            text = text[:max_length].rstrip()
    return text


def default_filename(content_type: str, index: int) -> str:
    extension = mimetypes.guess_extension(content_type) or ".bin"
    stem = "image" if content_type.startswith("image/") else "attachment"
    if content_type == "message/rfc822":
        stem, extension = "message", ".eml"
    return f"{stem}-{index}{extension}"


def unique_filenames(names: Iterable[str]) -> list[str]:
    """Names with repeats numbered: `report.pdf`, `report (2).pdf`."""
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate, number = name, 1
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        while candidate.lower() in seen:
            number += 1
            candidate = f"{stem} ({number}).{ext}" if ext else f"{stem} ({number})"
        seen.add(candidate.lower())
        result.append(candidate)
    return result
