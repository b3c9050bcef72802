"""How soon a thread waiting for the GIL gets it: the ingest loop is the one that waits.

The main thread stores what the others bring: the IMAP thread's fetched batches, the
analysis workers' decisions (unpickled by the pool's own thread), the outbox's deliveries.
Each time it lets the GIL go, for a SQLite statement, a SHA-256 or a socket write, one of
those threads takes it, and Python leaves it there for up to the switch interval, 5 ms by
default, unless that thread waits for I/O first. At 0.1 ms, `mailbot poll` drained
bench/ingest.py's 10,000 mails 2 to 3 % faster in the median of alternating rounds (4 of
5 rounds faster in one run, 2 of 3 in another), with no more CPU a message.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0001


def hand_over_often() -> None:
    """Make a thread that holds the GIL hand it over after 0.1 ms to one that waits."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
