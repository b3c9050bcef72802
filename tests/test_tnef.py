"""winmail.dat: Outlook's TNEF container unpacked into its files and, when the mail has no
other, its body. Payloads from tnefparse's test suite (../shared/corpus-extra/tnef-tnefparse)."""

from __future__ import annotations

import base64
import hashlib

from conftest import CORPUS
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.parsing import parse_message
from mailbot.parsing.tnef import TNEF_SIGNATURE, is_tnef, unpack_tnef

PAYLOADS = CORPUS.parent / "corpus-extra" / "tnef-tnefparse"


def outlook_mail(payload: bytes, text: str | None = None,
                 content_type: str = "application/ms-tnef") -> bytes:
    parts = b""
    if text is not None:
        parts += b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode() + b"\r\n"
    parts += (b"--b\r\nContent-Type: " + content_type.encode() + b'; name="winmail.dat"\r\n'
              b"Content-Transfer-Encoding: base64\r\n"
              b'Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n'
              + base64.encodebytes(payload) + b"--b--\r\n")
    return (b"From: Outlook User <user@example.com>\r\nSubject: Files\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts)


def test_the_files_inside_winmail_dat_replace_it() -> None:
    message = parse_message(outlook_mail((PAYLOADS / "two-files.tnef").read_bytes(),
                                         "Logs attached."))
    assert [a.filename for a in message.attachments] == ["AUTHORS", "README"]
    authors, readme = message.attachments
    assert authors.size == 244 and readme.size == 893
    assert b"tnef" in readme.data.lower()
    assert message.body_text == "Logs attached."


def test_names_in_winmail_dat_keep_their_umlauts_and_get_a_type() -> None:
    message = parse_message(outlook_mail((PAYLOADS / "umlaut.tnef").read_bytes()))
    names = {a.filename: a.content_type for a in message.attachments}
    assert names == {"TBZ PARIV GmbH.jpg": "image/jpeg", "image003.jpg": "image/jpeg",
                     "UmlautAnhang-äüö.txt": "text/plain"}
    jpeg = next(a for a in message.attachments if a.filename == "TBZ PARIV GmbH.jpg")
    assert jpeg.data[:3] == b"\xff\xd8\xff"  # a real JPEG, not the container
    assert message.body_text.startswith("TEST äöü")  # the RTF body: the mail has no other


def test_repeated_names_inside_winmail_dat_are_numbered() -> None:
    message = parse_message(outlook_mail((PAYLOADS / "duplicate_filename.tnef").read_bytes()))
    names = [a.filename for a in message.attachments]
    assert names == ["file_abcdefgh.txt", "file_abcdefgh (2).txt", "VIA_Nytt_14021.htm"]
    assert len({a.sha256 for a in message.attachments}) == 3


def test_the_html_body_of_winmail_dat_is_read_when_there_is_no_text() -> None:
    message = parse_message(outlook_mail((PAYLOADS / "body.tnef").read_bytes(),
                                         content_type="application/vnd.ms-tnef"))
    assert message.body_text.startswith("THE BILL OF RIGHTS")
    assert message.attachments == ()


def test_winmail_dat_that_holds_nothing_readable_is_kept_as_it_came() -> None:
    payload = (PAYLOADS / "garbage-at-end.tnef").read_bytes()
    message = parse_message(outlook_mail(payload, "See attached."))
    (kept,) = message.attachments
    assert (kept.filename, kept.data) == ("winmail.dat", payload)
    assert any("could not be unpacked" in d for d in message.defects)


def test_a_damaged_container_is_kept_too() -> None:
    payload = (PAYLOADS / "two-files.tnef").read_bytes()[:100]
    contents = unpack_tnef(payload)
    assert contents is None or contents.empty
    (kept,) = parse_message(outlook_mail(payload, "x")).attachments
    assert hashlib.sha256(kept.data).digest() == hashlib.sha256(payload).digest()


def test_only_a_container_under_tnef_type_or_name_is_unpacked() -> None:
    payload = (PAYLOADS / "one-file.tnef").read_bytes()
    assert is_tnef("application/ms-tnef", "", payload)
    assert is_tnef("application/octet-stream", "WINMAIL.DAT", payload)
    assert not is_tnef("application/octet-stream", "sample.tnef", payload)
    assert not is_tnef("application/ms-tnef", "winmail.dat", b"PK\x03\x04 not tnef")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_after_the_tnef_signature_are_unpacked_or_kept(tail: bytes) -> None:
    payload = TNEF_SIGNATURE + tail
    message = parse_message(outlook_mail(payload, "x"))
    names = [a.filename for a in message.attachments]
    assert (names == ["winmail.dat"] and message.attachments[0].data == payload) or \
        "winmail.dat" not in names
