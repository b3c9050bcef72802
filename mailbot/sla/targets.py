"""SLA targets as admins write them: `1 working day`, `12 business hours`, `90 business minutes`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

_TARGET = re.compile(
    r"^\s*(\d+)\s+(working\s+days?|business\s+hours?|business\s+minutes?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Target:
    """An SLA target: an amount of working days, business hours or business minutes."""

    amount: int
    unit: Literal["working_days", "business_hours", "business_minutes"]

    def __str__(self) -> str:
        words = {"working_days": "working day", "business_hours": "business hour",
                 "business_minutes": "business minute"}[self.unit]
        return f"{self.amount} {words}{'' if self.amount == 1 else 's'}"


def parse_target(value: Any) -> Target:
    if isinstance(value, Target):
        return value
    match = _TARGET.match(str(value))
    if match is None:
        raise ValueError(f"not a target: {value!r} (write '1 working day', '12 business hours' "
                         "or '90 business minutes')")
    unit_word = match.group(2).lower().split()[1].rstrip("s")
    unit = {"day": "working_days", "hour": "business_hours", "minute": "business_minutes"}
    return Target(int(match.group(1)), unit[unit_word])  # type: ignore[arg-type]
