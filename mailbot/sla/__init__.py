"""The SLA clock: business calendars, targets, and the dues of a ticket (pure, no I/O)."""

from mailbot.sla.calendar import BusinessCalendar, CalendarError
from mailbot.sla.policy import Dues, SlaBook
from mailbot.sla.targets import Target, parse_target

__all__ = ["BusinessCalendar", "CalendarError", "Dues", "SlaBook", "Target", "parse_target"]
