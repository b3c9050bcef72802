"""The rule language as values: field tests, combinators, rules, examples and rule sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import regex

Field = Literal["subject", "body", "from", "from_domain", "to", "cc", "header", "attachment",
                "has_attachments", "size", "customer_id", "customer_plan"]
FIELDS: tuple[str, ...] = ("subject", "body", "from", "from_domain", "to", "cc", "header",
                           "attachment", "has_attachments", "size", "customer_id",
                           "customer_plan")
OPERATORS: tuple[str, ...] = ("contains", "matches", "equals", "in", "exists", "over", "under")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a piece of the rule language was written."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class FieldTest:
    """One test of one field: `subject: {matches: '...'}`."""

    field: str
    operator: str
    needles: tuple[str, ...] = ()
    folded: tuple[str, ...] = ()
    literals: tuple[tuple[str, ...], ...] = ()  # a regex's required literals, see literals.py
    alternatives: tuple[tuple[tuple[str, ...], ...], ...] = ()  # the same, per way to match
    pattern: regex.Pattern[str] | None = None
    candidates: regex.Pattern[str] | None = None  # where it can match, see lookbehind.py
    flag: bool | None = None
    number: int | None = None
    part: str | None = None  # header name, or attachment key (filename | content_type)
    where: Where = Where("", 0)


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    child: Condition


Condition = Union[FieldTest, AllOf, AnyOf, NotOf]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True, slots=True)
class Rule:
    """A named condition that gives a severity (and tags) when it holds and no `unless` does."""

    id: str
    severity: str
    when: Condition
    unless: tuple[Condition, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    where: Where = Where("", 0)


@dataclass(frozen=True, slots=True)
class Example:
    """A mail shipped with the rules and the severity it must get."""

    file: str
    severity: str
    where: Where = Where("", 0)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule in file-name order, the examples, and the files they came from."""

    rules: tuple[Rule, ...] = ()
    examples: tuple[Example, ...] = ()
    files: tuple[str, ...] = field(default=())
    default_severity: str = "P3"
