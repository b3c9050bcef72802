"""Composing our mail: header bytes written as set are exactly what compat32 would write."""

from __future__ import annotations

import email
import itertools
import secrets
from datetime import UTC, datetime
from email import policy
from email.policy import Policy, compat32
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.parsing import Attachment
from mailbot.replies import compose as compose_module
from mailbot.replies.compose import WrittenAsSet, compose, domain_of

FAST = WrittenAsSet(linesep="\r\n").clone(max_line_length=0)
REFERENCE = compat32.clone(linesep="\r\n", max_line_length=0)

header_text = st.text(st.sampled_from("ab Z09<>@.;=\"\t\n\r-é中\udce9"), max_size=40)


@given(name=st.sampled_from(["Subject", "References", "Content-Type", "X-Loop"]),
       value=header_text)
def test_a_header_is_written_as_compat32_writes_it(name: str, value: str) -> None:
    assert _folded(FAST, name, value) == _folded(REFERENCE, name, value)


def _folded(way: Policy, name: str, value: str) -> bytes | str:
    try:
        return way.fold_binary(name, value)
    except UnicodeError as exc:  # compat32 refuses some values; so must the fast way
        return type(exc).__name__


AUTO_REPLY: dict[str, Any] = dict(
    kind="auto_reply", message_id="mailbot.7.auto_reply.abc@example.test",
    from_address="Équipe Support <support@example.test>",
    to=("Zoë Müller <zoe@customer.example>",), subject="Re:  Panne   totale — caisse 3",
    text="Bonjour Zoë,\n\nVotre demande n° 7 est enregistrée.\n", html="<p>Bonjour</p>",
    date=datetime(2026, 12, 1, 9, 30, tzinfo=UTC), ticket_number=7,
    in_reply_to="orig@customer.example",
    references=["first@customer.example", "second@customer.example"])


def _composed(monkeypatch: pytest.MonkeyPatch) -> bytes:
    numbers = itertools.count()
    monkeypatch.setattr(secrets, "token_hex", lambda _: f"{next(numbers):024x}")
    data = b"%PDF-1.4 report"
    mail = compose(
        **AUTO_REPLY, reply_to="support+7@example.test",
        attachments=[Attachment("relevé de compte.pdf", "application/pdf", data)])
    return mail.raw


def test_a_composed_mail_is_byte_for_byte_what_compat32_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _composed(monkeypatch)

    monkeypatch.setattr(compose_module, "_WRITTEN_AS_SET", compat32.clone(linesep="\r\n"))
    assert fast == _composed(monkeypatch)
    parsed = email.message_from_bytes(fast, policy=policy.default)
    assert str(parsed["Subject"]) == "Re: Panne totale — caisse 3"
    assert str(parsed["To"]) == "Zoë Müller <zoe@customer.example>"
    assert parsed["References"].split() == [
        "<first@customer.example>", "<second@customer.example>", "<orig@customer.example>"]
    assert b"\r\n" in fast and b"\n" not in fast.replace(b"\r\n", b"")


@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"),
                    max_size=400))
def test_any_text_comes_back_as_written_in_lines_a_mail_may_carry(text: str) -> None:
    raw = compose(kind="auto_reply", message_id="m.1@example.test",
                  from_address="support@example.test", to=("jane@customer.example",),
                  subject="s", text=text, html=None, date=datetime(2026, 12, 1, tzinfo=UTC),
                  ticket_number=1).raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body = email.message_from_bytes(raw, policy=policy.default).get_body(("plain",))
    assert body is not None
    expected = text if text.endswith("\n") else text + "\n"
    assert body.get_content().replace("\r\n", "\n") == expected


header_values = st.text(st.sampled_from("ab Z09<>@.;=\"\t\n\r-é"), max_size=30)
body_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(headers=st.lists(st.tuples(st.sampled_from(["Subject", "References", "To", "X-Loop"]),
                                  header_values), max_size=5),
       text=body_text, html=st.none() | body_text)
def test_mail_without_attachments_is_written_directly_as_the_generator_writes_it(
        headers: list[tuple[str, str]], text: str, html: str | None) -> None:
    boundary = "=_mailbot_0123456789abcdef01234567"
    direct = compose_module.written_directly(headers, text, html, boundary)
    if direct is None:  # left to the generator: a header it must fold
        assert not all(compose_module._as_set(value) for _, value in headers)
    else:
        assert direct == compose_module.generated(headers, text, html, (), boundary)


def test_our_usual_mail_takes_the_direct_way(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: object) -> bytes:
        raise AssertionError("generator used")

    monkeypatch.setattr(compose_module, "generated", refused)
    mail = compose(**AUTO_REPLY)
    parsed = email.message_from_bytes(mail.raw, policy=policy.default)
    assert str(parsed["Subject"]) == "Re: Panne totale — caisse 3"
    assert str(parsed["From"]) == "Équipe Support <support@example.test>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Mailbot-Ticket"] == "7"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == \
        "Bonjour Zoë,\n\nVotre demande n° 7 est enregistrée.\n"
    assert html.get_content().replace("\r\n", "\n") == "<p>Bonjour</p>\n"


@pytest.mark.parametrize(("address", "domain"), [
    ("Example Support <support@example.test>", "example.test"),
    ("support@help.example.test", "help.example.test"),
    ("", "localhost"),
])
def test_domain_of_our_address_names_the_message_ids_domain(address: str, domain: str) -> None:
    assert domain_of(address) == domain
    assert domain_of(address) == domain  # the second answer is the kept one
