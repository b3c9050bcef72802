"""What the sender wrote: the newest reply is the one mail-parser-reply finds, sooner."""

from __future__ import annotations

import re

import pytest
from conftest import CORPUS, REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from mailparser_reply import EmailReplyParser

from mailbot.parsing import MessageParseError, parse_message
from mailbot.parsing.visible import (
    _LANGUAGES,
    _OPENS_A_LINE,
    _opens_a_line,
    latest_reply,
    sre_parse,
    visible_text,
)

LIBRARY = EmailReplyParser(languages=list(_LANGUAGES))

LINES = st.sampled_from([
    "Hello, the export is broken again.",
    "Thanks!",
    "",
    "   ",
    "> quoted line",
    ">> twice quoted",
    "On Mon, 3 Jun 2024 at 10:00, Support <support@example.test> wrote:",
    "On Mon, 3 Jun 2024 at 10:00, Support",
    "<support@example.test> wrote:",
    "> On Tue, 4 Jun 2024, Ann wrote:",
    "Am 03.06.2024 um 10:00 schrieb Support <support@example.test>:",
    "Le lun. 3 juin 2024 à 10:00, Support a écrit :",
    "El lun, 3 jun 2024 a las 10:00, Support escribió:",
    "Il giorno lun 3 giu 2024, Support ha scritto:",
    "Op ma 3 jun 2024 om 10:00 schreef Support:",
    "From: Support <support@example.test>",
    "Sent: Monday, June 3, 2024 10:00 AM",
    "To: Ann <ann@example.test>",
    "Subject: RE: Ticket #42",
    "Von: Support",
    "Gesendet: Montag, 3. Juni 2024",
    "-----Original Message-----",
    "________________________________",
    "-- ",
    "Best regards,",
    "Sent from my iPhone",
    "Customer ID: RC-10442",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, max_size=25), st.sampled_from(["\n", "\r\n"]))
def test_the_newest_reply_is_the_one_the_library_finds(lines: list[str], end: str) -> None:
    text = end.join(lines)
    assert latest_reply(text) == LIBRARY.parse_reply(text=text)


def test_the_newest_reply_of_every_corpus_and_example_mail_is_the_librarys() -> None:
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".eml", ".txt", "")]
    files += sorted((REPO / "rules" / "examples").glob("*.eml"))
    compared = 0
    for path in files:
        try:
            body = parse_message(path.read_bytes()).body_text
        except MessageParseError:
            continue
        assert latest_reply(body) == LIBRARY.parse_reply(text=body), path
        compared += 1
    assert compared >= 100


def test_a_reply_above_a_long_history_keeps_only_the_reply() -> None:
    history = "\n".join(f"> line {n} of what was said before" for n in range(2000))
    text = ("The export works now, thank you.\n\nOn Mon, 3 Jun 2024, Support "
            "<support@example.test> wrote:\n" + history)
    assert latest_reply(text) == "The export works now, thank you."
    assert visible_text(text) == "The export works now, thank you."


def test_the_shipped_languages_headers_all_begin_at_a_line() -> None:
    # Otherwise every search would try every character again (correct, but slower).
    assert _OPENS_A_LINE


@pytest.mark.parametrize(("pattern", "opens"), [
    (r"^a|\nb", True),
    (r"(?:^|\n)+x", True),
    (r"(?!x)^y", True),
    (r"((?:(?:^|\n|\n(?:> ?)*)From:.*){2,})", True),
    (r"a|^b", False),
    (r"(?:^|\n)*x", False),
    (r"x?^y", False),
    (r"\bOn\b", False),
])
def test_a_pattern_opens_a_line_only_when_every_branch_must(pattern: str, opens: bool) -> None:
    assert _opens_a_line(sre_parse.parse(pattern, re.MULTILINE)) is opens
