"""Boundary lines matched without a regex each match as the feedparser's own pattern does."""

from __future__ import annotations

import email
import email.feedparser
import re
from email import policy

from hypothesis import given
from hypothesis import strategies as st

from mailbot.parsing import parse_message
from mailbot.parsing.boundaries import BoundaryLine, boundary_line


def feedparser_pattern(separator: str) -> str:
    """The pattern `email.feedparser` compiles for a multipart's separator."""
    return ("(?P<sep>" + re.escape(separator) +
            r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")


def _groups(match: re.Match[str] | None) -> tuple[str | None, str | None, str | None] | None:
    return None if match is None else (match.group("end"), match.group("ws"),
                                       match.group("linesep"))


BOUNDARY_CHARACTERS = st.text(alphabet="ab=_.()+?*[]\\$^ -\t\r\n", min_size=1, max_size=12)


def test_the_standard_librarys_parser_gets_boundary_lines() -> None:
    compiled = email.feedparser.re.compile(feedparser_pattern("--b"))
    assert isinstance(compiled, BoundaryLine)
    assert email.feedparser.re.compile("a+").match("aa") is not None


@given(BOUNDARY_CHARACTERS, st.text(alphabet="ab- \t\r\n", max_size=12),
       st.text(alphabet="ab- \t\r\n", max_size=6))
def test_any_line_matches_as_with_the_full_pattern(boundary: str, tail: str,
                                                   head: str) -> None:
    separator = "--" + boundary
    full = re.compile(feedparser_pattern(separator))
    line = boundary_line(feedparser_pattern(separator))
    assert line is not None and line.separator == separator
    for text in (separator + tail, head + separator + tail, head + tail, separator[:-1]):
        assert _groups(line.match(text)) == _groups(full.match(text)), text


@given(BOUNDARY_CHARACTERS)
def test_other_questions_go_to_the_full_pattern(boundary: str) -> None:
    line = boundary_line(feedparser_pattern("--" + boundary))
    assert line is not None
    assert line.pattern == feedparser_pattern("--" + boundary)
    assert line.search("x--" + boundary) is not None


def test_other_patterns_are_compiled_as_they_are() -> None:
    after = feedparser_pattern("--b").removeprefix("(?P<sep>" + re.escape("--b"))
    assert boundary_line("(?P<sep>--b)") is None
    assert boundary_line("(?P<sep>" + re.escape("--b") + "\\" + after) is None
    assert boundary_line("(?P<sep>" + re.escape("--a") + "." + after) is None
    assert boundary_line("(?P<sep>" + re.escape("--a.b") + after) is not None


@given(st.sampled_from(["\r\n", "\n"]), st.sampled_from(["b", "=_Part.1+x", "(a b)?"]),
       st.text(alphabet="ab- \r\n", max_size=20))
def test_a_multipart_mail_parses_as_before(linesep: str, boundary: str, tail: str) -> None:
    body = f"text{tail}".replace("\r", "").replace("\n", linesep)
    raw = linesep.join([
        "MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"', "",
        "preamble", f"--{boundary}", "Content-Type: text/plain", "", body,
        f"--{boundary}  ", "Content-Type: text/plain", "", "second", f"--{boundary}--",
        "epilogue", ""]).encode()
    kept = email.feedparser.re
    try:
        email.feedparser.re = re  # type: ignore[attr-defined]
        expected = email.message_from_bytes(raw, policy=policy.compat32)
        expected_parsed = parse_message(raw)
    finally:
        email.feedparser.re = kept  # type: ignore[attr-defined]
    message = email.message_from_bytes(raw, policy=policy.compat32)
    assert [p.get_payload() for p in message.walk()][1:] == \
        [p.get_payload() for p in expected.walk()][1:]
    assert (message.preamble, message.epilogue) == (expected.preamble, expected.epilogue)
    assert [type(d) for d in message.defects] == [type(d) for d in expected.defects]
    assert parse_message(raw) == expected_parsed
