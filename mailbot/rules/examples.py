"""Running the example mails shipped with a rule set and reporting every mismatch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from re import Pattern

from mailbot.identify import CustomerDirectory, CustomerMatch, identify_customer
from mailbot.parsing import MessageParseError, parse_message
from mailbot.rules.engine import RuleEngine
from mailbot.rules.model import Example


@dataclass(frozen=True, slots=True)
class ExampleResult:
    """One example: the severity it must get, the one it got, and why."""

    example: Example
    got: str | None
    rules: tuple[str, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.got == self.example.severity

    def __str__(self) -> str:
        where = f"{self.example.where}: example {self.example.file}"
        if self.error:
            return f"{where}: {self.error}"
        fired = ", ".join(self.rules) or "no rule"
        return f"{where}: expected {self.example.severity}, got {self.got} ({fired})"


def run_examples(engine: RuleEngine, patterns: tuple[Pattern[str], ...] = (),
                 directory: CustomerDirectory | None = None) -> list[ExampleResult]:
    results = []
    for example in engine.rules.examples:
        try:
            message = parse_message(Path(example.file).read_bytes())
        except OSError as exc:
            results.append(ExampleResult(example, None, (), f"cannot read: {exc.strerror}"))
            continue
        except MessageParseError as exc:
            results.append(ExampleResult(example, None, (), f"not a mail: {exc.reason}"))
            continue
        customer: CustomerMatch = identify_customer(message, patterns,
                                                    directory or CustomerDirectory())
        verdict = engine.classify(message, customer)
        results.append(ExampleResult(example, verdict.severity,
                                     tuple(h.rule_id for h in verdict.hits)))
    return results
