"""Dataclasses pickled as their constructor's arguments come back equal, or are refused."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest

from mailbot.parsing import parse_message
from mailbot.pickled import pickled_by_fields


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class One:
    value: tuple[str, ...]


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Two:
    name: str
    inner: One | None = None


def test_one_and_several_fields_come_back_equal() -> None:
    for original in (One(("a", "b")), Two("x", One(())), Two("y")):
        assert pickle.loads(pickle.dumps(original)) == original


def test_a_parsed_message_with_a_file_comes_back_equal() -> None:
    raw = (b"From: Jane <jane@customer.example>\r\nTo: support@example.test\r\n"
           b"Subject: screenshot\r\nMessage-ID: <p@customer.example>\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: text/plain\r\n\r\nSee attached.\r\n--XX\r\n"
           b"Content-Type: image/png; name=shot.png\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--XX--\r\n")
    message = parse_message(raw)
    assert message.attachments and message.from_ is not None
    assert pickle.loads(pickle.dumps(message)) == message


def test_a_field_outside_the_constructor_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Derived:
        name: str
        length: int = field(init=False, default=0)

    with pytest.raises(TypeError, match="every field must be an __init__ argument"):
        pickled_by_fields(Derived)
