"""Due times in words for people: `within 1 working day — by Wednesday 25 November 2026, 08:00
Sri Lanka Time (UTC+05:30)`."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, get_timezone_name

from mailbot.sla.targets import Target

LOCALE = "en_GB"


def utc_offset(at: datetime) -> str:
    offset = at.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_label(zone: ZoneInfo, at: datetime) -> str:
    """`Sri Lanka Time (UTC+05:30)`; plain `UTC` for UTC."""
    if zone.key in ("UTC", "Etc/UTC", "Etc/GMT"):
        return "UTC"
    return f"{get_timezone_name(zone, locale=LOCALE)} ({utc_offset(at.astimezone(zone))})"


def local_moment(at: datetime, zone: ZoneInfo) -> str:
    """`Wednesday 25 November 2026, 08:00 Sri Lanka Time (UTC+05:30)`."""
    local = at.astimezone(zone)
    return f"{format_datetime(local, 'EEEE d MMMM y, HH:mm', locale=LOCALE)} " \
           f"{zone_label(zone, local)}"


def describe_due(target: Target, due: datetime, zone: ZoneInfo) -> str:
    """`within 1 working day — by Wednesday 25 November 2026, 08:00 Sri Lanka Time (...)`."""
    return f"within {target} — by {local_moment(due, zone)}"
