"""Command lines at the top of an agent's reply: `#severity P1`, `#status resolved`, ..."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from mailbot.pipeline import SEVERITIES

STATUSES = ("open", "waiting", "resolved")
_COMMAND = re.compile(r"^#([a-z]+)\b[ \t:]*(.*?)\s*$", re.IGNORECASE)


class CommandKind(StrEnum):
    SEVERITY = "severity"
    STATUS = "status"
    ASSIGN = "assign"
    NOTE = "note"


_CHOICES: dict[CommandKind, tuple[tuple[str, ...], Callable[[str], str]]] = {
    CommandKind.SEVERITY: (SEVERITIES, str.upper),
    CommandKind.STATUS: (STATUSES, str.lower),
}


@dataclass(frozen=True, slots=True)
class Command:
    """One command line: what it asks, its argument, and why it is refused (if it is)."""

    kind: CommandKind | None
    argument: str
    line: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """An agent's reply split into its commands and the text that goes to the customer."""

    commands: tuple[Command, ...]
    text: str

    @property
    def is_note(self) -> bool:
        return any(c.kind is CommandKind.NOTE and c.error is None for c in self.commands)


def parse_commands(text: str) -> ParsedReply:
    """Read command lines from the top of a reply (blank lines between them allowed).

    The first line that is not a command ends the block; everything from there on is the
    reply's text. A line that looks like a command but is not valid is kept as a refused
    command with its reason, and is not sent to the customer either.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    commands: list[Command] = []
    position = 0
    while position < len(lines):
        line = lines[position].strip()
        if not line:
            position += 1
            continue
        match = _COMMAND.match(line)
        if match is None:
            break
        commands.append(_command(match.group(1).lower(), match.group(2), line))
        position += 1
    body = "\n".join(lines[position:]).strip()
    return ParsedReply(tuple(commands), body)


def _command(name: str, argument: str, line: str) -> Command:
    try:
        kind = CommandKind(name)
    except ValueError:
        return Command(None, argument, line, f"unknown command #{name} (known: "
                       + ", ".join(f"#{k}" for k in CommandKind) + ")")
    if kind in _CHOICES:
        allowed, normalize = _CHOICES[kind]
        value = normalize(argument)
        if value not in allowed:
            return Command(kind, argument, line,
                           f"#{kind} needs one of {', '.join(allowed)}, not {argument!r}")
        return Command(kind, value, line)
    if kind is CommandKind.ASSIGN:
        if not argument:
            return Command(kind, argument, line, "#assign needs a name")
        return Command(kind, argument[:200], line)
    return Command(kind, argument, line)
