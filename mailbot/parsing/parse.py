"""Raw bytes → ParsedMessage, with mail-parser and the standard library as its fallback."""

from __future__ import annotations

import binascii
import email
import hashlib
import logging
import re
from datetime import UTC, datetime
from email import policy as email_policy
from email.feedparser import BytesFeedParser
from email.message import Message
from email.utils import parsedate_to_datetime

import mailparser

from mailbot.parsing.address_diagnosis import keep_address_diagnoses
from mailbot.parsing.addresses import parse_addresses
from mailbot.parsing.boundaries import match_boundaries_without_compiling
from mailbot.parsing.filenames import default_filename, sanitize_filename, unique_filenames
from mailbot.parsing.headers import (
    declared_charsets,
    decode_bytes,
    decode_header_value,
    decoded_headers,
    header_fallbacks,
    header_text,
    raw_header_values,
)
from mailbot.parsing.html import html_to_text
from mailbot.parsing.identity import message_ids, normalize_message_id
from mailbot.parsing.line_ends import look_at_the_end_only
from mailbot.parsing.model import Address, Attachment, MessageParseError, ParsedMessage
from mailbot.parsing.tnef import is_tnef, unpack_tnef
from mailbot.parsing.tree import TreePart

logging.getLogger("mailparser").setLevel(logging.ERROR)
keep_address_diagnoses()
look_at_the_end_only()
match_boundaries_without_compiling()

_HEADER_LINE = re.compile(rb"^(From |[\x21-\x39\x3b-\x7e]{1,80}:)")
_MAX_PARTS = 2000
_REPORT_PARTS = {  # machine-readable parts of delivery and read reports
    "message/delivery-status": ".txt", "message/global-delivery-status": ".txt",
    "message/disposition-notification": ".txt", "message/feedback-report": ".txt",
    "text/rfc822-headers": ".txt", "message/rfc822-headers": ".txt",
}
_AS_RECEIVED = email_policy.compat32.clone(max_line_length=0)


class _RawHeaderValues(email_policy.Compat32):
    """compat32, but a header value holding raw 8-bit bytes is handed out as it came.

    compat32 turns such a value into replacement characters; kept as surrogate-escaped text,
    its bytes are decoded later with the charsets the mail declares (see headers.py).
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_READ = _RawHeaderValues()
_UUENCODINGS = {"x-uuencode", "uuencode", "x-uue", "uue"}
_MAX_JUNK_LINES = 5
_MAX_HEADER_BYTES = 256 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BLANK_RUNS = re.compile(r"\n[ \t]*(\n[ \t]*){2,}")
_MAX_LISTED_DEPTH = 5  # mails inside attached mails whose files are listed
_FEED_BYTES = 64 * 1024
STUB_WORDS = 50  # a text version this short may be a stub pointing at the HTML one


class _Diagnosis(mailparser.MailParser):  # type: ignore[misc]  # mail-parser has no types
    """mail-parser's pass over a tree, read here for its defect categories.

    At the end of that pass mail-parser also builds two dicts of every header and part, its
    `mail` and `mail_partial`: a quarter of the pass's time, and nothing here reads them.
    """

    def _make_mail(self, complete: bool = True) -> dict[str, object]:
        return {}


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a whole message. Raises MessageParseError only when the bytes are not a mail."""
    size = len(raw)
    raw, defects = _header_start(raw)
    try:
        parsed = _Diagnosis(_message_from_bytes(raw))
        message: Message = parsed.message
        defects += [str(d) for d in (parsed.defects_categories or ())]
    except Exception as exc:
        defects.append(f"mail-parser failed ({type(exc).__name__}: {exc}); stdlib used")
        try:
            message = email.message_from_bytes(raw, policy=email_policy.compat32)
        except Exception as inner:
            raise MessageParseError(f"{type(inner).__name__}: {inner}") from inner
    linesep = "\r\n" if b"\r\n" in raw[:_MAX_HEADER_BYTES] else "\n"
    try:
        return _build(message, size, defects, linesep=linesep)
    except MessageParseError:
        raise
    except RecursionError as exc:
        raise MessageParseError("MIME structure nested too deeply") from exc
    except Exception as exc:
        raise MessageParseError(f"{type(exc).__name__}: {exc}") from exc


def _message_from_bytes(raw: bytes) -> Message:
    """The standard library's tree of a mail, fed to its parser a slice at a time.

    `email.message_from_bytes` hands the parser the whole mail as one string, which it then
    holds line by line: about 8.8 times the mail's size at the peak for a 34 MB mail. Fed in
    slices, as `mailparser.parse_from_file` does from a file, the same tree costs about 2.8.
    """
    parser = BytesFeedParser(_factory=TreePart, policy=email_policy.compat32)
    view = memoryview(raw)
    for start in range(0, len(raw), _FEED_BYTES):
        parser.feed(bytes(view[start:start + _FEED_BYTES]))
    return parser.close()


def files_in_mail(raw: bytes) -> tuple[str, ...]:
    """The files a stored mail carries, those of mails inside it as `inner.eml/file`."""
    try:
        message = parse_message(raw)
    except MessageParseError:
        return ()
    return tuple(name for a in message.attachments
                 for name in (a.filename, *(f"{a.filename}/{c}" for c in a.contents)))


def parse_headers_only(raw: bytes, limit: int = 256 * 1024) -> ParsedMessage:
    """Parse only the header block (for messages over the size limit)."""
    size = len(raw)
    raw, defects = _header_start(raw[:limit])
    head = raw
    end = re.search(rb"\r?\n\r?\n", head)
    head = head[: end.end()] if end else head
    message = email.message_from_bytes(head, policy=email_policy.compat32)
    base = _build(message, size, [*defects, "body not parsed: message over the size limit"],
                  with_body=False)
    return ParsedMessage(
        message_id=base.message_id, subject=base.subject, from_=base.from_,
        reply_to=base.reply_to, to=base.to, cc=base.cc, date=base.date,
        in_reply_to=base.in_reply_to, references=base.references, headers=base.headers,
        body_text="", body_html=None, attachments=(), defects=base.defects, size=size,
        truncated=True)


def _header_start(raw: bytes) -> tuple[bytes, list[str]]:
    """The bytes from the first header line on, with a mangled header block mended.

    Junk lines before the header block are skipped, and lines inside it that lost the
    indentation of a folded header (a mail pasted through a web form) are indented again.
    """
    if not raw.strip():
        raise MessageParseError("empty message")
    stripped = raw.lstrip(b" \t\r\n")
    if _HEADER_LINE.match(stripped[:200]):
        skipped = len(raw) - len(stripped)
        defects = [f"{skipped} bytes of blank space before the headers"] if skipped else []
        return _mend_folding(stripped, defects)
    lines = stripped[:4000].splitlines(keepends=True)
    offset = 0
    for index, line in enumerate(lines[:_MAX_JUNK_LINES]):
        following = lines[index:index + 2]
        if len(following) == 2 and all(_HEADER_LINE.match(x) for x in following):
            return _mend_folding(stripped[offset:],
                                 [f"{index} line(s) of text before the headers skipped"])
        offset += len(line)
    raise MessageParseError("no header block: the data does not start with a mail header")


def _mend_folding(raw: bytes, defects: list[str]) -> tuple[bytes, list[str]]:
    """Indent stray lines of the header block that have header lines after them.

    A stray line with no header after it, before the blank line, is where the body starts
    in a mail without the blank line; it is left alone.
    """
    end = _HEADER_END.search(raw, 0, _MAX_HEADER_BYTES)
    block = raw[:end.start()] if end else raw[:_MAX_HEADER_BYTES]
    lines = block.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER_LINE.match(line)]
    if not headers:
        return raw, defects
    last_header = headers[-1]
    mended = 0
    for index, line in enumerate(lines[1:last_header], start=1):
        if line[:1] not in (b" ", b"\t") and not _HEADER_LINE.match(line) and line.strip():
            lines[index] = b" " + line
            mended += 1
    if not mended:
        return raw, defects
    defects.append(f"{mended} header line(s) without the indentation of a folded header")
    return b"".join(lines) + raw[len(block):], defects


def _build(message: Message, size: int, defects: list[str], *,
           with_body: bool = True, linesep: str = "\n") -> ParsedMessage:
    """The ParsedMessage of a parsed tree; attached mails are written with `linesep`."""
    message.policy = _READ
    raw_headers = raw_header_values(message)
    fallbacks = header_fallbacks(message, raw_headers)
    headers = decoded_headers(raw_headers, fallbacks)

    def addresses(name: str) -> tuple[Address, ...]:
        return parse_addresses(raw_headers.get(name, ()), fallbacks)

    def first(name: str) -> str | None:
        values = headers.get(name)
        return values[0] if values else None

    senders = addresses("from")
    if not senders:  # no usable From: whoever else the mail names as its sender
        for fallback in ("reply-to", "sender", "return-path"):
            senders = addresses(fallback)
            if senders:
                defects.append(f"no usable From: sender taken from {fallback.title()}")
                break
    text, html, attachments = _walk(message, defects, linesep) if with_body \
        else ("", None, ())
    defects += [type(d).__name__ for d in getattr(message, "defects", ())]
    return ParsedMessage(
        message_id=normalize_message_id(first("message-id")),
        subject=" ".join((first("subject") or "").split()),
        from_=senders[0] if senders else None,
        reply_to=addresses("reply-to"),
        to=addresses("to"),
        cc=addresses("cc"),
        date=_date(first("date")),
        in_reply_to=(message_ids(first("in-reply-to")) or (None,))[0],
        references=message_ids(" ".join(headers.get("references", ()))),
        headers=headers,
        body_text=text,
        body_html=html,
        attachments=attachments,
        defects=tuple(dict.fromkeys(d for d in defects if d)),
        size=size,
    )


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _walk(message: Message, defects: list[str], linesep: str
          ) -> tuple[str, str | None, tuple[Attachment, ...]]:
    """Body text, HTML and attachments; nested messages are kept whole, not descended into.

    The body is every inline text part in order (a mail client may put text, an image and
    more text one after the other); of a multipart/alternative, the text/plain version only,
    the others' HTML kept as the HTML body. HTML with no text version is turned into text.
    """
    pieces: list[tuple[str, str]] = []  # ("text/plain" | "text/html", text) of the body
    html: list[str] = []
    files: list[tuple[str, str, bytes, bool, str | None]] = []
    outlook_texts: list[str] = []  # bodies found inside winmail.dat
    inside: dict[int, tuple[str, ...]] = {}  # index in files → what an attached mail holds
    charsets = declared_charsets(message)
    stack: list[tuple[Message, bool]] = [(message, False)]  # (part, an unchosen alternative)
    seen = 0
    while stack:
        part, unchosen = stack.pop(0)
        part.policy = _READ
        seen += 1
        if seen > _MAX_PARTS:
            defects.append(f"more than {_MAX_PARTS} MIME parts: the rest ignored")
            break
        ctype = _content_type(part)
        if ctype in _REPORT_PARTS:  # a DSN's or MDN's fields: an attachment, not body text
            files.append((_filename(part) or _described_name(part, ctype), ctype,
                          _report_bytes(part, linesep), False, None))
            continue
        if part.is_multipart() and ctype != "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list):
                children = [p for p in payload if isinstance(p, Message)]
                chosen = _chosen_alternative(children) if ctype == "multipart/alternative" \
                    else None
                stack[0:0] = [(child, unchosen or (chosen is not None and child is not chosen))
                              for child in children]
            continue
        if ctype.startswith("multipart/"):  # no boundary found: what is there is the text
            defects.append(f"{ctype} without parts: read as text")
            pieces.append(("text/plain", _text_payload(part)))
            continue
        disposition = decode_header_value(part.get("Content-Disposition")).split(";")[0]
        disposition = disposition.strip().lower()
        filename = _filename(part, charsets)
        if not filename and (ctype == "message/rfc822" or disposition == "attachment"):
            filename = _described_name(part, ctype)
        is_body = (ctype in ("text/plain", "text/html") and disposition != "attachment"
                   and not filename)
        if is_body:
            text = _text_payload(part)
            if ctype == "text/html":
                html.append(text)
            if not unchosen:
                pieces.append((ctype, text))
            continue
        data = _binary_payload(part, ctype, linesep)
        if is_tnef(ctype, filename, data):
            contents = unpack_tnef(data)
            if contents is not None and not contents.empty:
                files += [(f.filename, f.content_type, f.data, False, None)
                          for f in contents.files]
                outlook_texts.append(contents.text if contents.text.strip()
                                     else html_to_text(contents.html or ""))
                continue
            defects.append(f"{filename or 'TNEF part'} could not be unpacked: kept as it is")
        content_id = normalize_message_id(decode_header_value(part.get("Content-ID")))
        inline = disposition == "inline" or (disposition == "" and content_id is not None
                                             and ctype.startswith("image/"))
        files.append((filename, ctype, data, inline, content_id))
        if ctype == "message/rfc822":
            inside[len(files) - 1] = _files_inside(part, charsets)
    names = unique_filenames(
        sanitize_filename(name) or default_filename(ctype, index)
        for index, (name, ctype, *_rest) in enumerate(files, start=1))
    attachments = tuple(
        Attachment(filename=name, content_type=ctype, data=data, inline=inline,
                   content_id=cid, contents=inside.get(index, ()),
                   digest=hashlib.sha256(data).hexdigest())
        for index, (name, (_n, ctype, data, inline, cid))
        in enumerate(zip(names, files, strict=True)))
    html_text = "\n".join(h for h in html if h.strip()) or None
    texts = [(text.strip("\r\n") if ctype == "text/plain" else html_to_text(text))
             for ctype, text in pieces if text.strip()]
    body = "\n\n".join(t for t in texts if t.strip())
    if not body.strip() and any(t.strip() for t in outlook_texts):
        body = "\n\n".join(t.strip() for t in outlook_texts if t.strip())
    if html_text and len(body.split()) < STUB_WORDS:
        from_html = html_to_text(html_text)
        if _is_stub(body, from_html):
            body = from_html
    return _tidy(body), html_text, attachments


def _is_stub(text: str, from_html: str) -> bool:
    """An empty or "read the HTML version here" text version beside a full HTML one."""
    words, html_words = len(text.split()), len(from_html.split())
    return words == 0 or (html_words >= STUB_WORDS and html_words >= 5 * words)


def _files_inside(attached: Message, charsets: tuple[str, ...]) -> tuple[str, ...]:
    """The files an attached mail carries, those of mails inside it as `inner.eml/file`."""
    found: list[str] = []
    stack: list[tuple[Message, str, int]] = [(attached, "", 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, prefix, depth = stack.pop(0)
        part.policy = _READ
        seen += 1
        ctype = _content_type(part)
        payload = part.get_payload()
        if ctype == "message/rfc822" and part is not attached:
            name = sanitize_filename(_filename(part, charsets) or _described_name(part, ctype))
            found.append(prefix + (name or "message.eml"))
            if depth >= _MAX_LISTED_DEPTH:
                continue
            prefix, depth = prefix + (name or "message.eml") + "/", depth + 1
        if isinstance(payload, list):
            stack[0:0] = [(child, prefix, depth) for child in payload
                          if isinstance(child, Message)]
            continue
        if part is attached or ctype == "message/rfc822" or ctype.startswith("multipart/"):
            continue
        name = sanitize_filename(_filename(part, charsets))
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        if name or disposition == "attachment" or not ctype.startswith("text/"):
            found.append(prefix + (name or default_filename(ctype, len(found) + 1)))
    return tuple(found)


def _chosen_alternative(children: list[Message]) -> Message | None:
    """The version of a multipart/alternative the body is read from: the plain text one."""
    for child in children:
        if _content_type(child) == "text/plain" and not _filename(child):
            return child
    for child in children:  # text inside a nested multipart (alternative of related parts)
        if child.is_multipart() and any(_content_type(p) == "text/plain" for p in child.walk()):
            return child
    return None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _filename(part: Message, charsets: tuple[str, ...] = ()) -> str:
    """The part's file name; raw 8-bit bytes in it read with the mail's `charsets`."""
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        name = part.get_param("name", header="content-type")  # type: ignore[assignment]
        if isinstance(name, tuple):
            name = email.utils.collapse_rfc2231_value(name)
    return decode_header_value(name, charsets) if name else ""


def _described_name(part: Message, ctype: str) -> str:
    """A name for a part without one: its description, the subject of an attached mail."""
    extension = _REPORT_PARTS.get(ctype) or (".eml" if ctype == "message/rfc822" else "")
    if ctype == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            subject = " ".join(header_text(inner[0], "Subject").split())
            if subject:
                return subject + ".eml"
    described = header_text(part, "Content-Description")
    if described and extension:
        return described + extension
    if ctype in _REPORT_PARTS:
        return ctype.rpartition("/")[2] + _REPORT_PARTS[ctype]
    return described


def _report_bytes(part: Message, linesep: str) -> bytes:
    """The text of a report part as it came (the parser took its field groups for headers)."""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding in ("base64", "quoted-printable") and not part.is_multipart():
        return _binary_payload(part, "text/plain", linesep)
    try:
        written = part.as_bytes(policy=_AS_RECEIVED.clone(linesep=linesep))
    except Exception:
        return _binary_payload(part, "text/plain", linesep)
    _head, blank, body = written.partition((linesep * 2).encode())
    return body if blank else b""


def _text_payload(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    return decode_bytes(data, part.get_content_charset())


def _binary_payload(part: Message, ctype: str, linesep: str) -> bytes:
    """A part's bytes; an attached mail as it came, with the line ends of the mail around it."""
    if ctype == "message/rfc822" or part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            try:  # headers as they came, not folded again
                written = inner[0].as_bytes(policy=_AS_RECEIVED.clone(linesep=linesep))
            except Exception:
                written = inner[0].as_string().encode("utf-8", "replace")
            return written if written.strip() else b""
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding in _UUENCODINGS and isinstance(payload, str) and \
            not re.search(r"^begin [0-7]+ ", payload, re.MULTILINE):
        return _uudecode_lines(payload)
    if encoding == "base64" and isinstance(payload, str) and len(payload) > _FEED_BYTES:
        large = _decoded_base64(payload)
        if large is not None:
            return large
    try:
        decoded = part.get_payload(decode=True)
    except Exception:
        decoded = None
    if isinstance(decoded, bytes):
        return decoded
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


_BASE64_SPACE = str.maketrans("", "", " \t\r\n")


def _decoded_base64(payload: str) -> bytes | None:
    """Well-formed base64 decoded a slice at a time; None for anything else.

    The standard library splits the whole payload into lines and joins them again before it
    decodes, about three copies of a large attachment at once. Anything this strict decoder
    refuses goes the standard library's way, with its defects and repairs.
    """
    pieces: list[bytes] = []
    carry = ""
    for start in range(0, len(payload), _FEED_BYTES):
        clean = carry + payload[start:start + _FEED_BYTES].translate(_BASE64_SPACE)
        whole = len(clean) - len(clean) % 4
        carry = clean[whole:]
        try:
            pieces.append(binascii.a2b_base64(clean[:whole].encode("ascii"), strict_mode=True))
        except (binascii.Error, UnicodeEncodeError):
            return None
    return None if carry else b"".join(pieces)


def _uudecode_lines(payload: str) -> bytes:
    """uuencoded data without its `begin` and `end` lines (the standard library wants them)."""
    out = bytearray()
    for line in payload.splitlines():
        if not line.strip() or line.strip() in ("`", "end"):
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:  # some encoders pad lines short: the length byte says how many to keep
                out += binascii.a2b_uu(line + " " * 80)
            except binascii.Error:
                continue
    return bytes(out)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")
