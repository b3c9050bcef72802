"""The rule engine: fields, tests, combinators, unless, most-severe-wins, the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from mailbot.config import DEFAULT_CUSTOMER_ID_PATTERNS
from mailbot.identify import (
    CustomerDirectory,
    CustomerMatch,
    CustomerRecord,
    CustomerSource,
    compile_patterns,
)
from mailbot.parsing import parse_message
from mailbot.rules import RuleEngine, load_rules, run_examples
from mailbot.rules.engine import MessageView, _check
from mailbot.rules.index import LEARN_TEXTS
from mailbot.rules.literals import required_alternatives, required_literals
from mailbot.rules.model import AllOf, AnyOf, FieldTest, NotOf

REPO = Path(__file__).resolve().parents[1]
NOBODY = CustomerMatch(None, CustomerSource.MISSING)


def engine_for(tmp_path: Path, text: str) -> RuleEngine:
    (tmp_path / "r.yaml").write_text(text)
    return RuleEngine(load_rules(tmp_path / "r.yaml"))


def mail(subject: str = "Hello", body: str = "Hi.", extra: str = "",
         sender: str = "jane@customer.example") -> bytes:
    return (f"From: Jane <{sender}>\r\nTo: support@example.com\r\nCc: boss@customer.example\r\n"
            f"Subject: {subject}\r\n{extra}\r\n{body}\r\n").encode()


def severity(engine: RuleEngine, raw: bytes, customer: CustomerMatch = NOBODY) -> str:
    return engine.classify(parse_message(raw), customer).severity


def test_every_shipped_example_gets_its_severity() -> None:
    """The rule set in rules/ classifies each of its example mails as documented."""
    engine = RuleEngine(load_rules(REPO / "rules"))
    results = run_examples(engine, compile_patterns(DEFAULT_CUSTOMER_ID_PATTERNS))
    assert len(results) >= 40
    assert [str(r) for r in results if not r.ok] == []


def test_contains_is_case_insensitive_and_unicode_folded(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "rules:\n  - {id: s, severity: P1, when: {body: "
                                  "{contains: 'STRASSE ausgefallen'}}}\n")
    assert severity(engine, mail(body="Die Straße   ausgefallen!")) == "P1"


def test_no_rule_matching_gives_the_default_severity(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "rules:\n  - {id: s, severity: P1, when: {subject: down}}\n")
    result = engine.classify(parse_message(mail()), NOBODY)
    assert (result.severity, result.hits) == ("P3", ())
    assert "default" in result.reason


def test_most_severe_hit_wins_and_every_hit_is_recorded(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, """rules:
  - {id: question, severity: P4, when: {subject: {matches: '\\?$'}}}
  - {id: outage, severity: P1, when: {subject: {contains: down}}}
  - {id: other-outage, severity: P1, when: {subject: {contains: site}}}
""")
    result = engine.classify(parse_message(mail("Why is the site down?")), NOBODY)
    assert result.severity == "P1"
    assert [h.rule_id for h in result.hits] == ["question", "outage", "other-outage"]
    assert result.reason.startswith("rule outage")


def test_unless_stops_a_rule(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, """rules:
  - id: outage
    severity: P1
    when: {subject: {contains: down}}
    unless: [{subject: {matches: '^re:'}}]
""")
    assert severity(engine, mail("Site down")) == "P1"
    assert severity(engine, mail("Re: Site down")) == "P3"


def test_matched_text_is_reported(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "rules:\n  - {id: o, severity: P1, when: {body: "
                                  "{matches: 'checkout \\w+ down'}}}\n")
    result = engine.classify(parse_message(mail(body="Our checkout went down at 9.")), NOBODY)
    assert result.hits[0].matched == "body matches 'checkout went down'"


def test_quoted_history_is_not_the_body(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "rules:\n  - {id: o, severity: P1, when: {body: "
                                  "{contains: outage}}}\n")
    reply = ("Thanks, all fine now.\r\n\r\nOn Mon, 23 Nov 2026 at 10:00, Support "
             "<s@example.com> wrote:\r\n> We are investigating the outage.\r\n")
    assert severity(engine, mail("Re: status", reply)) == "P3"


@pytest.mark.parametrize(("condition", "raw", "expected"), [
    ("{from_domain: {equals: customer.example}}", mail(), True),
    ("{from: {contains: 'jane <'}}", mail(), True),
    ("{cc: {contains: boss@}}", mail(), True),
    ("{to: {in: ['support@example.com', 'help@example.com']}}", mail(), True),
    ("{from: {equals: jane@customer.example}}", mail(), True),
    ("{from: {equals: jane}}", mail(), False),
    ("{header: {name: X-Priority, equals: '1'}}", mail(extra="X-Priority: 1\r\n"), True),
    ("{header: {name: X-Priority, exists: true}}", mail(), False),
    ("{has_attachments: false}", mail(), True),
    ("{size: {under: 1KB}}", mail(), True),
    ("{size: {over: 1KB}}", mail(), False),
    ("{customer_id: {exists: false}}", mail(), True),
])
def test_fields(tmp_path: Path, condition: str, raw: bytes, expected: bool) -> None:
    engine = engine_for(tmp_path, f"rules:\n  - {{id: t, severity: P1, when: {condition}}}\n")
    assert (severity(engine, raw) == "P1") is expected


def test_customer_plan_field(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "rules:\n  - {id: t, severity: P2, when: "
                                  "{customer_plan: {equals: extended}}}\n")
    record = CustomerRecord("RC-1", plan="extended")
    customer = CustomerMatch("RC-1", CustomerSource.DIRECTORY, "RC-1", record)
    assert severity(engine, mail(), customer) == "P2"
    assert CustomerDirectory([record]).by_id("rc-1") == record


def test_attachment_filename_and_type(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, """rules:
  - {id: logs, severity: P2, when: {attachment: {filename: {matches: '\\.log$'}}}}
  - {id: pdf, severity: P4, when: {attachment: {content_type: {equals: application/pdf}}}}
""")
    raw = (b"From: a@x.example\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee\r\n--b\r\nContent-Type: text/plain\r\n"
           b"Content-Disposition: attachment; filename=server.log\r\n\r\nx\r\n--b--\r\n")
    assert severity(engine, raw) == "P2"


def test_hostile_pattern_times_out_instead_of_stalling(tmp_path: Path) -> None:
    """A slow pattern on a hostile body is cut off and reported; classification goes on."""
    engine = engine_for(tmp_path, "rules:\n  - {id: slow, severity: P1, when: {body: "
                                  "{matches: '(\\w|\\w\\w)*\\d'}}}\n")
    verdict = engine.evaluate(parse_message(mail(body="x" * 5000)), NOBODY)
    assert verdict.classification.severity == "P3"
    assert verdict.timeouts and "slow" in verdict.timeouts[0]


def _leaf(hit: bool) -> FieldTest:
    """A test that holds exactly when `hit` (the test mail has no attachments)."""
    return FieldTest("has_attachments", "exists", flag=not hit)


leaves = st.builds(_leaf, st.booleans())
conditions = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4).map(lambda c: AllOf(tuple(c))),
        st.lists(children, min_size=1, max_size=4).map(lambda c: AnyOf(tuple(c))),
        children.map(NotOf)),
    max_leaves=12)


def _truth(condition: object) -> bool:
    if isinstance(condition, AllOf):
        return all(_truth(c) for c in condition.children)
    if isinstance(condition, AnyOf):
        return any(_truth(c) for c in condition.children)
    if isinstance(condition, NotOf):
        return not _truth(condition.child)
    assert isinstance(condition, FieldTest)
    return condition.flag is False


@given(conditions)
def test_combinators_follow_boolean_logic(condition: object) -> None:
    """all/any/not evaluate exactly as and/or/not over their leaves."""
    view = MessageView(parse_message(mail()), NOBODY)
    assert _check(condition, view, [], "p").held is _truth(condition)  # type: ignore[arg-type]


VOCABULARY = ["down", "outage", "Straße", "strasse", "export", "port", "invoice", "ﬁle", "file",
              "cafe\u0301", "café", "KAVORI-117", "kavori", "error", "e-42", "not"]
words = st.lists(st.sampled_from(VOCABULARY), min_size=0, max_size=12).map(" ".join)


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    lines = ["rules:"]
    for n in range(draw(st.integers(min_value=1, max_value=8))):
        field = draw(st.sampled_from(["subject", "body"]))
        a, b = draw(st.sampled_from(VOCABULARY)), draw(st.sampled_from(VOCABULARY))
        test = draw(st.sampled_from([
            f"{{contains: ['{a}', '{b}']}}",
            f"{{matches: '\\b{a}\\W+{b}'}}",
            f"{{matches: '{a}'}}",
            f"{{equals: '{a}'}}",
        ]))
        lines.append(f"  - {{id: r{n}, severity: P{n % 4 + 1}, when: {{{field}: {test}}}}}")
    return "\n".join(lines) + "\n"


@given(rule_files(), words, words)
def test_literal_index_never_changes_a_verdict(rules_text: str, subject: str, body: str) -> None:
    """The index only skips rules that cannot match: same hits as checking every rule."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "r.yaml").write_text(rules_text, encoding="utf-8")
        engine = RuleEngine(load_rules(Path(folder)))
    assert_index_agrees(engine, subject, body)


def assert_index_agrees(engine: RuleEngine, subject: str, body: str) -> None:
    message = parse_message(f"From: a@x.example\r\nSubject: {subject}\r\n"
                            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
                            .encode())
    indexed = engine.evaluate(message, NOBODY).classification
    reference = engine.evaluate(message, NOBODY, use_index=False).classification
    assert indexed == reference


@pytest.mark.parametrize(("pattern", "literals"), [
    (r"\bexport\s+\w+\s+invoice\b", (("export",), ("invoice",))),
    (r"checkout \w+ down", (("checkout ",), (" down",))),  # spaces count
    (r"outage|down", (("outage", "down"),)),   # one of the alternatives
    (r"colou?r matters", (("colo",), ("r matters",))),
    (r"(foo|bar)bazz\d+", (("foo", "bar"), ("bazz",))),
    (r"abc{0,2}de", ()),                       # optional characters break the run
    (r"[xyz]hello+", (("hell",),)),
    (r"^\s*(?:re|aw)\s*:", ()),                # too short to be worth indexing
    (r"(?<!not )\bdown\b", (("down",),)),     # lookarounds require nothing
    # the parser takes the common "s" out of the branches
    (r"(?:server|site) (?:is )?(?:down|offline)", (("erver", "ite"), ("down", "offline"))),
    (r"(?:server|x) down", ((" down",),)),      # a branch without a literal: no clause
    (r"(?:report|reports?) failed", (("report",), (" failed",))),  # implied clauses merge
    (r"straße", (("stra",),)),                 # only ASCII letters and digits count
    (r"\p{L}+ hello|", ()),                    # the fallback for the regex module's syntax
    (r"\p{Lu} hello", (("hello",),)),
])
def test_required_literals_are_what_every_match_contains(
        pattern: str, literals: tuple[tuple[str, ...], ...]) -> None:
    assert required_literals(pattern) == literals


_WORDS = ["down", "server", "site", "is", "offline", "outage", "no", "x"]
_patterns = st.recursive(
    st.sampled_from([*_WORDS, r"\s+", r"\w*", " ", "o?"]),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).map("".join),
        st.lists(inner, min_size=2, max_size=3).map(lambda b: "(?:" + "|".join(b) + ")"),
        inner.map(lambda p: f"(?:{p})?"),
        inner.map(lambda p: f"(?:{p})+"),
        inner.map(lambda p: f"(?<!not ){p}")),
    max_leaves=8)


@given(_patterns, st.lists(st.sampled_from([*_WORDS, " ", "  ", "Down", "SITE"]), max_size=10))
def test_a_text_without_a_required_literal_never_matches(pattern: str,
                                                         words: list[str]) -> None:
    text = "".join(words)
    if regex.search(pattern, text, regex.IGNORECASE | regex.VERSION0):
        folded = text.casefold()
        assert all(any(lit in folded for lit in clause)
                   for clause in required_literals(pattern)), (pattern, text)


@pytest.mark.parametrize(("pattern", "alternatives"), [
    # each branch keeps all it requires, where required_literals unites one clause of each
    (r"\b((?:nobody|everyone) (?:logs|signs) in|cannot log ?in at all)\b",
     ((("nobody", "everyone"), ("logs", "signs")), (("cannot log",), ("in at all",)))),
    (r"abc(?:x1y|z2w)def", ((("abc",), ("def",), ("x1y",)), (("abc",), ("def",), ("z2w",)))),
    (r"(?<!not )(?:server|site) is down", (((" is down",), ("erver",)),
                                          ((" is down",), ("ite",)))),
    (r"outage|x", ()),                         # a branch that requires nothing
    (r"(?:down|offline)+", ()),                # an alternation that may repeat
    (r"plain text", ()),                       # no alternation
])
def test_required_alternatives_keep_each_branch_whole(
        pattern: str, alternatives: tuple[tuple[tuple[str, ...], ...], ...]) -> None:
    assert required_alternatives(pattern) == alternatives


@given(_patterns, st.lists(st.sampled_from([*_WORDS, " ", "  ", "Down", "SITE"]), max_size=10))
def test_a_match_meets_the_requirement_of_one_alternative(pattern: str,
                                                          words: list[str]) -> None:
    text = "".join(words)
    alternatives = required_alternatives(pattern)
    if alternatives and regex.search(pattern, text, regex.IGNORECASE | regex.VERSION0):
        folded = text.casefold()
        assert any(all(any(lit in folded for lit in clause) for clause in requirement)
                   for requirement in alternatives), (pattern, text)


def _trained_engine() -> RuleEngine:
    """An engine whose index has settled that "error" and "down" are everyday words."""
    import tempfile
    rules = "\n".join(
        ["rules:"]
        + [f"  - {{id: c{n}, severity: P{n % 4 + 1}, when: {{body: {{contains: ['{word}']}}}}}}"
           for n, word in enumerate(VOCABULARY)]
        + [f"  - {{id: m{n}, severity: P{n % 4 + 1}, when: {{body: {{matches: '\\b{word}\\b'}}}}}}"
           for n, word in enumerate(VOCABULARY)]) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "r.yaml").write_text(rules, encoding="utf-8")
        engine = RuleEngine(load_rules(Path(folder)))
    noisy = parse_message(b"From: a@x.example\r\nSubject: s\r\n\r\n"
                          + b"error down export error down error down error down\r\n" * 2)
    for _ in range(LEARN_TEXTS):
        engine.classify(noisy, NOBODY)
    return engine


TRAINED = _trained_engine()


def test_the_index_learns_which_literals_are_everyday_words() -> None:
    assert set(TRAINED.index.frequent((("body", None), "fold"))) == {"error", "down"}
    assert set(TRAINED.index.frequent((("body", None), "case"))) == {"error", "down"}


@given(words)
def test_frequent_literals_found_the_same_as_enumerated_ones(body: str) -> None:
    """Once some literals are searched directly, the verdicts are still the reference's."""
    assert_index_agrees(TRAINED, "s", body)
