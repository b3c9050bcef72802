"""Parsing: headers, addresses, bodies, attachments and what makes bytes not a mail."""

from __future__ import annotations

import base64
import hashlib
import pickle
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.parsing import (
    MessageParseError,
    idempotency_key,
    normalize_message_id,
    parse_headers_only,
    parse_message,
    sanitize_filename,
    unique_filenames,
)
from mailbot.parsing.addresses import parse_addresses
from mailbot.parsing.parse import _decoded_base64


def mail(headers: str, body: str = "Hello.\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode("utf-8")


def test_plain_mail_gives_addresses_subject_date_and_text() -> None:
    parsed = parse_message(mail(
        'From: "Jane Doe" <Jane@Example.ORG>\nTo: a@x.example, B <b@x.example>\n'
        "Cc: c@x.example\nSubject: Help\nDate: Tue, 24 Nov 2026 09:12:03 +0530\n"
        "Message-ID: <Abc.1@Mail.Example.ORG>", "Line one\r\nLine two\r\n"))
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.email) == ("Jane Doe", "jane@example.org")
    assert [a.email for a in parsed.to] == ["a@x.example", "b@x.example"]
    assert [a.email for a in parsed.cc] == ["c@x.example"]
    assert parsed.subject == "Help"
    assert parsed.message_id == "Abc.1@mail.example.org"
    assert parsed.date is not None and parsed.date.utcoffset() == timedelta(hours=5, minutes=30)
    assert parsed.body_text == "Line one\nLine two"


def test_encoded_word_subject_is_decoded() -> None:
    parsed = parse_message(mail("From: a@x.example\nSubject: =?UTF-8?B?w6TDtsO8IOKCrA==?="))
    assert parsed.subject == "äöü €"


def test_unknown_charset_does_not_raise() -> None:
    parsed = parse_message(mail("From: a@x.example\nSubject: =?ks_c_5601-1987?B?x9HAxw==?=\n"
                                "Content-Type: text/plain; charset=unicode-1-1-utf-7",
                                "Hi +AKM-1\r\n"))
    assert (parsed.subject, parsed.body_text) == ("한의", "Hi £1")


def test_raw_8bit_header_is_decoded_with_the_declared_body_charset() -> None:
    raw = (b"From: a@x.example\r\nSubject: \xd7\xaa\xb7\xa2\r\n"
           b"Content-Type: text/plain; charset=gb2312\r\n\r\nx\r\n")
    assert parse_message(raw).subject == "转发"


def test_html_only_mail_gets_readable_text_body() -> None:
    parsed = parse_message(mail(
        "From: a@x.example\nContent-Type: text/html; charset=utf-8",
        "<html><style>p{}</style><script>bad()</script><p>Hello <b>you</b></p>"
        "<a href='https://x.example/k'>docs</a></html>"))
    assert "Hello you" in parsed.body_text
    assert "https://x.example/k" in parsed.body_text
    assert "bad()" not in parsed.body_text and "p{}" not in parsed.body_text
    assert parsed.body_html is not None


def test_plain_part_is_preferred_over_html() -> None:
    parsed = parse_message(mail(
        "From: a@x.example\nContent-Type: multipart/alternative; boundary=b",
        "--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b--\r\n"))
    assert parsed.body_text == "plain words"


def test_attachment_filenames_are_sanitized_and_unique() -> None:
    part = ("--b\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="{}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n")
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"
            + part.format("../../etc/passwd") + part.format("passwd") + part.format("CON")
            + "--b--\r\n")
    parsed = parse_message(mail("From: a@x.example\nContent-Type: multipart/mixed; boundary=b",
                                body))
    assert [a.filename for a in parsed.attachments] == ["passwd", "passwd (2)", "_CON"]
    assert all(a.data == b"hello" for a in parsed.attachments)


def test_inline_image_is_kept_and_marked_inline() -> None:
    parsed = parse_message(mail(
        "From: a@x.example\nContent-Type: multipart/related; boundary=b",
        "--b\r\nContent-Type: text/html\r\n\r\n<img src='cid:logo@x'>\r\n"
        "--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"))
    (image,) = parsed.attachments
    assert (image.inline, image.content_type, image.filename) == (True, "image/png",
                                                                  "image-1.png")


def test_forwarded_message_is_kept_whole_as_an_eml_attachment() -> None:
    parsed = parse_message(mail(
        "From: a@x.example\nContent-Type: multipart/mixed; boundary=b",
        "--b\r\nContent-Type: text/plain\r\n\r\nforwarding\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@y.example\r\n"
        "Subject: inner\r\n\r\ninner body\r\n--b--\r\n"))
    (forwarded,) = parsed.attachments
    assert forwarded.content_type == "message/rfc822" and forwarded.filename.endswith(".eml")
    assert b"inner body" in forwarded.data
    assert parsed.body_text == "forwarding"


def test_mail_without_headers_is_a_parse_error() -> None:
    with pytest.raises(MessageParseError, match="no header block"):
        parse_message(b"just some text\nwith no headers\n")


def test_empty_input_is_a_parse_error() -> None:
    with pytest.raises(MessageParseError, match="empty"):
        parse_message(b"  \r\n")


def test_text_line_before_the_headers_is_skipped() -> None:
    raw = b"---- Original message ----\r\nFrom: a@x.example\r\nSubject: s\r\n\r\nbody\r\n"
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.body_text) == ("s", "body")
    assert any("before the headers" in d for d in parsed.defects)


def test_mail_parsers_defect_categories_are_kept() -> None:
    raw = mail('From: a@x.example\nDate: Someday at noon\nSubject: s\nMIME-Version: 1.0\n'
               'Content-Type: multipart/mixed; boundary="b1"',
               "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
    parsed = parse_message(raw)
    assert {"CloseBoundaryNotFoundDefect", "DateHeaderDefect"} <= set(parsed.defects)
    assert parsed.body_text == "hello"
    assert parsed.date is None


def test_headers_only_parse_marks_truncated() -> None:
    raw = mail("From: a@x.example\nSubject: big", "x" * 10000)
    parsed = parse_headers_only(raw)
    assert (parsed.truncated, parsed.subject, parsed.body_text, parsed.size) == (
        True, "big", "", len(raw))


def test_references_and_in_reply_to_are_normalized() -> None:
    parsed = parse_message(mail("From: a@x.example\nIn-Reply-To: <One@A.example>\n"
                                "References: <zero@a.example>\n <One@A.example>"))
    assert parsed.in_reply_to == "One@a.example"
    assert parsed.references == ("zero@a.example", "One@a.example")


def test_missing_message_id_gives_sha256_key() -> None:
    raw = mail("From: a@x.example")
    assert idempotency_key(None, raw) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert idempotency_key("<X@Y.example>", raw) == "mid:X@y.example"


@given(st.text(max_size=400))
def test_sanitized_filename_is_safe(name: str) -> None:
    clean = sanitize_filename(name, max_length=100)
    assert "/" not in clean and "\\" not in clean
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in clean)
    assert len(clean) <= 100
    assert not clean.startswith(".")
    assert sanitize_filename(clean, max_length=100) == clean


@given(st.lists(st.sampled_from(["a.pdf", "a.pdf", "b", "A.PDF", "a (2).pdf"]), max_size=12))
def test_unique_filenames_never_repeat(names: list[str]) -> None:
    unique = unique_filenames(names)
    assert len({n.lower() for n in unique}) == len(unique) == len(names)


@given(st.text(alphabet=st.characters(blacklist_characters="<> \t\r\n"), min_size=1,
               max_size=60))
def test_normalized_message_id_is_stable(local: str) -> None:
    once = normalize_message_id(f"<{local}@Example.COM>")
    assert once is not None and normalize_message_id(once) == once


def test_missing_from_falls_back_to_reply_to() -> None:
    message = parse_message(mail("Reply-To: <vip@example.org>\nSubject: hi"))
    assert message.from_ is not None and message.from_.email == "vip@example.org"
    assert "no usable From: sender taken from Reply-To" in message.defects


def test_header_lines_that_lost_their_folding_indent_are_mended() -> None:
    raw = (b"---- Original email message ----\r\nReturn-Path: a@example.org\r\n"
           b"Received: from mail.example.org ([10.0.0.1])\r\nby mx.example.org with ESMTP\r\n"
           b"for <help@example.org>; Thu, 2 Aug 2018 16:58:16 +0200\r\n"
           b"From: a@example.org\r\nSubject: Contact from Server\r\n\r\nBody text\r\n")
    message = parse_message(raw)
    assert (message.subject, message.from_ and message.from_.email) == (
        "Contact from Server", "a@example.org")
    assert message.body_text == "Body text"
    assert message.headers["received"] == (
        "from mail.example.org ([10.0.0.1]) by mx.example.org with ESMTP "
        "for <help@example.org>; Thu, 2 Aug 2018 16:58:16 +0200",)


def test_multipart_without_a_boundary_in_the_body_is_read_as_text() -> None:
    raw = mail('Content-Type: multipart/mixed; boundary="nowhere"\n'
               "Content-Transfer-Encoding: quoted-printable",
               "=E4=F6=FC ad asd\r\n\r\n-Martin\r\n")
    message = parse_message(raw)
    assert message.body_text == "äöü ad asd\n\n-Martin"
    assert message.attachments == ()


def test_text_and_html_parts_of_a_mixed_mail_are_all_in_the_body_in_order() -> None:
    raw = mail('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"',
               "--b\r\nContent-Type: text/html\r\n\r\n<h1>First, in HTML</h1>\r\n"
               "--b\r\nContent-Type: text/plain\r\n\r\nThen plain text\r\n"
               "--b\r\nContent-Type: text/html\r\n\r\n<p>And the signature</p>\r\n--b--\r\n")
    message = parse_message(raw)
    assert message.body_text.split("\n\n") == [
        "First, in HTML", "Then plain text", "And the signature"]


def test_delivery_report_fields_are_an_attachment_and_the_returned_mail_named() -> None:
    raw = mail('MIME-Version: 1.0\nContent-Type: multipart/report; '
               'report-type=delivery-status; boundary="r"',
               "--r\r\nContent-Type: text/plain\r\n\r\nYour mail could not be delivered.\r\n"
               "--r\r\nContent-Description: Delivery report\r\n"
               "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n"
               "\r\nFinal-Recipient: rfc822; x@example.org\r\nStatus: 5.2.2\r\n"
               "--r\r\nContent-Type: message/rfc822\r\n\r\nFrom: me@example.com\r\n"
               "Subject: hello 123 =?utf-8?q?=C3=A4?=\r\nX-Long: " + "word " * 30 + "\r\n\r\n"
               "original\r\n--r--\r\n")
    message = parse_message(raw)
    assert message.body_text == "Your mail could not be delivered."
    report, returned = message.attachments
    assert (report.filename, report.content_type) == ("Delivery report.txt",
                                                      "message/delivery-status")
    assert report.data == (b"Reporting-MTA: dns; mx.example\r\n\r\n"
                           b"Final-Recipient: rfc822; x@example.org\r\nStatus: 5.2.2\r\n")
    assert returned.filename == "hello 123 ä.eml"
    assert b"X-Long: " + b"word " * 29 + b"word" in returned.data  # not folded again


def test_uuencoded_attachment_without_begin_line_is_decoded() -> None:
    raw = mail('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="u"',
               "--u\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
               "--u\r\nContent-Type: application/octet-stream; name=a.txt\r\n"
               "Content-Disposition: attachment; filename=a.txt\r\n"
               "Content-Transfer-Encoding: x-uuencode\r\n\r\n,2&5L;&\\@6F%M;6%D\r\n`\r\n--u--\r\n")
    (attachment,) = parse_message(raw).attachments
    assert attachment.data == b"Hello Zammad"


def test_header_bytes_in_shift_jis_under_a_declared_iso_2022_jp() -> None:
    shift_jis = "ツール".encode("cp932")
    raw = (b"From: =?ISO-2022-JP?B?" + base64.b64encode(shift_jis) + b"?= <a@example.jp>\r\n"
           b"Subject: " + shift_jis + b"\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n"
           b"\r\nhello\r\n")
    message = parse_message(raw)
    assert message.subject == "ツール"
    assert message.from_ is not None and message.from_.name == "ツール"


def test_text_after_the_end_of_an_html_document_is_kept() -> None:
    raw = mail("Content-Type: text/html; charset=utf-8",
               "<html><body><p>Top</p></body></html><div>Forwarded part</div>")
    assert parse_message(raw).body_text.split("\n\n") == ["Top", "Forwarded part"]


def test_an_empty_text_version_gives_way_to_the_html_one() -> None:
    raw = mail('MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="a"',
               "--a\r\nContent-Type: text/plain\r\n\r\n \r\n"
               "--a\r\nContent-Type: text/html\r\n\r\n<p>The real text</p>\r\n--a--\r\n")
    assert parse_message(raw).body_text == "The real text"


def test_a_comma_inside_an_encoded_display_name_does_not_split_the_address() -> None:
    parsed = parse_message(mail(
        "From: =?iso-8859-1?Q?B=FCrling,=20Andreas?= <smith@example.com>\n"
        'To: "Doe, Jane" <jane@example.com>, =?utf-8?Q?J=C3=B6rg?= <j@example.com>'))
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.email) == ("Bürling, Andreas", "smith@example.com")
    assert [(a.name, a.email) for a in parsed.to] == [
        ("Doe, Jane", "jane@example.com"), ("Jörg", "j@example.com")]


def test_a_comment_after_the_display_name_is_not_part_of_it() -> None:
    parsed = parse_message(mail(
        "From: MAILER-DAEMON (Mail Delivery System) <postmaster@example.com>\n"
        'To: "Sales (EMEA)" <sales@example.com>, root@example.com (Root User)'))
    assert parsed.from_ is not None and parsed.from_.name == "MAILER-DAEMON"
    assert [a.name for a in parsed.to] == ["Sales (EMEA)", "Root User"]


def _forward(linesep: bytes, inner: bytes) -> bytes:
    outer = (b"From: a@x.example\nSubject: Fwd\nMIME-Version: 1.0\n"
             b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
             b"see below\n--b\nContent-Type: message/rfc822\n\n")
    return (outer + inner + b"\n--b--\n").replace(b"\n", linesep)


@pytest.mark.parametrize("linesep", [b"\r\n", b"\n"])
def test_an_attached_mail_keeps_its_bytes_and_line_ends(linesep: bytes) -> None:
    inner = (b"From: b@y.example\nSubject: A very long subject line that a generator would "
             b"fold again if it were allowed to, and must not be\nX-Tab: a\tb\n\n"
             b"Body line\n")
    (attached,) = parse_message(_forward(linesep, inner)).attachments
    assert attached.data == inner.replace(b"\n", linesep)


def test_an_empty_attached_mail_is_empty() -> None:
    (attached,) = parse_message(_forward(b"\r\n", b"")).attachments
    assert (attached.filename, attached.data) == ("message-1.eml", b"")


def test_an_attached_mail_is_named_by_its_raw_8bit_subject_in_its_own_charset() -> None:
    inner = (b"From: b@y.example\nSubject: \xd7\xaa\xb7\xa2\nContent-Type: text/plain; "
             b"charset=gb2312\n\n\xd7\xaa\xb7\xa2\n")
    (attached,) = parse_message(_forward(b"\r\n", inner)).attachments
    assert attached.filename == "转发.eml"


def test_delivery_status_fields_are_kept_as_they_came() -> None:
    fields = (b"Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; x@example.com\n"
              b"Action: failed\nStatus: 5.1.1\n\n")
    raw = (b"From: MAILER-DAEMON@example.com\nSubject: Undelivered\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\n\n'
           b"--r\nContent-Type: text/plain\n\nNot delivered.\n"
           b"--r\nContent-Type: message/delivery-status\n\n" + fields + b"\n--r--\n")
    (report,) = parse_message(raw).attachments
    assert report.data == fields


def test_a_text_version_that_only_points_at_the_html_one_gives_way_to_it() -> None:
    article = " ".join(f"word{i}" for i in range(120))
    raw = mail('MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="a"',
               "--a\r\nContent-Type: text/plain\r\n\r\nRead this newsletter online: "
               "https://news.example.com/1\r\n"
               f"--a\r\nContent-Type: text/html\r\n\r\n<p>{article}</p>\r\n--a--\r\n")
    assert parse_message(raw).body_text == article


def test_a_short_text_version_beside_a_short_html_one_is_still_preferred() -> None:
    raw = mail('MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="a"',
               "--a\r\nContent-Type: text/plain\r\n\r\nThanks, it works now.\r\n"
               "--a\r\nContent-Type: text/html\r\n\r\n<p>Thanks, it <b>works</b> now.</p>"
               "<p>Sent from my phone</p>\r\n--a--\r\n")
    assert parse_message(raw).body_text == "Thanks, it works now."


def test_an_attached_mail_lists_its_files_and_those_of_mails_inside_it() -> None:
    deepest = (b"From: c@z.example\nSubject: Deepest\nMIME-Version: 1.0\n"
               b'Content-Type: multipart/mixed; boundary="d"\n\n--d\nContent-Type: text/plain\n\n'
               b"hi\n--d\nContent-Type: image/png; name=shot.png\nContent-Transfer-Encoding: "
               b"base64\n\niVBORw0KGgo=\n--d--\n")
    inner = (b"From: b@y.example\nSubject: Inner\nMIME-Version: 1.0\n"
             b'Content-Type: multipart/mixed; boundary="i"\n\n--i\nContent-Type: text/plain\n\n'
             b"see files\n--i\nContent-Type: application/pdf; name=report.pdf\n"
             b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n"
             b"--i\nContent-Type: message/rfc822\n\n" + deepest + b"\n--i--\n")
    (attached,) = parse_message(_forward(b"\n", inner)).attachments
    assert attached.contents == ("report.pdf", "Deepest.eml", "Deepest.eml/shot.png")
    assert attached.label == "Inner.eml (holds report.pdf, Deepest.eml, Deepest.eml/shot.png)"


@given(st.binary(min_size=0, max_size=300_000), st.sampled_from([76, 64, 60, 4, 1000]),
       st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=40, deadline=None)
def test_a_large_base64_part_decodes_slice_by_slice_as_the_standard_library_does(
        data: bytes, width: int, newline: str) -> None:
    """Decoding a big attachment a slice at a time gives exactly the bytes of one decode."""
    text = base64.b64encode(data).decode()
    payload = newline.join(text[i:i + width] for i in range(0, len(text), width)) + newline
    assert _decoded_base64(payload) == data


def test_malformed_base64_is_left_to_the_standard_library() -> None:
    """Bad padding or stray characters are not decoded here, so the stdlib's repairs apply."""
    assert _decoded_base64("QUJD" * 20_000 + "QQ") is None
    assert _decoded_base64("QUJD" * 20_000 + "Q!==") is None


@pytest.mark.parametrize("count", [1, 3, 120])  # 120 addresses: a value too long to keep
def test_address_lists_parse_the_same_every_time(count: int) -> None:
    """Short values' answers are kept between mails; every answer is the parse's own."""
    value = ", ".join(f'"Customer {n}, Ltd" <c{n}@customer.example>' for n in range(count))
    first = parse_addresses([value], ("latin-1",))
    again = parse_addresses((value,), ("latin-1",))
    assert first == again
    assert [a.email for a in first] == [f"c{n}@customer.example" for n in range(count)]
    assert first[-1].name == f"Customer {count - 1}, Ltd"


def test_an_attachments_sha256_comes_from_the_parser_and_crosses_a_pickle() -> None:
    raw = mail("From: a@example.test\nSubject: file\nMIME-Version: 1.0\n"
               "Content-Type: multipart/mixed; boundary=B",
               "--B\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n--B\r\n"
               "Content-Type: application/octet-stream; name=a.bin\r\n"
               "Content-Disposition: attachment; filename=a.bin\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n"
               + base64.b64encode(b"\x00\x01 bytes").decode() + "\r\n--B--\r\n")
    (attachment,) = parse_message(raw).attachments
    expected = hashlib.sha256(b"\x00\x01 bytes").hexdigest()
    assert attachment.digest == expected == attachment.sha256
    assert pickle.loads(pickle.dumps(attachment)).digest == expected
