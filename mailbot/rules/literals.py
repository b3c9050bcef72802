"""Literal text that a regex cannot match without: the key to skipping rules cheaply.

A requirement is a conjunction of clauses, each a set of alternatives: the regex can match
only if, for every clause, one of its literals occurs in the (case-folded) text.
`checkout \\w+ (down|offline)` requires `checkout` and one of `down` or `offline`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

# The standard library's own regex parser; the rules' dialect (the regex module's VERSION0)
# is a superset of what it reads.
sre_parse: Any = importlib.import_module("re._parser")
sre: Any = importlib.import_module("re._constants")

MIN_LITERAL = 3
MAX_ALTERNATIVES = 64

Clause = tuple[str, ...]  # one of these literals occurs
Requirement = tuple[Clause, ...]  # every clause holds

_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


def required_literals(source: str) -> Requirement:
    """What every match of `source` contains, as clauses of lower-cased literals.

    Conservative: only runs of printable ASCII with three letters or digits at least count
    (a literal space is kept: `data ` is rarer than `data`); lookarounds, classes and
    optional parts give nothing, and an alternation gives a clause only when each of its
    branches requires something. A pattern the standard parser cannot read falls back to the
    plain runs outside every group and alternation.
    """
    try:
        parsed = sre_parse.parse(source, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError):
        return tuple((run,) for run in _plain_runs(source))
    return _dedupe(_sequence(list(parsed)))


def required_alternatives(source: str) -> tuple[Requirement, ...]:
    """What every match of `source` contains, one requirement per way of matching it.

    When a pattern must go through an alternation (`\\b(nobody can|cannot log in at all)\\b`),
    every match meets the requirement of one of its branches, together with what the rest
    of the pattern requires. `required_literals` can keep only one clause per branch and
    unites them (`can` or `at all`: everyday words); here each branch keeps all its clauses
    (`nobody` and `can`, or `at all`). Empty when the pattern has no such alternation, or a
    branch requires nothing.
    """
    try:
        parsed = sre_parse.parse(source, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError):
        return ()
    found = _alternatives(list(parsed))
    if not found or len(found) > MAX_ALTERNATIVES or not all(found):
        return ()
    return tuple(_dedupe(clauses) for clauses in found)


def _alternatives(items: Sequence[tuple[Any, Any]]) -> list[list[Clause]] | None:
    """Per branch of the first alternation every match goes through: the clauses of that
    branch and of the rest of the sequence."""
    for index, (op, av) in enumerate(items):
        if op is sre.BRANCH:
            branches = [_sequence(branch) for branch in av[1]]
        elif op is sre.SUBPATTERN or op is sre.ATOMIC_GROUP:
            inner = _alternatives(list(av[-1] if op is sre.SUBPATTERN else av))
            if inner is None:
                continue
            branches = inner
        else:
            continue
        # The rest is read on each side of the group: literal runs do not join across it.
        rest = _sequence(items[:index]) + _sequence(items[index + 1:])
        return [rest + branch for branch in branches]
    return None


def _sequence(items: Sequence[tuple[Any, Any]]) -> list[Clause]:
    clauses: list[Clause] = []
    run: list[str] = []

    def flush() -> None:
        if sum(char.isalnum() for char in run) >= MIN_LITERAL:
            clauses.append(("".join(run),))
        run.clear()

    for op, av in items:
        if op is sre.LITERAL and 32 <= av < 127:
            run.append(chr(av).lower())
            continue
        flush()
        if op is sre.SUBPATTERN:
            clauses += _sequence(av[-1])
        elif op is sre.ATOMIC_GROUP:
            clauses += _sequence(av)
        elif op in _REPEATS and av[0] >= 1:
            clauses += _sequence(av[2])
        elif op is sre.BRANCH:
            clause = _any_of([_sequence(branch) for branch in av[1]])
            if clause:
                clauses.append(clause)
    flush()
    return clauses


def _any_of(branches: list[list[Clause]]) -> Clause:
    """One clause that holds whenever any branch matches: a chosen clause of each, united."""
    united: list[str] = []
    for clauses in branches:
        if not clauses:
            return ()
        chosen: Clause = max(clauses, key=selectivity)
        united += chosen
    literals = tuple(dict.fromkeys(united))
    return literals if len(literals) <= MAX_ALTERNATIVES else ()


def selectivity(clause: Clause) -> tuple[int, int]:
    """Orders clauses by how rarely they hold: longest shortest literal, then fewest."""
    return min(len(literal) for literal in clause), -len(clause)


def _dedupe(clauses: list[Clause]) -> Requirement:
    unique = list(dict.fromkeys(tuple(dict.fromkeys(c)) for c in clauses))
    # A clause implied by a stronger one (a subset of its alternatives) adds nothing.
    return tuple(c for c in unique
                 if not any(o != c and set(o) <= set(c) for o in unique))


def _plain_runs(source: str) -> tuple[str, ...]:
    """Runs of letters and digits outside groups, classes and optional parts."""
    if "(?x" in source or _has_top_level_bar(source):
        return ()
    runs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if len(current) >= MIN_LITERAL:
            runs.append("".join(current))
        current.clear()

    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            flush()
            i += 2
        elif char == "[":
            flush()
            i = _skip_class(source, i)
        elif char == "(":
            flush()
            i = _skip_group(source, i)
            i = _skip_quantifier(source, i)
        elif char in "?*":
            if current:
                current.pop()
            flush()
            i += 1
        elif char == "{":
            end = source.find("}", i)
            if end == -1:
                flush()
                i += 1
                continue
            if source[i + 1:end].split(",")[0].strip() in ("", "0") and current:
                current.pop()
            flush()
            i = end + 1
        elif char.isascii() and char.isalnum():
            current.append(char.lower())
            i += 1
        else:
            flush()
            i += 1
    flush()
    return tuple(dict.fromkeys(runs))


def _walk(source: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, group depth) outside escapes and character classes."""
    depth, i = 0, start
    while i < len(source):
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _skip_class(source, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        yield i, char, depth
        i += 1


def _has_top_level_bar(source: str) -> bool:
    return any(char == "|" and depth == 0 for _, char, depth in _walk(source))


def _skip_class(source: str, start: int) -> int:
    i = start + 1
    if i < len(source) and source[i] == "^":
        i += 1
    if i < len(source) and source[i] == "]":
        i += 1
    while i < len(source) and source[i] != "]":
        i += 2 if source[i] == "\\" else 1
    return i + 1


def _skip_group(source: str, start: int) -> int:
    for i, char, depth in _walk(source, start):
        if char == ")" and depth == 0:
            return i + 1
    return len(source)


def _skip_quantifier(source: str, i: int) -> int:
    if i < len(source) and source[i] in "?*+":
        i += 1
    elif i < len(source) and source[i] == "{":
        end = source.find("}", i)
        i = end + 1 if end != -1 else i
    if i < len(source) and source[i] in "?+":
        i += 1
    return i
