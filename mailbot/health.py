"""Is mailbot working? Mailboxes polled recently, OAuth2 grants alive, the outbox draining.

`mailbot health`, `/healthz` and the stall alarm all ask `check_health`; the daemon also keeps
a `Heartbeats` board so that a loop that stopped making progress stops the systemd watchdog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from mailbot.oauth.grants import GrantSpec
from mailbot.store import Database
from mailbot.store.models import MailboxState, OAuthToken, OutboxMail


@dataclass(frozen=True, slots=True)
class MailboxCheck:
    name: str
    last_poll_at: datetime | None
    last_error: str | None
    stalled: bool
    alerted_at: datetime | None


@dataclass(frozen=True, slots=True)
class GrantCheck:
    name: str
    who: str
    state: str  # active | revoked | rejected | needs_login
    access_expires_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    mailboxes: tuple[MailboxCheck, ...]
    outbox_queued: int
    outbox_oldest_due: datetime | None
    problems: tuple[str, ...]
    grants: tuple[GrantCheck, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "mailboxes": [{"name": m.name, "stalled": m.stalled,
                           "last_poll_at": m.last_poll_at.isoformat() if m.last_poll_at
                           else None, "last_error": m.last_error}
                          for m in self.mailboxes],
            "outbox": {"queued": self.outbox_queued,
                       "oldest_due": self.outbox_oldest_due.isoformat()
                       if self.outbox_oldest_due else None},
            "oauth": [{"grant": g.name, "for": g.who, "state": g.state,
                       "access_expires_at": g.access_expires_at.isoformat()
                       if g.access_expires_at else None, "last_error": g.last_error}
                      for g in self.grants],
        }


def check_health(db: Database, stall_after: Mapping[str, timedelta], now: datetime, *,
                 started_at: datetime | None = None,
                 outbox_late_after: timedelta = timedelta(minutes=10),
                 grants: Sequence[GrantSpec] = ()) -> HealthReport:
    """Every configured mailbox polled within its `stall_after`, no mail due long unsent,
    every OAuth2 grant of `grants` stored and not rejected by its provider.

    `started_at` gives a mailbox that never polled yet the grace of its `stall_after` from
    the start of the process asking. Raises the database's errors: being unable to read the
    state is itself unhealthy, and the caller says so in its own words.
    """
    with db.session() as session:
        states = {s.name: s for s in session.exec(select(MailboxState)).all()}
        queued, oldest = session.exec(
            select(func.count(), func.min(col(OutboxMail.next_attempt_at)))
            .where(col(OutboxMail.status) == "queued")).one()
        tokens = {t.name: t for t in session.exec(select(OAuthToken)).all()} if grants else {}
    problems: list[str] = []
    checks: list[MailboxCheck] = []
    for name, limit in stall_after.items():
        state = states.get(name)
        last = state.last_poll_at if state else None
        since = last or started_at
        stalled = since is None or now - since > limit
        if stalled:
            detail = f"last successful poll {last.isoformat()}" if last else "never polled"
            error = state.last_error if state and state.last_error else None
            problems.append(f"mailbox {name}: {detail}" + (f" ({error})" if error else ""))
        checks.append(MailboxCheck(name, last, state.last_error if state else None, stalled,
                                   state.stall_alerted_at if state else None))
    grant_checks = tuple(_grant_check(spec, tokens.get(spec.name)) for spec in grants)
    for spec, check in zip(grants, grant_checks, strict=True):
        if check.state == "needs_login":
            problems.append(f"{spec.who}: no OAuth2 grant stored: run `{spec.login_command}`")
        elif check.state != "active":
            problems.append(f"{spec.who}: OAuth2 grant {check.state} ({check.last_error}): "
                            f"run `{spec.login_command}`")
    if oldest is not None and now - oldest > outbox_late_after:
        problems.append(f"outbox: {queued} mail(s) queued, the oldest due since "
                        f"{oldest.isoformat()}")
    return HealthReport(tuple(checks), int(queued), oldest, tuple(problems), grant_checks)


def _grant_check(spec: GrantSpec, row: OAuthToken | None) -> GrantCheck:
    if row is None:
        return GrantCheck(spec.name, spec.who, "needs_login", None, None)
    return GrantCheck(spec.name, spec.who, row.state, row.access_expires_at, row.last_error)


@dataclass
class Heartbeats:
    """When each of the daemon's loops last made progress (monotonic seconds)."""

    monotonic: Callable[[], float] = time.monotonic
    _beats: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self, loop: str) -> None:
        with self._lock:
            self._beats[loop] = self.monotonic()

    def forget(self, loop: str) -> None:
        with self._lock:
            self._beats.pop(loop, None)

    def silent(self, longer_than: float) -> list[str]:
        """Loops that have not beaten for `longer_than` seconds."""
        now = self.monotonic()
        with self._lock:
            return sorted(name for name, at in self._beats.items() if now - at > longer_than)
