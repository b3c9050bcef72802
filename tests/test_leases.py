"""Leases on both engines: one holder at a time, renewal, takeover after expiry, release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailbot.clock import FrozenClock
from mailbot.leases import Leases
from mailbot.store import Database

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def two_instances(db: Database) -> tuple[FrozenClock, Leases, Leases]:
    clock = FrozenClock(START)
    return clock, Leases(db, clock, "a", TTL), Leases(db, clock, "b", TTL)


def test_one_holder_at_a_time_and_renewal_keeps_it(db: Database) -> None:
    clock, a, b = two_instances(db)
    assert a.hold("mailbox:support") is True
    assert b.hold("mailbox:support") is False
    clock.advance(TTL - timedelta(seconds=1))
    assert a.hold("mailbox:support") is True  # renewed before it expired
    clock.advance(TTL - timedelta(seconds=1))
    assert b.hold("mailbox:support") is False
    assert [(lease.name, lease.holder) for lease in a.all()] == [("mailbox:support", "a")]


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_told(db: Database) -> None:
    clock, a, b = two_instances(db)
    assert a.hold("mailbox:support")
    clock.advance(TTL + timedelta(seconds=1))  # a died, or stalled
    assert b.hold("mailbox:support") is True
    assert a.hold("mailbox:support") is False
    (lease,) = b.all()
    assert (lease.holder, lease.acquired_at, lease.expires_at) == ("b", clock.now(),
                                                                  clock.now() + TTL)


def test_released_lease_is_free_at_once_and_leases_are_independent(db: Database) -> None:
    _clock, a, b = two_instances(db)
    assert a.hold("mailbox:support") and b.hold("sla-watcher")
    assert not b.hold("mailbox:support")
    a.release("mailbox:support")
    b.release("mailbox:support")  # not b's: changes nothing
    assert b.hold("mailbox:support") is True
    assert a.hold("sla-watcher") is False
    assert sorted((lease.name, lease.holder) for lease in a.all()) == [
        ("mailbox:support", "b"), ("sla-watcher", "b")]
