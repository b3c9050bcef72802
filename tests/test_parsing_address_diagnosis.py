"""mail-parser's address diagnoses, kept for recurring values, are the ones it gives."""

from __future__ import annotations

from typing import Any

import mailparser.core
from hypothesis import given
from hypothesis import strategies as st
from mailparser.utils import get_addresses

from mailbot.parsing import parse_message
from mailbot.parsing.address_diagnosis import kept_diagnosis

BROKEN_FROM = "Jane Doe jane@customer.example, <>, \"unterminated <x@y"


def _answer(value: str, *, kept: bool) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    defects: list[dict[str, Any]] = []
    diagnose = kept_diagnosis if kept else get_addresses
    return diagnose(value, defects=defects, decode_names=True), defects


def test_mail_parsers_pass_diagnoses_through_the_kept_answers() -> None:
    assert mailparser.core.get_addresses is kept_diagnosis


def test_a_recovered_header_is_reported_every_time_it_comes() -> None:
    mail = (f"From: {BROKEN_FROM}\r\nTo: support@example.test\r\nSubject: x\r\n\r\nbody\r\n"
            ).encode()
    first, again = parse_message(mail), parse_message(mail)
    assert "AddressHeaderDefect" in first.defects
    assert first == again


def test_what_a_caller_does_to_an_answer_does_not_change_the_next_one() -> None:
    addresses, defects = _answer(BROKEN_FROM, kept=True)
    assert defects, "mail-parser reports what it recovered in this value"
    expected = _answer(BROKEN_FROM, kept=False)
    addresses.clear()
    for defect in defects:
        defect.update(header="from", occurrence=0)  # as mail-parser's pass does
    assert _answer(BROKEN_FROM, kept=True) == expected


_NAME = st.text(alphabet="abc XYZ,.\"'()<>@=?;:\\", max_size=12)
_MAILBOX = st.one_of(
    st.builds(lambda n, local, d: f"{n} <{local}@{d}>", _NAME, st.sampled_from(["jane", "a.b", ""]),
              st.sampled_from(["example.test", "x", ""])),
    st.builds(lambda n: f"=?utf-8?q?{n}?= <j@example.test>", st.sampled_from(["J=C3=A9", "x_y"])),
    _NAME)


@given(st.lists(_MAILBOX, min_size=1, max_size=4), st.booleans(), st.integers(1, 3))
def test_any_header_gets_mail_parsers_own_answer(mailboxes: list[str], decode: bool,
                                                 times: int) -> None:
    value = ", ".join(mailboxes)
    expected_defects: list[dict[str, Any]] = []
    expected = get_addresses(value, defects=expected_defects, decode_names=decode)
    for _ in range(times):
        defects: list[dict[str, Any]] = []
        assert kept_diagnosis(value, defects=defects, decode_names=decode) == expected
        assert defects == expected_defects
