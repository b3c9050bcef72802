"""Configuration: validated at start, errors name the key, secrets never shown."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from mailbot.config import (
    DEFAULT_CUSTOMER_ID_PATTERNS,
    ConfigError,
    Target,
    load_settings,
    parse_target,
    settings_from_mapping,
)
from mailbot.identify import compile_patterns

REPO = Path(__file__).resolve().parents[1]


def mailbox(**imap: object) -> dict[str, object]:
    return {"name": "support", "imap": {"host": "imap.example.com", "username": "u",
                                        "password": "p", **imap}}


def errors_of(mapping: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(mapping, Path("/srv"))
    return caught.value.errors


def test_example_configuration_loads() -> None:
    settings = load_settings(REPO / "config.example.yaml",
                             {"MAILBOT_SUPPORT_IMAP_PASSWORD": "x", "MAILBOT_SMTP_PASSWORD": "y"})
    assert [m.name for m in settings.mailboxes] == ["support"]
    assert set(settings.sla.policies) == {"standard", "six_day", "extended"}
    assert settings.sla.plans == {"extended": "extended"}


def test_unknown_key_is_named_with_its_path() -> None:
    assert errors_of({"mailboxes": [mailbox(prot=993)]}) == ["mailboxes[0].imap.prot: unknown key"]


def test_wrong_port_type_names_the_key() -> None:
    (error,) = errors_of({"mailboxes": [mailbox(port="nine")]})
    assert error.startswith("mailboxes[0].imap.port: ")


def test_negative_analysis_workers_are_refused_with_the_key() -> None:
    (error,) = errors_of({"analysis": {"workers": -1}})
    assert error.startswith("analysis.workers: ")


def test_unknown_top_level_section_is_named() -> None:
    assert errors_of({"mailboxs": []}) == ["mailboxs: unknown key"]


def test_security_none_refused_for_remote_host() -> None:
    (error,) = errors_of({"mailboxes": [mailbox(security="none")]})
    assert "mailboxes[0].imap" in error and "loopback" in error


def test_security_none_accepted_on_loopback() -> None:
    settings = settings_from_mapping(
        {"mailboxes": [mailbox(host="127.0.0.1", security="none")]}, Path("/srv"))
    assert settings.mailboxes[0].imap.port == 143


def test_password_file_is_read_and_redacted(tmp_path: Path) -> None:
    (tmp_path / "imap").write_text("s3cret\n")
    settings = settings_from_mapping(
        {"mailboxes": [{"name": "support", "imap": {
            "host": "imap.example.com", "username": "u", "password_file": "imap"}}]}, tmp_path)
    password = settings.mailboxes[0].imap.password
    assert password is not None and password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


def test_unreadable_password_file_names_the_key(tmp_path: Path) -> None:
    (error,) = errors_of({"mailboxes": [{"name": "support", "imap": {
        "host": "h.example", "username": "u", "password_file": str(tmp_path / "missing")}}]})
    assert error.startswith("mailboxes[0]") and "password_file" in error


def test_env_var_overrides_password() -> None:
    settings = settings_from_mapping({"mailboxes": [mailbox()]}, Path("/srv"),
                                     {"MAILBOT_SUPPORT_IMAP_PASSWORD": "from-env"})
    password = settings.mailboxes[0].imap.password
    assert password is not None and password.get_secret_value() == "from-env"


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("storage:\n  dir: var\n  bad: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4")):
        load_settings(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    settings = settings_from_mapping({"storage": {"dir": "state"}}, tmp_path)
    assert settings.storage.dir == tmp_path / "state"
    assert settings.database.url == f"sqlite:///{tmp_path / 'state'}/mailbot.db"


def test_durations_and_sizes_are_read() -> None:
    settings = settings_from_mapping(
        {"mailboxes": [{**mailbox(), "poll_interval": "2m"}],
         "storage": {"max_message_bytes": "25MB"}}, Path("/srv"))
    assert settings.mailboxes[0].poll_interval == timedelta(minutes=2)
    assert settings.storage.max_message_bytes == 25_000_000


def test_customer_id_pattern_needs_one_group() -> None:
    (error,) = errors_of({"customer_id": {"patterns": ["ok (\\d+)", "no group"]}})
    assert error.startswith("customer_id.patterns") and "patterns[1]" in error


def test_duplicate_mailbox_names_are_refused() -> None:
    (error,) = errors_of({"mailboxes": [mailbox(), mailbox()]})
    assert "duplicate" in error


def test_policy_naming_an_unknown_calendar_is_refused() -> None:
    (error,) = errors_of({"sla": {"calendars": {"c": {"timezone": "UTC", "hours": "24x7"}},
                                  "policies": {"standard": {"calendar": "nope", "targets": {
                                      "P1": {"response": "1 working day"}}}}}})
    assert "calendar" in error and "nope" in error


def test_unknown_time_zone_is_named() -> None:
    errors = errors_of({"sla": {"calendars": {"c": {"timezone": "Mars/Olympus",
                                                    "hours": "24x7"}}, "policies": {}}})
    assert any(e.startswith("sla.calendars.c.timezone: unknown time zone") for e in errors)


def test_overlapping_business_hours_are_refused() -> None:
    errors = errors_of({"sla": {"calendars": {"c": {"timezone": "UTC", "hours": {
        "mon": ["08:00-12:00", "11:00-17:00"]}}}, "policies": {}}})
    assert any("overlap" in e for e in errors)


@pytest.mark.parametrize(("words", "target"), [
    ("1 working day", Target(1, "working_days")),
    ("3 working days", Target(3, "working_days")),
    ("12 business hours", Target(12, "business_hours")),
    ("90 business minutes", Target(90, "business_minutes")),
])
def test_target_words_parse(words: str, target: Target) -> None:
    assert parse_target(words) == target and str(target) == words


@pytest.mark.parametrize("words", ["4h", "1 day", "twelve business hours", ""])
def test_target_without_explicit_unit_is_refused(words: str) -> None:
    with pytest.raises(ValueError, match="not a target"):
        parse_target(words)


DEFAULT_PATTERNS = compile_patterns(DEFAULT_CUSTOMER_ID_PATTERNS)


@pytest.mark.parametrize(("text", "expected"), [
    ("Customer ID: RC-10442", "RC-10442"),
    ("customer id is 10442", "10442"),
    ("Cust. ID #10442", "10442"),
    ("CID 10442", "10442"),
    ("customer-id: rc-10442", "rc-10442"),
    ("Customer ID 10442.", "10442"),
    ("please see customer id number below", None),
    ("CIDR 10.0.0.0/8", None),
    ("acid 1234", None),
])
def test_default_customer_id_patterns(text: str, expected: str | None) -> None:
    found = [m.group(1) for p in DEFAULT_PATTERNS for m in p.finditer(text)]
    assert (found[0] if found else None) == expected


def test_smtp_retry_schedule_is_checked_with_the_key_named() -> None:
    smtp = {"host": "smtp.example.com", "from": "support@example.com"}
    (error,) = errors_of({"smtp": {**smtp, "retry": {"first_delay": "10m", "max_delay": "1m"}}})
    assert error.startswith("smtp.retry") and "max_delay" in error
    settings = settings_from_mapping({"smtp": {**smtp, "retry": {"first_delay": "5s"}}},
                                     Path("/srv"))
    assert settings.smtp is not None
    assert (settings.smtp.retry.first_delay.total_seconds(),
            settings.smtp.retry.give_up_after.days) == (5, 2)
