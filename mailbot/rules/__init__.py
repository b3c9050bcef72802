"""Severity rules: the YAML language, its validation with file:line errors, and the engine."""

from mailbot.rules.engine import RuleEngine, Verdict
from mailbot.rules.examples import ExampleResult, run_examples
from mailbot.rules.model import RuleSet
from mailbot.rules.schema import RuleError, RuleSetError, load_rules, rule_files

__all__ = [
    "ExampleResult",
    "RuleEngine",
    "RuleError",
    "RuleSet",
    "RuleSetError",
    "Verdict",
    "load_rules",
    "rule_files",
    "run_examples",
]
