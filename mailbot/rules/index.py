"""A literal index over a rule set: one automaton pass per field tells which rules can match.

`contains` needles are looked up in folded text (the test's own semantics); the literals a
regex requires are looked up in case-folded text, so a rule is skipped only when it
certainly cannot match.

Enumerating every occurrence costs time per occurrence, and a literal that is an everyday
word occurs dozens of times in a mail. So each field's scanner watches the first texts it
sees; literals that turn up in most of them, many times over, leave the automaton and are
tested with a plain substring search, which stops at the first occurrence. Either way the
set of literals found is the same: only the cost changes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick, Implementation, MatchKind

from mailbot.rules.literals import selectivity
from mailbot.rules.model import AllOf, AnyOf, Condition, FieldTest, NotOf, Rule

FieldKey = tuple[str, str | None]  # (field, header name or attachment key)
Mode = str  # "fold" for contains/equals/in, "case" for regex literals
IndexKey = tuple[FieldKey, Mode]
Trigger = list[tuple[IndexKey, str]]

INDEXED_FIELDS = ("subject", "body", "from", "from_domain", "to", "cc", "header",
                  "attachment", "customer_id", "customer_plan")


LEARN_TEXTS = 200  # texts a scanner watches before it settles which literals are frequent
FREQUENT_SHARE = 0.5  # found in at least this share of the texts watched...
FREQUENT_OCCURRENCES = 4.0  # ...and this many times in each, on average


@dataclass(frozen=True)
class _Scan:
    """The automaton for the literals enumerated, and the frequent ones searched directly."""

    automaton: AhoCorasick | None
    frequent: tuple[str, ...]


class _Scanner:
    """Finds a field's literals in its texts, learning once which literals are frequent."""

    def __init__(self, entries: dict[str, set[int]]) -> None:
        self.literals = tuple(entries)
        self.rules_by_literal = {k: tuple(sorted(v)) for k, v in entries.items() if v}
        self._scan = _Scan(_automaton(self.literals), ())
        self._lock = threading.Lock()
        self._texts = 0
        self._present: Counter[str] = Counter()
        self._occurrences: Counter[str] = Counter()

    def found(self, texts: Sequence[str]) -> set[str]:
        scan = self._scan
        hits: set[str] = set()
        learning = self._texts < LEARN_TEXTS
        for text in texts:
            if scan.automaton is not None:
                occurrences = scan.automaton.find_matches_as_strings(text, overlapping=True)
                if learning:
                    self._learn(occurrences)
                hits.update(occurrences)
            hits.update(literal for literal in scan.frequent if literal in text)
        return hits

    def _learn(self, occurrences: list[str]) -> None:
        with self._lock:
            if self._texts >= LEARN_TEXTS:
                return
            self._texts += 1
            self._occurrences.update(occurrences)
            self._present.update(set(occurrences))
            if self._texts == LEARN_TEXTS:
                self._settle()

    def _settle(self) -> None:
        frequent = tuple(
            literal for literal, present in self._present.items()
            if present >= FREQUENT_SHARE * self._texts
            and self._occurrences[literal] >= FREQUENT_OCCURRENCES * present)
        if frequent:
            chosen = set(frequent)
            rest = tuple(literal for literal in self.literals if literal not in chosen)
            self._scan = _Scan(_automaton(rest), frequent)
        self._present.clear()
        self._occurrences.clear()


class RuleIndex:
    """Which rules to evaluate for a message: the unindexable ones, plus those triggered."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        literals: dict[IndexKey, dict[str, set[int]]] = {}
        always: list[int] = []
        for position, rule in enumerate(rules):
            for test in _tests(rule):
                for key, literal in _lookups(test):
                    literals.setdefault(key, {}).setdefault(literal, set())
            trigger = _trigger(rule.when)
            if trigger is None:
                always.append(position)
                continue
            for key, literal in trigger:
                literals.setdefault(key, {}).setdefault(literal, set()).add(position)
        self.always = tuple(always)
        self._scanners = {key: _Scanner(entries) for key, entries in literals.items()}

    @property
    def keys(self) -> Iterable[IndexKey]:
        return self._scanners.keys()

    def found(self, key: IndexKey, texts: Sequence[str]) -> frozenset[str]:
        """Every indexed literal of this field and mode that occurs in the given texts."""
        scanner = self._scanners.get(key)
        if scanner is None:
            return frozenset()
        return frozenset(scanner.found(texts))

    def frequent(self, key: IndexKey) -> tuple[str, ...]:
        """The literals of this field searched directly rather than enumerated."""
        scanner = self._scanners.get(key)
        return scanner._scan.frequent if scanner is not None else ()

    def triggered(self, key: IndexKey, found: frozenset[str]) -> set[int]:
        scanner = self._scanners.get(key)
        if scanner is None:
            return set()
        rules: set[int] = set()
        for literal in found:
            rules.update(scanner.rules_by_literal.get(literal, ()))
        return rules


def _automaton(literals: Sequence[str]) -> AhoCorasick | None:
    if not literals:
        return None
    return AhoCorasick(literals, matchkind=MatchKind.Standard, implementation=Implementation.DFA)


def _tests(rule: Rule) -> Iterable[FieldTest]:
    stack: list[Condition] = [rule.when, *rule.unless]
    while stack:
        condition = stack.pop()
        if isinstance(condition, FieldTest):
            yield condition
        elif isinstance(condition, AllOf | AnyOf):
            stack.extend(condition.children)
        elif isinstance(condition, NotOf):
            stack.append(condition.child)


def _lookups(test: FieldTest) -> Trigger:
    """The (index, literal) pairs this test reads from the index."""
    if test.field not in INDEXED_FIELDS:
        return []
    key: FieldKey = (test.field, test.part)
    if test.operator in ("contains", "equals", "in"):
        return [((key, "fold"), needle) for needle in test.folded if needle]
    if test.operator == "matches":
        requirements = (test.literals, *test.alternatives)
        return list(dict.fromkeys(((key, "case"), literal) for requirement in requirements
                                  for clause in requirement for literal in clause))
    return []


def _trigger(condition: Condition) -> Trigger | None:
    """Literals at least one of which must occur for the condition to hold; None if unknown."""
    if isinstance(condition, FieldTest):
        if condition.operator == "matches":
            return _regex_trigger(condition)
        lookups = _lookups(condition)
        return lookups or None
    if isinstance(condition, AllOf):
        options = [t for t in (_trigger(c) for c in condition.children) if t is not None]
        return min(options, key=len) if options else None
    if isinstance(condition, AnyOf):
        parts = [_trigger(c) for c in condition.children]
        if any(p is None for p in parts):
            return None
        return [item for part in parts if part is not None for item in part]
    assert isinstance(condition, NotOf)
    return None


def _regex_trigger(test: FieldTest) -> Trigger | None:
    """The most selective clause of a regex's requirement: its shortest literal is longest."""
    if test.field not in INDEXED_FIELDS or not test.literals:
        return None
    clause = max(test.literals, key=selectivity)
    key: IndexKey = ((test.field, test.part), "case")
    return [(key, literal) for literal in clause]
