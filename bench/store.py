"""Storing analysed mail in place: the main process's share of ingestion, without IMAP or SMTP.

    .venv/bin/python bench/store.py [--count 2000] [--rounds 3]

The synthetic support mails of bench/ingest.py are parsed, identified and classified first.
Each round then stores them into a new SQLite database with the shipped configuration,
rules and templates, as many messages a transaction as `mailbot poll` stores: tickets,
follow-ups, events, SLA dues and queued auto-replies (none is sent). Prints the milliseconds
a message of each round, the best of them, and the SQL statements a round ran.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import DOMAIN, SECRET, shipped_config
from synthetic import support_mails

from mailbot.analysis import Decision, PendingAnalysis
from mailbot.app import open_app
from mailbot.config import settings_from_mapping
from mailbot.conversation.ids import ThreadSigner
from mailbot.ingest import Incoming, Outcome
from mailbot.logs import configure_logging
from mailbot.poller import COMMIT_EVERY

PER_TRANSACTION = COMMIT_EVERY


class Analysed(PendingAnalysis):
    """Decisions made before the clock starts."""

    def __init__(self, decisions: list[Decision]) -> None:
        self._decided = decisions
        self.waited = 0.0
        self.analysed_here = 0

    def decisions(self) -> list[Decision]:
        return self._decided


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging("json", "warning")
    signer = ThreadSigner(SECRET.encode())
    mails = list(support_mails(args.count,
                               reply_id=lambda n: signer.new_id(n, "auto_reply", DOMAIN)))
    results = []
    for number in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="mbstore-") as folder:
            seconds, statements = store_round(mails, Path(folder))
        results.append(seconds)
        print(f"round {number}: {1000 * seconds / len(mails):.3f} ms a message, "
              f"{sum(statements.values()):,} statements", flush=True)
    print(f"best: {1000 * min(results) / len(mails):.3f} ms a message stored")
    for statement, count in statements.most_common():
        print(f"{count:8,}  {statement}")


def store_round(mails: Sequence[bytes], folder: Path) -> tuple[float, Counter[str]]:
    config = shipped_config(folder, f"sqlite:///{folder / 'mailbot.db'}")
    app = open_app(settings_from_mapping(config, folder))
    ingestor = app.ingestor()
    items = [Incoming(raw, f"imap:support/INBOX;uid={n}") for n, raw in enumerate(mails, 1)]
    chunks = [items[start:start + PER_TRANSACTION]
              for start in range(0, len(items), PER_TRANSACTION)]
    analysed = [Analysed(ingestor.prepare(chunk).decisions()) for chunk in chunks]
    statements: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split())[:100]] += 1

    event.listen(app.db.engine, "before_cursor_execute", count)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    for chunk, prepared in zip(chunks, analysed, strict=True):
        ingestor.ingest_many(chunk, mailbox="support", prepared=prepared,
                             stored=lambda _item, outcome: outcomes.append(outcome))
    seconds = time.perf_counter() - started
    event.remove(app.db.engine, "before_cursor_execute", count)
    app.db.engine.dispose()
    assert len(outcomes) == len(mails) and not any(o.quarantined for o in outcomes)
    return seconds, statements


if __name__ == "__main__":
    main()
