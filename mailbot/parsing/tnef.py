"""Outlook's `winmail.dat` (TNEF) unpacked into the files and the text it carries.

Exchange and Outlook wrap a rich-text mail's attachments in one TNEF part that no other
client can open. tnefparse reads the container (inflating its RTF body with compressed-rtf)
and striprtf turns it into text for a mail that has no other.
"""

from __future__ import annotations

import codecs
import logging
import mimetypes
import re
from dataclasses import dataclass

from striprtf.striprtf import rtf_to_text
from tnefparse import TNEF

from mailbot.parsing.headers import decode_bytes

logging.getLogger("tnefparse").setLevel(logging.ERROR)

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"
TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
_ANSI_CODEPAGE = re.compile(rb"\\ansicpg(\d{3,5})")


@dataclass(frozen=True, slots=True)
class TnefFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class TnefContents:
    files: tuple[TnefFile, ...]
    text: str  # the plain body, or the RTF body as text; '' when there is none
    html: str | None

    @property
    def empty(self) -> bool:
        return not (self.files or self.text.strip() or self.html)


def is_tnef(content_type: str, filename: str, data: bytes) -> bool:
    """A TNEF container: the signature, under TNEF's MIME type or its usual file name."""
    return data[:4] == TNEF_SIGNATURE and (
        content_type in TNEF_TYPES or filename.lower() in ("winmail.dat", "win.dat"))


def unpack_tnef(data: bytes) -> TnefContents | None:
    """The container's files and body; None when it cannot be read (keep it as it is)."""
    try:
        container = TNEF(data)
        files = tuple(_file(attachment) for attachment in container.attachments)
        codepage = str(getattr(container, "codepage", None) or "cp1252")
        text = _text(container.body, codepage)
        html = _text(container.htmlbody, codepage) or None
        rtf = container.rtfbody if not text.strip() else None
        if isinstance(rtf, bytes) and rtf.startswith(b"{\\rtf"):
            text = _rtf_text(rtf)
    except Exception:
        return None
    return TnefContents(files=files, text=text, html=html)


def _file(attachment: object) -> TnefFile:
    long_name = getattr(attachment, "long_filename", None)
    name = long_name() if callable(long_name) else ""
    name = _text(name or getattr(attachment, "name", ""), "cp1252").strip("\x00 ")
    data = getattr(attachment, "data", b"") or b""
    content_type = mimetypes.guess_type(name)[0] if name else None
    return TnefFile(name, content_type or "application/octet-stream",
                    data if isinstance(data, bytes) else b"")


def _text(value: object, codepage: str) -> str:
    if isinstance(value, bytes):
        value = decode_bytes(value, codepage)
    return value.rstrip("\x00") if isinstance(value, str) else ""


def _rtf_text(rtf: bytes) -> str:
    codepage = _ANSI_CODEPAGE.search(rtf[:2000])
    encoding = f"cp{codepage.group(1).decode()}" if codepage else "cp1252"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "cp1252"
    text: str = rtf_to_text(  # type: ignore[no-untyped-call]
        rtf.decode("latin-1"), encoding=encoding, errors="replace")
    return text.replace("\xa0", " ")
