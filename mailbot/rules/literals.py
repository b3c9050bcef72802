"""Literal text that a regex cannot match without: the key to skipping rules cheaply."""

from __future__ import annotations

from collections.abc import Iterator

MIN_LITERAL = 4


def required_literals(source: str) -> tuple[str, ...]:
    """Runs of letters and digits every match of `source` must contain (lower-cased).

    Conservative: anything inside groups, classes, optional or alternative parts is left out,
    and a pattern with top-level alternation or verbose mode gives nothing.
    """
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
