"""Rule files (YAML) → RuleSet; every problem reported as `file:line: message`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import regex
import yaml

from mailbot.rules.literals import required_alternatives, required_literals
from mailbot.rules.lookbehind import rest_after_lookbehind
from mailbot.rules.model import (
    FIELDS,
    AllOf,
    AnyOf,
    Condition,
    Example,
    FieldTest,
    NotOf,
    Rule,
    RuleSet,
    Where,
)
from mailbot.rules.text import fold
from mailbot.units import parse_size

SEVERITIES = ("P1", "P2", "P3", "P4")
PATTERN_FLAGS = regex.IGNORECASE | regex.VERSION0  # patterns are case-insensitive
RULE_KEYS = {"id", "description", "severity", "tags", "when", "unless"}
TEXT_OPERATORS = ("contains", "matches", "equals", "in", "exists")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*]|\{\d*,\d*\})\)(?:[+*]|\{\d*,\})")


class RuleError(Exception):
    """One problem in a rule file, at a line."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


class RuleSetError(Exception):
    """A rule set that cannot be used; `errors` lists each problem with its file and line."""

    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def rule_files(path: Path) -> list[Path]:
    """The YAML files of a rule folder in file-name order, or the one file named."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RuleSetError([RuleError(str(path), 0, "no such rule file or folder")])
    return sorted(p for p in path.iterdir()
                  if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))


def load_rules(path: Path, default_severity: str = "P3") -> RuleSet:
    """Load and validate every rule file; any error refuses the whole set."""
    files = rule_files(path)
    errors: list[RuleError] = []
    rules: list[Rule] = []
    examples: list[Example] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(RuleError(str(file), 0, f"cannot read: {exc}"))
            continue
        parser = _FileParser(str(file))
        file_rules, file_examples = parser.parse(text)
        errors += parser.errors
        rules += file_rules
        examples += file_examples
    seen: dict[str, Where] = {}
    for rule in rules:
        if rule.id in seen:
            errors.append(RuleError(rule.where.file, rule.where.line,
                                    f"rule id {rule.id!r} already used at {seen[rule.id]}"))
        seen.setdefault(rule.id, rule.where)
    if errors:
        raise RuleSetError(errors)
    return RuleSet(tuple(rules), tuple(examples), tuple(str(f) for f in files),
                   default_severity)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _FileParser:
    """Walks one file's YAML nodes, collecting errors instead of stopping at the first."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[RuleError] = []

    def error(self, node: yaml.Node | None, message: str) -> None:
        self.errors.append(RuleError(self.name, _line(node) if node is not None else 1,
                                     message))

    def parse(self, text: str) -> tuple[list[Rule], list[Example]]:
        try:
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = int(mark.line) + 1 if mark is not None else 1
            self.errors.append(RuleError(self.name, line,
                                         f"YAML: {getattr(exc, 'problem', None) or exc}"))
            return [], []
        if root is None:
            return [], []
        if not isinstance(root, yaml.MappingNode):
            self.error(root, "a rule file is a mapping with 'rules' and/or 'examples'")
            return [], []
        rules: list[Rule] = []
        examples: list[Example] = []
        for key, value in self.pairs(root):
            if key.value == "rules":
                rules = [r for r in (self.rule(n) for n in self.items(value)) if r]
            elif key.value == "examples":
                examples = [e for e in (self.example(n) for n in self.items(value)) if e]
            else:
                self.error(key, f"unknown key {key.value!r} (expected rules, examples)")
        return rules, examples

    def pairs(self, node: yaml.MappingNode) -> Iterable[tuple[yaml.ScalarNode, yaml.Node]]:
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.error(key, "keys must be plain words")
                continue
            yield key, value

    def items(self, node: yaml.Node) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, "expected a list")
            return []
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{what} must be a single value")
            return None
        return str(node.value)

    def strings(self, node: yaml.Node, what: str) -> tuple[str, ...] | None:
        if isinstance(node, yaml.ScalarNode):
            return (str(node.value),)
        if isinstance(node, yaml.SequenceNode) and all(
                isinstance(n, yaml.ScalarNode) for n in node.value):
            return tuple(str(n.value) for n in node.value)
        self.error(node, f"{what} must be a text or a list of texts")
        return None

    def rule(self, node: yaml.Node) -> Rule | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "a rule is a mapping with id, severity and when")
            return None
        fields = dict((k.value, (k, v)) for k, v in self.pairs(node))
        for name, (key, _) in fields.items():
            if name not in RULE_KEYS:
                self.error(key, f"unknown rule key {name!r} (expected "
                                f"{', '.join(sorted(RULE_KEYS))})")
        missing = [k for k in ("id", "severity", "when") if k not in fields]
        if missing:
            self.error(node, f"rule needs {', '.join(missing)}")
            return None
        rule_id = self.scalar(fields["id"][1], "id")
        if rule_id is not None and not _ID.match(rule_id):
            self.error(fields["id"][1], f"rule id {rule_id!r}: use a-z, 0-9, '-', '_', '.'")
        severity = self.scalar(fields["severity"][1], "severity")
        if severity is not None and severity.upper() not in SEVERITIES:
            self.error(fields["severity"][1], f"severity must be one of "
                                              f"{', '.join(SEVERITIES)}, not {severity!r}")
        when = self.condition(fields["when"][1])
        unless: list[Condition | None] = []
        if "unless" in fields:
            value = fields["unless"][1]
            nodes = value.value if isinstance(value, yaml.SequenceNode) else [value]
            unless = [self.condition(n) for n in nodes]
        tags = self.strings(fields["tags"][1], "tags") if "tags" in fields else ()
        description = (self.scalar(fields["description"][1], "description")
                       if "description" in fields else "")
        if (rule_id is None or severity is None or when is None or None in unless
                or tags is None or not _ID.match(rule_id)
                or severity.upper() not in SEVERITIES):
            return None
        return Rule(id=rule_id, severity=severity.upper(), when=when,
                    unless=tuple(u for u in unless if u is not None),
                    description=description or "", tags=tags,
                    where=Where(self.name, _line(node)))

    def example(self, node: yaml.Node) -> Example | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "an example is a mapping with file and severity")
            return None
        fields = {k.value: v for k, v in self.pairs(node)}
        if set(fields) != {"file", "severity"}:
            self.error(node, "an example has exactly the keys file and severity")
            return None
        file = self.scalar(fields["file"], "file")
        severity = self.scalar(fields["severity"], "severity")
        if severity is not None and severity.upper() not in SEVERITIES:
            self.error(fields["severity"], f"severity must be one of {', '.join(SEVERITIES)}")
            return None
        if file is None or severity is None:
            return None
        base = Path(self.name).parent
        return Example(str(base / file), severity.upper(), Where(self.name, _line(node)))

    def condition(self, node: yaml.Node) -> Condition | None:
        if isinstance(node, yaml.SequenceNode):
            children = [self.condition(n) for n in node.value]
            if not children:
                self.error(node, "an empty list of conditions never decides anything")
                return None
            return None if None in children else AllOf(tuple(c for c in children if c))
        if not isinstance(node, yaml.MappingNode) or not node.value:
            self.error(node, "a condition is a mapping such as {subject: {contains: ...}}, "
                             "or all/any/not")
            return None
        parts = [self.one_condition(key, value) for key, value in self.pairs(node)]
        if None in parts:
            return None
        conditions = tuple(p for p in parts if p is not None)
        return conditions[0] if len(conditions) == 1 else AllOf(conditions)

    def one_condition(self, key: yaml.ScalarNode, value: yaml.Node) -> Condition | None:
        name = key.value
        if name in ("all", "any"):
            if not isinstance(value, yaml.SequenceNode) or not value.value:
                self.error(value, f"{name} takes a non-empty list of conditions")
                return None
            children = [self.condition(n) for n in value.value]
            if None in children:
                return None
            kept = tuple(c for c in children if c is not None)
            return AllOf(kept) if name == "all" else AnyOf(kept)
        if name == "not":
            child = self.condition(value)
            return NotOf(child) if child is not None else None
        if name not in FIELDS:
            self.error(key, f"unknown field {name!r} (fields: {', '.join(FIELDS)}; "
                            "combinators: all, any, not)")
            return None
        return self.field_test(name, value, key)

    def field_test(self, name: str, value: yaml.Node, key: yaml.Node) -> FieldTest | None:
        where = Where(self.name, _line(key))
        if name == "has_attachments":
            flag = self.scalar(value, name)
            if flag not in ("true", "false", "True", "False", "yes", "no"):
                self.error(value, "has_attachments is true or false")
                return None
            return FieldTest(name, "exists", flag=flag in ("true", "True", "yes"), where=where)
        if isinstance(value, yaml.ScalarNode) and name != "size":
            return self.text_test(name, "contains", value, where)
        if not isinstance(value, yaml.MappingNode):
            self.error(value, f"{name} takes a mapping like {{contains: ...}}")
            return None
        entries = {k.value: (k, v) for k, v in self.pairs(value)}
        if name == "size":
            return self.size_test(entries, value, where)
        part: str | None = None
        if name == "header":
            if "name" not in entries:
                self.error(value, "header needs name: the header to test")
                return None
            part = (self.scalar(entries.pop("name")[1], "name") or "").lower()
        if name == "attachment":
            keys = [k for k in entries if k in ("filename", "content_type")]
            if len(keys) != 1 or len(entries) != 1:
                self.error(value, "attachment takes one of filename or content_type")
                return None
            part = keys[0]
            inner = entries[part][1]
            if isinstance(inner, yaml.ScalarNode):
                return self.text_test(name, "contains", inner, where, part)
            if not isinstance(inner, yaml.MappingNode):
                self.error(inner, f"attachment {part} takes a mapping like {{matches: ...}}")
                return None
            entries = {k.value: (k, v) for k, v in self.pairs(inner)}
        if len(entries) != 1:
            self.error(value, f"{name}: one test each, of {', '.join(TEXT_OPERATORS)}")
            return None
        ((operator, (op_key, op_value)),) = entries.items()
        if operator not in TEXT_OPERATORS:
            self.error(op_key, f"unknown test {operator!r} (tests: "
                               f"{', '.join(TEXT_OPERATORS)})")
            return None
        return self.text_test(name, operator, op_value, where, part)

    def text_test(self, name: str, operator: str, value: yaml.Node, where: Where,
                  part: str | None = None) -> FieldTest | None:
        if operator == "exists":
            flag = self.scalar(value, "exists")
            if flag not in ("true", "false"):
                self.error(value, "exists is true or false")
                return None
            return FieldTest(name, operator, flag=flag == "true", part=part, where=where)
        if operator == "matches":
            source = self.scalar(value, "matches")
            pattern = self.regex(source, value) if source is not None else None
            if pattern is None or source is None:
                return None
            rest = rest_after_lookbehind(source)
            return FieldTest(name, operator, (source,), pattern=pattern, part=part,
                             candidates=_compiled(rest) if rest is not None else None,
                             literals=required_literals(source),
                             alternatives=required_alternatives(source), where=where)
        needles = self.strings(value, operator)
        if needles is None:
            return None
        if operator == "contains" and not all(n.strip() for n in needles):
            self.error(value, "contains needs non-empty texts")
            return None
        return FieldTest(name, operator, needles, tuple(fold(n) for n in needles), part=part,
                         where=where)

    def size_test(self, entries: dict[str, tuple[yaml.ScalarNode, yaml.Node]],
                  node: yaml.Node, where: Where) -> FieldTest | None:
        if len(entries) != 1 or next(iter(entries)) not in ("over", "under"):
            self.error(node, "size takes over: or under: with a size such as 5MB")
            return None
        ((operator, (_, value)),) = entries.items()
        text = self.scalar(value, operator)
        try:
            number = parse_size(text or "")
        except ValueError as exc:
            self.error(value, str(exc))
            return None
        return FieldTest("size", operator, number=number, where=where)

    def regex(self, source: str, node: yaml.Node) -> regex.Pattern[str] | None:
        if _NESTED_QUANTIFIER.search(source):
            self.error(node, f"pattern {source!r} nests quantifiers (like (a+)+) and can "
                             "backtrack catastrophically; rewrite it without the nesting")
            return None
        try:
            return regex.compile(source, PATTERN_FLAGS)
        except regex.error as exc:
            self.error(node, f"not a valid regex {source!r}: {exc}")
            return None


def _compiled(source: str) -> regex.Pattern[str] | None:
    try:
        return regex.compile(source, PATTERN_FLAGS)
    except regex.error:
        return None
