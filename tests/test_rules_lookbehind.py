"""A pattern opening with a lookbehind, searched from where its rest matches: same match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from mailbot.rules.lookbehind import rest_after_lookbehind, search

REPO = Path(__file__).resolve().parents[1]
FLAGS = regex.IGNORECASE | regex.VERSION0


@pytest.mark.parametrize(("pattern", "rest"), [
    (r"(?<!not\s+)\b(down|outage)\b", r"\b(down|outage)\b"),
    (r"(?<=ticket )#\d+", r"#\d+"),
    (r"(?<![)(])x", "x"),           # parentheses in a set are members
    (r"(?<![]a])y", "y"),           # so is a ] opening a set
    (r"(?<!\()z", "z"),             # and an escaped one
    (r"(?<!a)b|c", None),          # the lookbehind guards only the first alternative
    (r"(?<!(a))(b)\2", None),      # group numbers would change: no backreferences
    (r"(?<!a)(?P<w>b)", None),     # nor named groups
    (r"(?<!a)(b)(?(1)c|d)", None),  # nor conditionals
    (r"\bdown\b", None),           # no lookbehind
    (r"(?<!a)", None),             # nothing after the lookbehind
    (r"(?<!unclosed", None),
])
def test_what_is_searched_from_its_rest(pattern: str, rest: str | None) -> None:
    assert rest_after_lookbehind(pattern) == rest


def shipped_patterns() -> list[str]:
    text = "".join(path.read_text() for path in sorted((REPO / "rules").glob("*.yaml")))
    found = [p.replace("''", "'") for p in re.findall(r"matches: '((?:[^']|'')*)'", text)]
    return [p for p in found if rest_after_lookbehind(p) is not None]


SHIPPED = shipped_patterns()
WORDS = sorted({w for p in SHIPPED for w in re.findall(r"[a-z]{2,}", p)}
               | {"not", "no", "longer", "never", "isn't", "the", "our", "is", "totally"})
texts = st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join) | st.lists(
    st.sampled_from([*WORDS, " ", "\n", ".", ",", "  ", "-"]), max_size=60).map("".join)


def test_the_shipped_rules_have_lookbehinds_to_move() -> None:
    assert len(SHIPPED) >= 5


def assert_same_matches(pattern: str, text: str) -> None:
    rest = rest_after_lookbehind(pattern)
    assert rest is not None
    whole, candidates = regex.compile(pattern, FLAGS), regex.compile(rest, FLAGS)
    expected = whole.search(text)
    found = search(whole, candidates, text, timeout=1.0)
    assert (found and (found.span(), found.group(0))) == \
        (expected and (expected.span(), expected.group(0)))


def test_a_search_from_candidates_keeps_its_time_limit() -> None:
    """200,000 candidates, each refused by the lookbehind: the limit is for the whole search."""
    whole = regex.compile(r"(?<!x)a", FLAGS)
    text = "xa" * 200_000
    assert search(whole, regex.compile("a", FLAGS), text + "a", timeout=30.0) is not None
    with pytest.raises(TimeoutError):
        search(whole, regex.compile("a", FLAGS), text, timeout=0.001)


@given(pattern=st.sampled_from(SHIPPED), text=texts)
def test_the_shipped_patterns_match_the_same_after_rewriting(pattern: str, text: str) -> None:
    assert_same_matches(pattern, text)


@given(negation=st.sampled_from(["not", "no|never", "isn.t"]),
       words=st.integers(0, 3),
       kind=st.sampled_from(["!", "="]),
       alternatives=st.lists(st.sampled_from(["down", "outage", "out age", "broken", "is down"]),
                             min_size=1, max_size=3),
       text=st.lists(st.sampled_from(["not", "no", "never", "isn't", "down", "outage", "out",
                                      "age", "is", "broken", "all", " ", "  ", "\n"]),
                     max_size=25).map(" ".join))
def test_generated_patterns_match_the_same_after_rewriting(
        negation: str, words: int, kind: str, alternatives: list[str], text: str) -> None:
    pattern = (rf"(?<{kind}\b(?:{negation})\s+(?:\w+\s+){{0,{words}}})"
               rf"\b({'|'.join(alternatives)})\b")
    assert_same_matches(pattern, text)
