"""Header values decoded to text: RFC 2047 words, unknown charsets and raw 8-bit bytes."""

from __future__ import annotations

import codecs
import re
from email.header import decode_header
from email.message import Message

import charset_normalizer

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


_WESTERN = {"ascii", "cp1252", "latin-1", "iso8859-15"}  # codecs any byte sequence fits
_DETECT_MIN_BYTES = 24  # shorter runs of 8-bit bytes are too little for a detector


def decode_bytes(data: bytes, charset: str | None = None,
                 fallbacks: tuple[str, ...] = ()) -> str:
    """Bytes to text: the declared charset, else UTF-8, the fallbacks, a detector, cp1252.

    A Western declaration over valid UTF-8 is a mis-declaration (a mail client that says
    us-ascii or latin-1 and sends UTF-8): UTF-8 wins. Text that is UTF-8 but for a few
    stray bytes keeps its UTF-8 and reads the strays as Windows-1252. Without a usable
    declaration, charset-normalizer guesses before Windows-1252 is assumed.
    """
    declared = codec_for(charset) if charset else None
    if declared in _WESTERN and not data.isascii() and _is_utf8(data):
        return data.decode("utf-8")
    declared_codecs = _with_relatives(declared) if declared else []
    fallback_codecs = [c for f in fallbacks for c in _with_relatives(codec_for(f))]
    return (_first_that_decodes(data, [*declared_codecs, "utf-8"])
            or _mostly_utf8(data)
            or _first_that_decodes(data, fallback_codecs)
            or _detected(data)
            or _first_that_decodes(data, ["cp1252"])
            or data.decode("latin-1"))


def _with_relatives(codec: str) -> list[str]:
    return [codec, *_EIGHT_BIT_RELATIVES.get(codec, ())]


def _first_that_decodes(data: bytes, codecs_to_try: list[str]) -> str | None:
    for codec in codecs_to_try:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with stray bytes read as Windows-1252, when most 8-bit bytes are good UTF-8."""
    text = data.decode("utf-8", "surrogateescape")
    strays = sum(1 for ch in text if "\udc80" <= ch <= "\udcff")
    good = sum(1 for ch in text if ord(ch) > 0x7F and not "\udc80" <= ch <= "\udcff")
    if not good or strays * 2 > good:
        return None
    return re.sub("[\udc80-\udcff]+", lambda m: _raw_bytes(m.group(0)).decode(
        "cp1252", "replace"), text)


def _detected(data: bytes) -> str | None:
    if sum(1 for byte in data if byte > 0x7F) < _DETECT_MIN_BYTES:
        return None
    try:
        best = charset_normalizer.from_bytes(data).best()
    except Exception:
        return None
    return str(best) if best is not None else None


def _raw_bytes(value: str) -> bytes:
    return value.encode("ascii", "surrogateescape")


_FOLD = re.compile(r"\r?\n[ \t]")
_STRAY_BYTE = re.compile("[\udc80-\udcff]")  # an undecodable byte, as surrogateescape keeps it
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
    if not text.isascii() and _STRAY_BYTE.search(text):
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


def raw_header_values(message: Message) -> dict[str, tuple[str, ...]]:
    """Every header as received: lower-cased name → unfolded values, 8-bit bytes escaped."""
    result: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = decode_header_value(name).lower().strip()
        if key:
            result.setdefault(key, []).append(_FOLD.sub(" ", str(value)))
    return {k: tuple(v) for k, v in result.items()}


def header_fallbacks(message: Message, raw: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The charsets to try on raw 8-bit header bytes: those the message's parts declare."""
    if all(v.isascii() for values in raw.values() for v in values):
        return ()
    return declared_charsets(message)


def decoded_headers(raw: dict[str, tuple[str, ...]],
                    fallbacks: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Raw header values (see raw_header_values) decoded to text."""
    return {name: tuple(decode_header_value(v, fallbacks) for v in values)
            for name, values in raw.items()}


def header_text(message: Message, name: str) -> str:
    """The first value of one header, decoded, raw 8-bit bytes in the parts' charsets."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if str(key).lower().strip() == wanted:
            text = _FOLD.sub(" ", str(value))
            fallbacks = declared_charsets(message) if not text.isascii() else ()
            return decode_header_value(text, fallbacks)
    return ""
