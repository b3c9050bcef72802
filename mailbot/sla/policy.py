"""Policies: per severity a response and a resolution target on a calendar, picked by plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.sla.calendar import BusinessCalendar
from mailbot.sla.targets import Target

_KEPT_DUES = 64


@dataclass(frozen=True, slots=True)
class Dues:
    """When a ticket must be answered and resolved, and by which policy and calendar."""

    policy: str
    calendar: str
    clock_start: datetime
    response_target: Target | None
    response_due: datetime | None
    resolution_target: Target | None
    resolution_due: datetime | None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    calendar: str
    targets: Mapping[str, tuple[Target, Target | None]]


def apply_target(calendar: BusinessCalendar, start: datetime, target: Target) -> datetime:
    """The due instant of a target counted from `start` on the calendar."""
    if target.unit == "working_days":
        return calendar.add_working_days(start, target.amount)
    minutes = target.amount * (60 if target.unit == "business_hours" else 1)
    return calendar.add(start, timedelta(minutes=minutes))


class SlaBook:
    """Every calendar and policy of the configuration, ready to compute dues."""

    def __init__(self, calendars: Mapping[str, BusinessCalendar], policies: Mapping[str, Policy],
                 default_policy: str, plans: Mapping[str, str] | None = None) -> None:
        self.calendars = dict(calendars)
        self.policies = dict(policies)
        self.default_policy = default_policy
        self.plans = dict(plans or {})
        self._dues: dict[tuple[datetime, str, str | None], Dues] = {}

    def policy_for(self, plan: str | None) -> Policy:
        name = self.plans.get(plan or "", self.default_policy)
        return self.policies[name]

    def calendar_of(self, policy: str | None) -> BusinessCalendar:
        """The calendar of a named policy; the default policy's for an unknown or no name."""
        chosen = self.policies.get(policy or "") or self.policies[self.default_policy]
        return self.calendars[chosen.calendar]

    def dues(self, received: datetime, severity: str, plan: str | None = None) -> Dues:
        """Response and resolution due for a ticket received at `received`.

        The messages of a transaction share their moment of arrival, so the last few
        answers are kept: the calendar is walked once per severity and plan.
        """
        key = (received, severity, plan)
        found = self._dues.get(key)
        if found is None:
            if len(self._dues) >= _KEPT_DUES:
                self._dues.clear()
            found = self._dues[key] = self._work_out_dues(received, severity, plan)
        return found

    def _work_out_dues(self, received: datetime, severity: str, plan: str | None) -> Dues:
        policy = self.policy_for(plan)
        calendar = self.calendars[policy.calendar]
        start = calendar.first_business_moment(received)
        response, resolution = policy.targets.get(severity, (None, None))
        return Dues(
            policy=policy.name, calendar=policy.calendar, clock_start=start,
            response_target=response,
            response_due=apply_target(calendar, received, response) if response else None,
            resolution_target=resolution,
            resolution_due=apply_target(calendar, received, resolution) if resolution else None)
