"""A MIME part that keeps its parsed header parameters answers as the standard library does."""

from __future__ import annotations

import email
from email import policy
from email.message import Message

from hypothesis import given
from hypothesis import strategies as st

from mailbot.parsing.tree import TreePart

MAIL = (b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain; charset=\"ISO-8859-1\"; format=flowed\r\n\r\n"
        b"caf\xe9\r\n"
        b"--b1\r\nContent-Type: application/pdf; name=\"r\xc3\xa9sum\xc3\xa9.pdf\"\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n")


def _answers(message: Message) -> list[object]:
    return [(part.get_content_type(), part.get_content_charset(), part.get_filename(),
             part.get_boundary(), part.get_params(), part.get_params(unquote=False),
             part.get_param("format"), part.get_param("filename", header="content-disposition"))
            for part in message.walk()]


def test_a_parsed_tree_answers_as_the_standard_librarys() -> None:
    kept = email.message_from_bytes(MAIL, _class=TreePart, policy=policy.compat32)
    plain = email.message_from_bytes(MAIL, policy=policy.compat32)
    assert all(isinstance(part, TreePart) for part in kept.walk())
    assert _answers(kept) == _answers(plain)
    assert _answers(kept) == _answers(plain)  # asked again: from what was kept


def test_a_changed_header_is_parsed_afresh() -> None:
    part = email.message_from_bytes(MAIL, _class=TreePart, policy=policy.compat32)
    text = part.get_payload()[0]
    assert text.get_content_charset() == "iso-8859-1"
    text.replace_header("Content-Type", "text/plain; charset=utf-8")
    assert text.get_content_charset() == "utf-8"
    text.set_param("charset", "koi8-r")
    assert text.get_content_charset() == "koi8-r"
    del text["Content-Type"]
    assert text.get_content_charset() is None
    assert text.get_params() is None


def test_what_a_caller_does_to_an_answer_does_not_change_the_next_one() -> None:
    part = email.message_from_bytes(MAIL, _class=TreePart, policy=policy.compat32)
    params = part.get_params(unquote=False)
    assert params is not None
    params.clear()
    assert part.get_params(unquote=False) == [("multipart/mixed", ""), ("boundary", '"b1"')]


_TOKEN = st.text(alphabet="abcXYZ09-_.", min_size=1, max_size=8)
_VALUE = st.one_of(_TOKEN, _TOKEN.map(lambda t: f'"{t}; {t}"'),
                   _TOKEN.map(lambda t: f"UTF-8''{t}%C3%A9"))


@given(st.lists(st.tuples(_TOKEN, _VALUE), max_size=5), st.booleans())
def test_any_parameter_list_reads_the_same(params: list[tuple[str, str]], star: bool) -> None:
    header = "text/plain" + "".join(
        f"; {name}{'*' if star and value.startswith('UTF-8') else ''}={value}"
        for name, value in params)
    raw = f"Content-Type: {header}\r\n\r\nbody\r\n".encode()
    kept = email.message_from_bytes(raw, _class=TreePart, policy=policy.compat32)
    plain = email.message_from_bytes(raw, policy=policy.compat32)
    assert _answers(kept) == _answers(plain)
    for name, _ in params:
        assert kept.get_param(name) == plain.get_param(name)
