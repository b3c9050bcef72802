"""Bounces in the shapes MTAs give them, and the mail they return found in each shape."""

from __future__ import annotations

import base64
import quopri

from conftest import routed

from mailbot.conversation import RouteKind, ThreadSigner
from mailbot.parsing import parse_message
from mailbot.replies.loops import Sender, is_bounce
from mailbot.replies.returned import returned_message_ids

SIGNER = ThreadSigner(b"k" * 32)
WHO = Sender(own_addresses=("support@example.com",))


def on_ticket(number: int) -> list[str] | None:
    return ["jane@customer.example"] if number == 7 else None


def carrier_notice(sender: str, returned: bytes, text: str) -> bytes:
    """A mail provider's own failure notice: no DSN, the returned mail attached."""
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: Mail\r\n"
            "Return-Path: <>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="n"\r\n\r\n'
            f"--n\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
            "--n\r\nContent-Type: message/rfc822\r\n\r\n").encode() + returned + b"\r\n--n--\r\n"


def test_a_carrier_notice_that_returns_the_mail_is_a_bounce() -> None:
    returned = b"From: support@example.com\r\nMessage-ID: <a@example.com>\r\n\r\nHi\r\n"
    notice = carrier_notice("no-reply@mail.carrier.example", returned,
                            "Your mail sent on: Thu, 29 Apr 2013\r\n"
                            "Could not be delivered to: <kijitora@carrier.example>\r\n"
                            "As their mailbox is full.")
    message = parse_message(notice)
    assert is_bounce(message)
    assert returned_message_ids(message, notice) == ["a@example.com"]


def test_a_person_forwarding_a_mail_that_mentions_delivery_is_not_a_bounce() -> None:
    raw = (b"From: Jane <jane@customer.example>\r\nTo: support@example.com\r\n"
           b"Subject: Fwd: order\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="n"\r\n\r\n'
           b"--n\r\nContent-Type: text/plain\r\n\r\nMy order could not be delivered, see below."
           b"\r\n--n\r\nContent-Type: message/rfc822\r\n\r\nFrom: shop@example.org\r\n"
           b"Subject: Order\r\n\r\nShipped.\r\n--n--\r\n")
    assert not is_bounce(parse_message(raw))


def test_an_amazon_ses_bounce_notification_is_a_bounce() -> None:
    ours = "mailbot.7.x@example.com"
    raw = ("From: SES <no-reply@sns.amazonaws.com>\r\nTo: support@example.com\r\n"
           "Subject: AWS Notification Message\r\n\r\n"
           '{"notificationType":"Bounce","bounce":{"bounceType":"Permanent"},"mail":'
           '{"headers":[{"name":"From","value":"support@example.com"},'
           f'{{"name":"Message-ID","value":"<{ours}>"}}]}}}}\r\n').encode()
    message = parse_message(raw)
    assert is_bounce(message)
    assert returned_message_ids(message, raw) == [ours]


def test_a_folded_message_id_of_the_returned_mail_is_read() -> None:
    returned = b"From: support@example.com\r\nMessage-Id:\r\n <folded@example.com>\r\n\r\nHi\r\n"
    notice = carrier_notice("MAILER-DAEMON@mx.example", returned, "Delivery failed.")
    assert returned_message_ids(parse_message(notice), notice) == ["folded@example.com"]


def test_a_bounce_whose_returned_headers_are_base64_goes_to_its_ticket() -> None:
    ours = SIGNER.new_id(7, "relay", "example.com")
    headers = f"From: support@example.com\r\nMessage-ID: <{ours}>\r\nSubject: [#7]\r\n"
    raw = ("From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\n"
           "Subject: Undeliverable: [#7]\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="n"\r\n\r\n'
           "--n\r\nContent-Type: text/plain\r\n\r\nDelivery has failed.\r\n"
           "--n\r\nContent-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(headers.encode()).decode() + "--n--\r\n").encode()
    assert ours.encode() not in raw
    decision = routed(raw, SIGNER, WHO, on_ticket)
    assert (decision.kind, decision.ticket_number) == (RouteKind.BOUNCE, 7)


def test_a_bounce_quoting_our_id_across_a_quoted_printable_line_break_finds_it() -> None:
    ours = SIGNER.new_id(7, "auto_reply", "example.com")
    body = quopri.encodestring(f"Original headers follow.\r\n> Message-ID: <{ours}>\r\n"
                               .replace("\r\n", "\n").encode() * 1)
    body = body.replace(b"Message-ID: <", b"Message-ID: <" + b"=\n")  # a soft break inside
    raw = (b"From: postmaster@mx.example\r\nTo: support@example.com\r\n"
           b"Subject: failure notice\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           + body)
    assert ours.encode() not in raw.replace(b"=\n", b"x")
    decision = routed(raw, SIGNER, WHO, on_ticket)
    assert (decision.kind, decision.ticket_number) == (RouteKind.BOUNCE, 7)
