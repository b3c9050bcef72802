"""Rule files are validated whole: every problem reported as file:line: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.rules import RuleSetError, load_rules
from mailbot.rules.book import RuleBook


def errors_for(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "10-rules.yaml"
    path.write_text(text)
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    return [f"{Path(e.file).name}:{e.line}: {e.message}" for e in caught.value.errors]


def test_unknown_field_is_reported_at_its_line(tmp_path: Path) -> None:
    errors = errors_for(tmp_path, "rules:\n  - id: a\n    severity: P1\n    when:\n"
                                  "      subjct: {contains: down}\n")
    assert len(errors) == 1 and errors[0].startswith("10-rules.yaml:5: unknown field 'subjct'")


def test_bad_regex_is_reported_at_its_line(tmp_path: Path) -> None:
    errors = errors_for(tmp_path, "rules:\n  - id: a\n    severity: P1\n    when:\n"
                                  "      subject: {matches: '(unclosed'}\n")
    assert errors[0].startswith("10-rules.yaml:5: not a valid regex")


def test_nested_quantifier_is_refused_at_load(tmp_path: Path) -> None:
    errors = errors_for(tmp_path, "rules:\n  - id: a\n    severity: P1\n    when: "
                                  "{body: {matches: '(a+)+b'}}\n")
    assert "backtrack catastrophically" in errors[0]


def test_bad_severity_and_missing_when_are_both_reported(tmp_path: Path) -> None:
    errors = errors_for(tmp_path, "rules:\n  - id: a\n    severity: P7\n"
                                  "    when: {subject: x}\n  - id: b\n    severity: P1\n")
    assert errors == ["10-rules.yaml:3: severity must be one of P1, P2, P3, P4, not 'P7'",
                      "10-rules.yaml:5: rule needs when"]


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    errors = errors_for(tmp_path, "rules:\n  - id: a\n    when: [unclosed\n")
    assert errors[0].startswith("10-rules.yaml:") and "YAML" in errors[0]


def test_duplicate_rule_id_across_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "00-a.yaml").write_text("rules:\n  - {id: x, severity: P1, when: {subject: a}}\n")
    errors = errors_for(tmp_path, "rules:\n  - {id: x, severity: P2, when: {subject: b}}\n")
    assert errors[0].startswith("10-rules.yaml:2: rule id 'x' already used at ")


def test_unknown_test_is_named(tmp_path: Path) -> None:
    errors = errors_for(tmp_path, "rules:\n  - id: a\n    severity: P1\n    when:\n"
                                  "      subject: {startswith: x}\n")
    assert errors[0].startswith("10-rules.yaml:5: unknown test 'startswith'")


def test_files_load_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "20-b.yaml").write_text("rules:\n  - {id: b, severity: P2, when: {subject: b}}\n")
    (tmp_path / "10-a.yaml").write_text("rules:\n  - {id: a, severity: P1, when: {subject: a}}\n")
    assert [r.id for r in load_rules(tmp_path).rules] == ["a", "b"]


def test_reload_with_a_broken_file_keeps_the_rules_in_force(tmp_path: Path) -> None:
    """A bad edit is refused whole with file:line; the old rules go on classifying."""
    path = tmp_path / "10-rules.yaml"
    path.write_text("rules:\n  - {id: old, severity: P1, when: {subject: down}}\n")
    book = RuleBook(tmp_path)
    path.write_text("rules:\n  - {id: new, severity: P9, when: {subject: down}}\n")
    result = book.reload_if_changed()
    assert result is not None and not result.loaded
    assert result.errors[0].endswith("10-rules.yaml:2: severity must be one of P1, P2, P3, P4, "
                                     "not 'P9'")
    assert [r.id for r in book.rules.rules] == ["old"]


def test_reload_with_a_good_change_takes_effect(tmp_path: Path) -> None:
    path = tmp_path / "10-rules.yaml"
    path.write_text("rules:\n  - {id: old, severity: P1, when: {subject: down}}\n")
    book = RuleBook(tmp_path)
    assert book.reload_if_changed() is None
    (tmp_path / "20-more.yaml").write_text(
        "rules:\n  - {id: more, severity: P4, when: {subject: question}}\n")
    result = book.reload_if_changed()
    assert result is not None and result.loaded
    assert [r.id for r in book.rules.rules] == ["old", "more"]
