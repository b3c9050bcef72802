"""Signed Message-IDs, command lines and routing decisions: pure logic, no servers."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from conftest import routed
from hypothesis import given
from hypothesis import strategies as st

from mailbot.conversation import (
    CommandKind,
    RouteKind,
    ThreadSigner,
    parse_commands,
    subject_tag,
)
from mailbot.replies.loops import Sender

SIGNER = ThreadSigner(b"k" * 32)
WHO = Sender(own_addresses=("support@example.com",), agent_domains=("support.example.com",))


@given(st.integers(min_value=1, max_value=10**9),
       st.sampled_from(["auto_reply", "notification", "relay", "confirmation"]))
def test_a_signed_id_names_its_ticket(number: int, kind: str) -> None:
    message_id = SIGNER.new_id(number, kind, "example.com")
    ref = SIGNER.verify(message_id)
    assert ref is not None and (ref.ticket_number, ref.kind) == (number, kind)
    assert SIGNER.verify(f"<{message_id}>") == ref


def test_a_forged_or_altered_id_names_nothing() -> None:
    genuine = SIGNER.new_id(42, "relay", "example.com")
    assert SIGNER.verify(genuine.replace("mailbot.42.", "mailbot.43.")) is None
    assert ThreadSigner(b"x" * 32).verify(genuine) is None
    assert SIGNER.verify("mailbot.42.relay.000000000000.00000000000000000000@example.com") \
        is None
    assert SIGNER.verify("CAF=abc@mail.gmail.com") is None


def test_signed_ids_are_found_anywhere_in_a_bounce() -> None:
    genuine = SIGNER.new_id(7, "auto_reply", "example.com")
    text = f"Original message headers:\nMessage-ID: <{genuine}>\nSubject: x\n"
    assert [r.ticket_number for r in SIGNER.refs_in(text)] == [7]


def test_commands_at_the_top_are_read_and_the_rest_is_the_reply() -> None:
    reply = parse_commands("#severity p1\n\n#assign Nimal Perera\nHello Jane,\n#status x\n")
    assert [(c.kind, c.argument, c.error) for c in reply.commands] == [
        (CommandKind.SEVERITY, "P1", None), (CommandKind.ASSIGN, "Nimal Perera", None)]
    assert reply.text == "Hello Jane,\n#status x"
    assert not reply.is_note


@pytest.mark.parametrize(("line", "error"), [
    ("#severity P5", "#severity needs one of P1, P2, P3, P4, not 'P5'"),
    ("#status closed", "#status needs one of open, waiting, resolved, not 'closed'"),
    ("#assign", "#assign needs a name"),
    ("#priority P1", "unknown command #priority (known: #severity, #status, #assign, #note)"),
])
def test_bad_commands_are_refused_with_the_reason(line: str, error: str) -> None:
    (command,) = parse_commands(f"{line}\nText").commands
    assert command.error == error


def test_a_note_is_internal() -> None:
    reply = parse_commands("#note\nCustomer is on the old version.")
    assert reply.is_note and reply.text == "Customer is on the old version."


def mail(sender: str, subject: str = "Printer", headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <x@elsewhere.example>\r\n{headers}\r\nText\r\n").encode()


def on_ticket(number: int) -> Collection[str] | None:
    return {"jane@customer.example"} if number == 7 else None


def route(raw: bytes) -> tuple[RouteKind, int | None, str | None]:
    decision = routed(raw, SIGNER, WHO, on_ticket)
    return decision.kind, decision.ticket_number, decision.via


def test_routing() -> None:
    ours = SIGNER.new_id(7, "notification", "example.com")
    other = SIGNER.new_id(8, "notification", "example.com")  # no such ticket
    assert route(mail("jane@customer.example", headers=f"In-Reply-To: <{ours}>\r\n")) == (
        RouteKind.FOLLOW_UP, 7, "signed reference")
    assert route(mail("ann@support.example.com", headers=f"References: <a@b> <{ours}>\r\n")) \
        == (RouteKind.AGENT_REPLY, 7, "signed reference")
    assert route(mail("ann@support.example.com", "Re: [#7] Printer")) == (
        RouteKind.NEW, None, None)  # an agent not on the ticket, and no signed reference
    assert route(mail("jane@customer.example", "Re: [#7] Printer")) == (
        RouteKind.FOLLOW_UP, 7, "subject tag")
    assert route(mail("mallory@evil.example", "Re: [#7] Printer")) == (
        RouteKind.NEW, None, None)
    assert route(mail("jane@customer.example", headers=f"In-Reply-To: <{other}>\r\n")) == (
        RouteKind.NEW, None, None)
    assert route(mail("jane@customer.example", "Out of office",
                      f"Auto-Submitted: auto-replied\r\nIn-Reply-To: <{ours}>\r\n")) == (
        RouteKind.AUTOMATIC_REPLY, 7, "signed reference")


def test_a_signed_reply_asks_only_whether_its_ticket_exists() -> None:
    """Given `exists`, a reply naming one of our mails is routed without the addresses on
    the ticket; a subject tag still needs them, to know the sender is on it."""
    ours = SIGNER.new_id(7, "auto_reply", "example.com")
    asked: list[tuple[str, int]] = []

    def exists(number: int) -> bool:
        asked.append(("exists", number))
        return number == 7

    def participants(number: int) -> Collection[str] | None:
        asked.append(("participants", number))
        return on_ticket(number)

    def decide(raw: bytes) -> tuple[RouteKind, int | None]:
        decision = routed(raw, SIGNER, WHO, participants,
                                 exists=exists)
        return decision.kind, decision.ticket_number

    assert decide(mail("jane@customer.example", headers=f"In-Reply-To: <{ours}>\r\n")) == (
        RouteKind.FOLLOW_UP, 7)
    assert asked == [("exists", 7)]
    asked.clear()
    gone = SIGNER.new_id(8, "auto_reply", "example.com")
    assert decide(mail("jane@customer.example", headers=f"In-Reply-To: <{gone}>\r\n")) == (
        RouteKind.NEW, None)
    assert asked == [("exists", 8)]
    asked.clear()
    assert decide(mail("jane@customer.example", "Re: [#7] Printer")) == (
        RouteKind.FOLLOW_UP, 7)
    assert asked == [("participants", 7)]


def test_our_own_mail_coming_back_stays_on_its_ticket() -> None:
    ours = SIGNER.new_id(7, "notification", "example.com")
    raw = (f"From: support@example.com\r\nTo: support@example.com\r\nSubject: [#7] New\r\n"
           f"Message-ID: <{ours}>\r\nX-Mailbot-Loop: mailbot\r\n\r\nText\r\n").encode()
    decision = routed(raw, SIGNER, WHO, on_ticket)
    assert (decision.kind, decision.ticket_number, decision.via) == (
        RouteKind.AUTOMATIC_REPLY, 7, "our own mail")


def test_a_bounce_of_our_mail_is_routed_to_its_ticket() -> None:
    ours = SIGNER.new_id(7, "relay", "example.com")
    raw = ("From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nGone.\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
           "Final-Recipient: rfc822; jane@customer.example\r\nStatus: 5.1.1\r\n\r\n"
           "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
           f"Message-ID: <{ours}>\r\nSubject: Re: [#7] Printer\r\n\r\n--b--\r\n").encode()
    decision = routed(raw, SIGNER, WHO, on_ticket)
    assert (decision.kind, decision.ticket_number) == (RouteKind.BOUNCE, 7)
    assert decision.ref is not None and decision.ref.message_id == ours


def test_subject_tag_takes_the_last_tag() -> None:
    assert subject_tag("Re: [#12] Fwd: [#345] Printer") == 345
    assert subject_tag("Invoice #12") is None
