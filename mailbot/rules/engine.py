"""Evaluating a rule set on a message: every hit recorded with what matched; most severe wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailbot.identify import CustomerMatch
from mailbot.parsing import ParsedMessage
from mailbot.parsing.visible import visible_text
from mailbot.pipeline import Classification, RuleHit
from mailbot.rules.index import IndexKey, RuleIndex
from mailbot.rules.lookbehind import search
from mailbot.rules.model import AllOf, AnyOf, Condition, FieldTest, NotOf, Rule, RuleSet
from mailbot.rules.text import fold

SEVERITY_ORDER = {"P1": 0, "P2": 1, "P3": 2, "P4": 3}
REGEX_TIMEOUT_S = 0.05
SNIPPET = 80


class MessageView:
    """The values rules read from one message, computed once and only when asked for."""

    def __init__(self, message: ParsedMessage, customer: CustomerMatch,
                 index: RuleIndex | None = None) -> None:
        self.message = message
        self.customer = customer
        self.index = index
        self._cache: dict[tuple[str, str | None], tuple[str, ...]] = {}
        self._found: dict[IndexKey, frozenset[str]] = {}

    def values(self, name: str, part: str | None = None) -> tuple[str, ...]:
        key = (name, part)
        if key not in self._cache:
            self._cache[key] = self._compute(name, part)
        return self._cache[key]

    def _compute(self, name: str, part: str | None) -> tuple[str, ...]:
        m = self.message
        getters: dict[str, Callable[[], tuple[str, ...]]] = {
            "subject": lambda: (m.subject,),
            "body": lambda: (visible_text(m.body_text),),
            "from": lambda: (str(m.from_),) if m.from_ else (),
            "from_domain": lambda: (m.from_.domain,) if m.from_ else (),
            "to": lambda: tuple(str(a) for a in m.to),
            "cc": lambda: tuple(str(a) for a in m.cc),
            "header": lambda: m.headers.get(part or "", ()),
            "attachment": lambda: tuple(
                (a.filename if part == "filename" else a.content_type) for a in m.attachments),
            "customer_id": lambda: ((self.customer.customer_id,)
                                    if self.customer.customer_id else ()),
            "customer_plan": lambda: ((self.customer.customer.plan,)
                                      if self.customer.customer and self.customer.customer.plan
                                      else ()),
        }
        return getters[name]()

    def folded(self, name: str, part: str | None = None) -> tuple[str, ...]:
        return tuple(fold(v) for v in self.values(name, part))

    def found(self, key: IndexKey) -> frozenset[str]:
        """The index's literals present in this field: folded for needles, case-folded for regex."""
        if key not in self._found:
            (name, part), mode = key
            texts = (self.folded(name, part) if mode == "fold"
                     else tuple(v.casefold() for v in self.values(name, part)))
            assert self.index is not None
            self._found[key] = self.index.found(key, texts)
        return self._found[key]

    def addresses(self, name: str) -> tuple[str, ...]:
        """The bare addresses of From, To or Cc, for equals and in."""
        m = self.message
        found = {"from": (m.from_,) if m.from_ else (), "to": m.to, "cc": m.cc}[name]
        return tuple(a.email for a in found)


@dataclass
class Evaluation:
    """What one condition saw: whether it held and the evidence for it."""

    held: bool
    evidence: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """The outcome for one message: the classification and any pattern that ran out of time."""

    classification: Classification
    timeouts: list[str] = field(default_factory=list)


class RuleEngine:
    """Classifies messages with one rule set; safe to share, holds no per-message state."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.index = RuleIndex(rules.rules)

    def __reduce__(self) -> tuple[type[RuleEngine], tuple[RuleSet]]:
        """Pickled as its rules; the index is built again where it is unpickled."""
        return (RuleEngine, (self.rules,))

    def candidates(self, view: MessageView) -> list[int]:
        """Positions of the rules that can match this message, in rule order."""
        positions = set(self.index.always)
        for key in self.index.keys:
            positions |= self.index.triggered(key, view.found(key))
        return sorted(positions)

    def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification:
        return self.evaluate(message, customer).classification

    def evaluate(self, message: ParsedMessage, customer: CustomerMatch, *,
                 use_index: bool = True) -> Verdict:
        """Classify; `use_index=False` checks every rule (the reference the index must equal)."""
        view = MessageView(message, customer, self.index if use_index else None)
        timeouts: list[str] = []
        hits: list[tuple[Rule, str]] = []
        positions = (self.candidates(view) if use_index
                     else range(len(self.rules.rules)))
        for position in positions:
            rule = self.rules.rules[position]
            outcome = _check(rule.when, view, timeouts, rule.id)
            if not outcome.held:
                continue
            if any(_check(u, view, timeouts, rule.id).held for u in rule.unless):
                continue
            hits.append((rule, "; ".join(outcome.evidence)))
        return Verdict(_classification(hits, self.rules.default_severity), timeouts)


def _classification(hits: Sequence[tuple[Rule, str]], default: str) -> Classification:
    rule_hits = tuple(RuleHit(r.id, r.severity, evidence) for r, evidence in hits)
    tags = tuple(dict.fromkeys(t for r, _ in hits for t in r.tags))
    if not hits:
        return Classification(default, (), (), f"no rule matched: default severity {default}")
    winner, _ = min(hits, key=lambda h: SEVERITY_ORDER[h[0].severity])
    return Classification(winner.severity, rule_hits, tags,
                          f"rule {winner.id} ({winner.severity})"
                          + (f": {winner.description}" if winner.description else ""))


def _check(condition: Condition, view: MessageView, timeouts: list[str],
           rule_id: str) -> Evaluation:
    if isinstance(condition, FieldTest):
        return _test(condition, view, timeouts, rule_id)
    if isinstance(condition, AllOf):
        evidence: list[str] = []
        for child in condition.children:
            result = _check(child, view, timeouts, rule_id)
            if not result.held:
                return Evaluation(False)
            evidence += result.evidence
        return Evaluation(True, evidence)
    if isinstance(condition, AnyOf):
        for child in condition.children:
            result = _check(child, view, timeouts, rule_id)
            if result.held:
                return result
        return Evaluation(False)
    assert isinstance(condition, NotOf)
    inner = _check(condition.child, view, timeouts, rule_id)
    return Evaluation(not inner.held, [] if inner.held else ["not: " + _describe_not(condition)])


def _describe_not(condition: NotOf) -> str:
    child = condition.child
    if isinstance(child, FieldTest):
        return f"{_label(child)} {child.operator} {', '.join(child.needles)[:SNIPPET]}"
    return "condition"


def _label(test: FieldTest) -> str:
    return f"{test.field}[{test.part}]" if test.part else test.field


def _test(test: FieldTest, view: MessageView, timeouts: list[str], rule_id: str) -> Evaluation:
    label = _label(test)
    if test.field == "has_attachments":
        has = bool(view.message.attachments)
        return Evaluation(has == test.flag, [f"has_attachments: {str(has).lower()}"])
    if test.field == "size":
        size = view.message.size
        assert test.number is not None
        held = size > test.number if test.operator == "over" else size < test.number
        return Evaluation(held, [f"size {size:,} bytes {test.operator} {test.number:,}"])
    if test.operator == "exists":
        present = bool(view.values(test.field, test.part))
        return Evaluation(present == test.flag, [f"{label} exists: {str(present).lower()}"])
    if test.operator == "matches":
        assert test.pattern is not None
        if view.index is not None and (test.literals or test.alternatives):
            found = view.found(((test.field, test.part), "case"))
            if any(found.isdisjoint(clause) for clause in test.literals):
                return Evaluation(False)
            if test.alternatives and not any(
                    all(not found.isdisjoint(clause) for clause in requirement)
                    for requirement in test.alternatives):
                return Evaluation(False)
        for value in view.values(test.field, test.part):
            try:
                match = search(test.pattern, test.candidates, value, REGEX_TIMEOUT_S)
            except TimeoutError:
                timeouts.append(f"rule {rule_id}: {label} pattern {test.needles[0]!r} timed out")
                continue
            if match is not None:
                return Evaluation(True, [f"{label} matches {_snippet(match.group(0))!r}"])
        return Evaluation(False)
    if test.operator == "contains" and view.index is not None:
        found = view.found(((test.field, test.part), "fold"))
        for needle, folded in zip(test.needles, test.folded, strict=True):
            if folded in found:
                return Evaluation(True, [f"{label} contains {needle!r}"])
        return Evaluation(False)
    values = view.folded(test.field, test.part)
    if test.operator != "contains" and test.field in ("from", "to", "cc"):
        values += view.addresses(test.field)
    for value in values:
        for needle, folded in zip(test.needles, test.folded, strict=True):
            if (folded in value) if test.operator == "contains" else (folded == value):
                return Evaluation(True, [f"{label} {test.operator} {needle!r}"])
    return Evaluation(False)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
