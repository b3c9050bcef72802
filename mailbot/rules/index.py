"""A literal index over a rule set: one automaton pass per field tells which rules can match.

`contains` needles are looked up in folded text (the test's own semantics); the literals a
regex requires are looked up in case-folded text, so a rule is skipped only when it
certainly cannot match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

import ahocorasick

from mailbot.rules.model import AllOf, AnyOf, Condition, FieldTest, NotOf, Rule

FieldKey = tuple[str, str | None]  # (field, header name or attachment key)
Mode = str  # "fold" for contains/equals/in, "case" for regex literals
IndexKey = tuple[FieldKey, Mode]
Trigger = list[tuple[IndexKey, str]]

_literal = itemgetter(1)

INDEXED_FIELDS = ("subject", "body", "from", "from_domain", "to", "cc", "header",
                  "attachment", "customer_id", "customer_plan")


@dataclass(frozen=True)
class _Automaton:
    automaton: ahocorasick.Automaton
    rules_by_literal: dict[str, tuple[int, ...]]


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
        self._automata = {key: _build(entries) for key, entries in literals.items()}

    @property
    def keys(self) -> Iterable[IndexKey]:
        return self._automata.keys()

    def found(self, key: IndexKey, texts: Sequence[str]) -> frozenset[str]:
        """Every indexed literal of this field and mode that occurs in the given texts."""
        entry = self._automata.get(key)
        if entry is None:
            return frozenset()
        hits: set[str] = set()
        for text in texts:
            hits.update(map(_literal, entry.automaton.iter(text)))
        return frozenset(hits)

    def triggered(self, key: IndexKey, found: frozenset[str]) -> set[int]:
        entry = self._automata.get(key)
        if entry is None:
            return set()
        rules: set[int] = set()
        for literal in found:
            rules.update(entry.rules_by_literal.get(literal, ()))
        return rules


def _build(entries: dict[str, set[int]]) -> _Automaton:
    automaton = ahocorasick.Automaton()
    for literal in entries:
        automaton.add_word(literal, literal)
    if entries:
        automaton.make_automaton()
    return _Automaton(automaton, {k: tuple(sorted(v)) for k, v in entries.items() if v})


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
        return [((key, "case"), literal) for literal in test.literals]
    return []


def _trigger(condition: Condition) -> Trigger | None:
    """Literals at least one of which must occur for the condition to hold; None if unknown."""
    if isinstance(condition, FieldTest):
        lookups = _lookups(condition)
        if not lookups:
            return None
        if condition.operator == "matches":
            return [max(lookups, key=lambda item: len(item[1]))]
        return lookups
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
