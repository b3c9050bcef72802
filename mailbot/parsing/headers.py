"""Header values decoded to text: RFC 2047 words, unknown charsets and raw 8-bit bytes."""

from __future__ import annotations

import codecs
import re
from email.header import decode_header
from email.message import Message

CHARSET_ALIASES = {
    "iso-gb2312": "gb2312", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949",
    "unicode-1-1-utf-7": "utf-7", "x-unknown": "latin-1", "unknown-8bit": "cp1252",
    "unknown": "cp1252", "iso-8859-8-i": "iso-8859-8", "x-mac-roman": "mac-roman",
    "windows-874": "cp874", "ansi_x3.4-1968": "ascii", "us-ascii": "cp1252",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "shift-jis": "cp932", "shift_jis": "cp932",
    "x-sjis": "cp932", "iso-2022-jp": "iso2022_jp_ext",
}


def codec_for(charset: str | None) -> str:
    """A Python codec for a declared charset; unknown ones fall back to UTF-8."""
    name = (charset or "utf-8").strip().strip('"').lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


# A 7-bit charset declared for the body says which 8-bit ones raw header bytes are likely in.
_EIGHT_BIT_RELATIVES = {
    "iso2022_jp": ("cp932", "euc_jp"), "iso2022_jp_ext": ("cp932", "euc_jp"),
    "iso2022_jp_2": ("cp932", "euc_jp"), "euc_jp": ("cp932",), "cp932": ("euc_jp",),
    "iso2022_kr": ("cp949",), "hz": ("gb18030",),
}


def decode_bytes(data: bytes, charset: str | None = None,
                 fallbacks: tuple[str, ...] = ()) -> str:
    """Bytes to text with the declared charset, else UTF-8, the fallbacks, Windows-1252."""
    declared = codec_for(charset) if charset else None
    candidates = [declared, *_EIGHT_BIT_RELATIVES.get(declared, ())] if declared else []
    candidates += ["utf-8"]
    for fallback in fallbacks:
        codec = codec_for(fallback)
        candidates += [codec, *_EIGHT_BIT_RELATIVES.get(codec, ())]
    candidates += ["cp1252"]
    for codec in candidates:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", "replace")


def _raw_bytes(value: str) -> bytes:
    return value.encode("ascii", "surrogateescape")


_FOLD = re.compile(r"\r?\n[ \t]")
_ADJACENT_WORDS = re.compile(r"(=\?[^?\s]+\?[bqBQ]\?[^?\s]*\?=)\s+(?==\?)")


def decode_header_value(value: object, fallbacks: tuple[str, ...] = ()) -> str:
    """A header's text: unfolded, encoded words decoded, stray 8-bit bytes recovered.

    Raw 8-bit bytes are tried as UTF-8, then as `fallbacks` (the charsets the message's
    parts declare), then as Windows-1252.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:
            return ""
    text = _FOLD.sub(" ", value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = decode_bytes(_raw_bytes(text), fallbacks=fallbacks)
    if "=?" not in text:
        return text.strip()
    text = _ADJACENT_WORDS.sub(r"\1", text)
    try:
        parts = decode_header(text)
    except Exception:
        return text.strip()
    out = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return "".join(out).strip()


def declared_charsets(message: Message, limit: int = 20) -> tuple[str, ...]:
    """The charsets a message's first parts declare, most specific first, without repeats."""
    found: list[str] = []
    try:
        parts = [p for _, p in zip(range(limit), message.walk(), strict=False)]
    except Exception:
        parts = [message]
    for part in parts:
        try:
            charset = part.get_content_charset()
        except Exception:
            charset = None
        if charset and charset not in ("us-ascii", "utf-8") and charset not in found:
            found.append(charset)
    return tuple(f for f in found if codec_for(f) not in ("cp1252", "latin-1")) + tuple(
        f for f in found if codec_for(f) in ("cp1252", "latin-1"))


def decoded_headers(message: Message) -> dict[str, tuple[str, ...]]:
    """Every header of a message, lower-cased name → decoded values in order."""
    result: dict[str, list[str]] = {}
    fallbacks: tuple[str, ...] | None = None
    for name, value in message.raw_items():
        key = decode_header_value(name).lower().strip()
        if not key:
            continue
        if fallbacks is None and isinstance(value, str) and not value.isascii():
            fallbacks = declared_charsets(message)
        result.setdefault(key, []).append(decode_header_value(value, fallbacks or ()))
    return {k: tuple(v) for k, v in result.items()}
