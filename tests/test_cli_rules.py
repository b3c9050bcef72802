"""`mailbot rules check | test | replay` and rule results stored on tickets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "rules" / "examples"


def mailbot(config: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    base = [sys.executable, "-m", "mailbot"] + (["--config", str(config)] if config else [])
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=config.parent if config else REPO)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    path = tmp_path / "config.yaml"
    path.write_text("storage: {dir: state}\nrules: {path: rules}\n"
                    "logging: {format: json, level: error}\n")
    return path


def test_check_of_the_shipped_rules_passes() -> None:
    result = mailbot(None, "rules", "check", str(REPO / "rules"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "44 of 44 examples as expected" in result.stdout


def test_check_of_a_broken_file_gives_file_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rules:\n  - id: x\n    severity: P1\n    when:\n"
                                       "      subject: {matches: '[unclosed'}\n")
    result = mailbot(None, "rules", "check", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:5: not a valid regex" in result.stderr


def test_check_reports_an_example_that_gets_another_severity(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "p4-pricing.eml", tmp_path / "pricing.eml")
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {id: price, severity: P2, when: {subject: pricing}}\n"
        "examples:\n  - {file: pricing.eml, severity: P1}\n")
    result = mailbot(None, "rules", "check", str(tmp_path))
    assert result.returncode == 1
    assert "r.yaml:4: example" in result.stdout and "expected P1, got P2 (price)" in result.stdout


def test_test_explains_severity_as_json(config: Path) -> None:
    result = mailbot(config, "rules", "test", "--json", str(EXAMPLES / "p1-data-breach.eml"),
                     str(EXAMPLES / "p3-no-longer-down.eml"))
    breach, no_longer_down = json.loads(result.stdout)
    assert breach["severity"] == "P1"
    assert breach["matched_rules"][0]["id"] == "security-incident"
    assert "data breach" in breach["matched_rules"][0]["matched"]
    assert no_longer_down["severity"] == "P3"
    assert [h["id"] for h in no_longer_down["matched_rules"]] == ["minor-bug"]


def test_ingested_ticket_carries_its_severity_and_matched_rules(config: Path) -> None:
    mailbot(config, "ingest", str(EXAMPLES / "p1-checkout-down.eml"))
    (ticket,) = json.loads(mailbot(config, "tickets", "list", "--json").stdout)
    assert ticket["severity"] == "P1"
    assert ticket["matched_rules"][0]["id"] == "complete-outage"
    assert ticket["tags"] == ["outage"]


def test_replay_shows_what_a_candidate_rule_set_would_change(config: Path,
                                                            tmp_path: Path) -> None:
    """Nothing is changed; the report lists tickets and severity transitions."""
    mailbot(config, "ingest", str(EXAMPLES / "p4-pricing.eml"), str(EXAMPLES / "p3-typo.eml"))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(
        "rules:\n  - {id: money, severity: P2, when: {body: {contains: price}}}\n")
    result = mailbot(config, "rules", "replay", "--rules", str(candidate), "--json")
    report = json.loads(result.stdout)
    assert (report["tickets"], report["changed"]) == (2, 1)
    assert report["transitions"] == {"P4 -> P2": 1}
    assert report["changes"][0]["rules"] == ["money"]
    listed = json.loads(mailbot(config, "tickets", "list", "--json").stdout)
    assert [t["severity"] for t in listed] == ["P4", "P3"]
