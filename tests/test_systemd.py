"""The shipped unit files pass `systemd-analyze verify`; the daemon's rates 2.0 or lower."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[1] / "systemd"
INSTALLED = "/opt/mailbot/.venv/bin/mailbot"


def installed_here(unit: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's mailbot (verify checks it exists)."""
    script = Path(sys.executable).parent / "mailbot"
    assert script.exists(), "mailbot's console script is not installed in this environment"
    copy = tmp_path / unit
    copy.write_text((UNITS / unit).read_text().replace(INSTALLED, str(script)))
    return copy


@pytest.mark.parametrize("unit", ["mailbot.service", "mailbot-poll.service"])
def test_units_pass_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(installed_here(unit, tmp_path))],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_the_daemon_unit_is_notify_with_watchdog_and_restart() -> None:
    text = (UNITS / "mailbot.service").read_text()
    for line in ("Type=notify", "WatchdogSec=2min", "Restart=on-failure", "DynamicUser=yes",
                 "StateDirectory=mailbot", "ConfigurationDirectory=mailbot",
                 "LoadCredential=imap:", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert f"\n{line}" in text, line


def test_systemd_analyze_security_rates_the_daemon_2_or_lower(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager",
         str(installed_here("mailbot.service", tmp_path))],
        capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for mailbot\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0
