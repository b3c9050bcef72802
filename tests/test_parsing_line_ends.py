"""The MIME parser's last-line-break search, from the end, finds what the full search finds."""

from __future__ import annotations

import email
import email.feedparser
import re
from email import policy

from hypothesis import given
from hypothesis import strategies as st

from mailbot.parsing import parse_message
from mailbot.parsing.line_ends import LineBreakAtEnd

FULL_SEARCH = re.compile(r"(\r\n|\r|\n)\Z")


def _found(match: re.Match[str] | None) -> tuple[int, int, str] | None:
    return None if match is None else (match.start(), match.end(), match.group(0))


def test_the_standard_librarys_parser_searches_from_the_end() -> None:
    assert isinstance(email.feedparser.NLCRE_eol, LineBreakAtEnd)


@given(st.text(alphabet="ab\r\n \t-", max_size=40), st.integers(0, 45), st.integers(0, 45))
def test_any_text_gets_the_full_searchs_match(text: str, pos: int, endpos: int) -> None:
    searched = LineBreakAtEnd()
    assert _found(searched.search(text)) == _found(FULL_SEARCH.search(text))
    assert _found(searched.search(text, pos)) == _found(FULL_SEARCH.search(text, pos))
    assert _found(searched.search(text, pos, endpos)) == _found(
        FULL_SEARCH.search(text, pos, endpos))


@given(st.sampled_from(["\r\n", "\n", "\r"]), st.text(alphabet="ab \r\n", max_size=30))
def test_a_multipart_mail_parses_as_before(linesep: str, tail: str) -> None:
    body = f"text{tail}".replace("\r", "").replace("\n", linesep)
    raw = linesep.join([
        "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b"', "", "--b",
        "Content-Type: text/plain", "", body, "--b", "Content-Type: text/plain", "", "second",
        "", "--b--", "epilogue", ""]).encode()
    kept = email.feedparser.NLCRE_eol
    try:
        email.feedparser.NLCRE_eol = FULL_SEARCH
        expected = email.message_from_bytes(raw, policy=policy.compat32)
        expected_parsed = parse_message(raw)
    finally:
        email.feedparser.NLCRE_eol = kept
    message = email.message_from_bytes(raw, policy=policy.compat32)
    assert [p.get_payload() for p in message.walk()][1:] == \
        [p.get_payload() for p in expected.walk()][1:]
    assert message.epilogue == expected.epilogue
    assert parse_message(raw) == expected_parsed
