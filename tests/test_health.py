"""Health from the database, the stall alarm (one alert per stall) and loop heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from mailbot.clock import FrozenClock
from mailbot.conversation.ids import ThreadSigner
from mailbot.health import Heartbeats, check_health
from mailbot.stall import StallAlarm, StallPolicy
from mailbot.store import Database
from mailbot.store.models import MailboxState, OutboxMail

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LIMITS = {"support": timedelta(minutes=10), "sales": timedelta(minutes=10)}


def polled(db: Database, name: str, at: datetime | None, error: str | None = None) -> None:
    with db.transaction() as session:
        state = session.get(MailboxState, name) or MailboxState(name=name)
        state.last_poll_at, state.last_error = at, error
        if at is not None:
            state.stall_alerted_at = None
        session.add(state)


def test_recent_polls_are_healthy_and_a_stale_one_is_named(db: Database) -> None:
    polled(db, "support", NOW - timedelta(minutes=2))
    polled(db, "sales", NOW - timedelta(minutes=11), error="LOGIN failed")
    report = check_health(db, LIMITS, NOW)
    assert not report.ok
    assert report.problems == (
        f"mailbox sales: last successful poll {(NOW - timedelta(minutes=11)).isoformat()} "
        "(LOGIN failed)",)
    assert [(m.name, m.stalled) for m in report.mailboxes] == [("support", False),
                                                                ("sales", True)]


def test_a_mailbox_never_polled_is_stalled_unless_within_the_grace_of_a_start(
        db: Database) -> None:
    assert check_health(db, {"support": LIMITS["support"]}, NOW).problems == (
        "mailbox support: never polled",)
    assert check_health(db, {"support": LIMITS["support"]}, NOW,
                        started_at=NOW - timedelta(minutes=3)).ok


def test_mail_due_long_ago_and_still_queued_is_a_problem(db: Database) -> None:
    polled(db, "support", NOW)
    with db.transaction() as session:
        session.add(OutboxMail(kind="auto_reply", sender="s@example.test", recipients=["c@x"],
                               message_id="m1@x", raw=b"x", created_at=NOW,
                               next_attempt_at=NOW - timedelta(minutes=30)))
    report = check_health(db, {"support": LIMITS["support"]}, NOW)
    assert report.outbox_queued == 1
    assert report.problems[0].startswith("outbox: 1 mail(s) queued, the oldest due since")
    assert check_health(db, {"support": LIMITS["support"]}, NOW - timedelta(minutes=25)).ok


def test_a_stall_is_alerted_once_and_again_only_after_recovery(db: Database) -> None:
    clock = FrozenClock(NOW)
    policy = StallPolicy({"support": LIMITS["support"]}, "Support <support@example.test>",
                         ("oncall@example.test",))
    alarm = StallAlarm(db, policy, ThreadSigner(b"k" * 32), clock, started_at=NOW)
    polled(db, "support", NOW)
    assert alarm.check() == []
    clock.advance(timedelta(minutes=11))
    assert alarm.check() == ["support"]
    clock.advance(timedelta(minutes=5))
    assert alarm.check() == []  # one alert per stall
    polled(db, "support", clock.now())
    clock.advance(timedelta(minutes=11))
    assert alarm.check() == ["support"]
    with db.session() as session:
        alerts = session.exec(select(OutboxMail)).all()
    assert [(a.kind, a.recipients, a.ticket_id) for a in alerts] == [
        ("alert", ["oncall@example.test"], None)] * 2
    assert alerts[0].subject == "mailbot: mailbox support has not been read for 10 minutes"
    assert b"Last successful poll: 2026-11-25 09:00:00 UTC" in alerts[0].raw


def test_heartbeats_name_the_loops_that_went_quiet() -> None:
    now = [100.0]
    beats = Heartbeats(monotonic=lambda: now[0])
    beats.beat("mailbox:support")
    beats.beat("outbox")
    now[0] = 200.0
    beats.beat("outbox")
    assert beats.silent(longer_than=60) == ["mailbox:support"]
    beats.forget("mailbox:support")
    assert beats.silent(longer_than=60) == []
