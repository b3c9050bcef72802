"""The rule set in force: reloaded on request or on change; a bad set never replaces it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import structlog

from mailbot.identify import CustomerMatch
from mailbot.parsing import ParsedMessage
from mailbot.pipeline import Classification
from mailbot.rules.engine import RuleEngine
from mailbot.rules.model import RuleSet
from mailbot.rules.schema import RuleSetError, load_rules, rule_files

log = structlog.get_logger("mailbot.rules")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: loaded the new set, kept the old one (with errors), or saw no change."""

    loaded: bool
    errors: tuple[str, ...] = ()
    rules: int = 0


class RuleBook:
    """A classifier whose rules can be swapped at run time, atomically and only for valid sets."""

    def __init__(self, path: Path, default_severity: str = "P3") -> None:
        self.path = path
        self.default_severity = default_severity
        self._lock = threading.Lock()
        self._fingerprint = self._current_fingerprint()
        self._engine = RuleEngine(load_rules(path, default_severity))

    @property
    def rules(self) -> RuleSet:
        return self._engine.rules

    @property
    def engine(self) -> RuleEngine:
        return self._engine

    def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification:
        return self._engine.classify(message, customer)

    def reload(self) -> ReloadResult:
        """Load the files again; on any error keep the rules in force and report file:line."""
        fingerprint = self._current_fingerprint()
        try:
            rules = load_rules(self.path, self.default_severity)
        except RuleSetError as exc:
            errors = tuple(str(e) for e in exc.errors)
            with self._lock:
                self._fingerprint = fingerprint
            log.error("rules.reload_refused", path=str(self.path), errors=list(errors),
                      kept=len(self._engine.rules.rules))
            return ReloadResult(False, errors, len(self._engine.rules.rules))
        with self._lock:
            self._engine = RuleEngine(rules)
            self._fingerprint = fingerprint
        log.info("rules.reloaded", path=str(self.path), rules=len(rules.rules))
        return ReloadResult(True, (), len(rules.rules))

    def reload_if_changed(self) -> ReloadResult | None:
        """Reload when a rule file was added, removed or modified since the last look."""
        if self._current_fingerprint() == self._fingerprint:
            return None
        return self.reload()

    def _current_fingerprint(self) -> Fingerprint:
        try:
            files = rule_files(self.path)
        except RuleSetError:
            return ()
        stamp = []
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            stamp.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(stamp)
