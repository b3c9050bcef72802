"""Analysis in worker processes: the same decisions as in place, and nothing lost to a worker."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select
from structlog.testing import capture_logs

from mailbot.analysis import AnalysisInputs, AnalysisPool, PendingAnalysis, WorkSharing
from mailbot.clock import FrozenClock
from mailbot.identify import CustomerDirectory, CustomerMatch, CustomerRecord, compile_patterns
from mailbot.ingest import Ingestor
from mailbot.mail.imap import ImapEndpoint
from mailbot.parsing import ParsedMessage
from mailbot.pipeline import Analysis, Classification, DefaultSeverity, IngestPolicy, Rejection
from mailbot.poller import MailboxPlan, MailboxPoller
from mailbot.rules.book import RuleBook
from mailbot.store import Database
from mailbot.store.models import Ticket
from mailbot.testing import DovecotServer

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
POLICY = IngestPolicy(10_000_000, compile_patterns([r"customer id:\s*([A-Z]+-\d+)"]))
DIRECTORY = CustomerDirectory([CustomerRecord("RC-10001", "Rainbow Cafe", ("rainbow.example",),
                                              (), None, "extended")])


def mail(n: int, subject: str = "problem") -> bytes:
    return (f"From: customer{n}@rainbow.example\r\nTo: support@example.test\r\n"
            f"Subject: {subject} {n}\r\nMessage-ID: <a{n}@rainbow.example>\r\n"
            f"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\nCustomer ID: RC-{10000 + n}\r\n"
            "The checkout page shows a blank screen since this morning.\r\n").encode()


class DiesInAWorker:
    """A classifier that kills the process it runs in, unless that is the main process."""

    def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification:
        if multiprocessing.parent_process() is not None:
            os._exit(3)
        return Classification("P2", reason="classified in the main process")


@pytest.fixture
def pool() -> Iterator[AnalysisPool]:
    workers = AnalysisPool(1)
    yield workers
    workers.close()


def summary(decision: object) -> tuple[object, ...]:
    if isinstance(decision, Rejection):
        return ("rejected", decision.key, decision.reason)
    assert isinstance(decision, Analysis)
    return (decision.key, decision.raw_sha256, decision.message, decision.customer,
            decision.classification, decision.notes)


def test_a_worker_decides_exactly_what_the_main_process_decides(pool: AnalysisPool) -> None:
    """Parsed message, customer, severity and rule hits are the same from a worker."""
    raws = [mail(1, "Complete outage: site is down"), mail(2, "How do I add a user?"),
            b"\x00\x01 not a mail", *(p.read_bytes() for p in
                                      sorted((REPO / "mailbot" / "samples").glob("*.eml")))]
    inputs = AnalysisInputs(POLICY, DIRECTORY, RuleBook(REPO / "rules"))
    expected = [summary(d) for d in PendingAnalysis.here(raws, inputs).decisions()]
    actual = [summary(d) for d in pool.submit(raws, inputs).decisions()]
    assert expected == actual


def test_a_worker_that_dies_costs_only_time(pool: AnalysisPool) -> None:
    """The chunk of a crashed worker is analysed in the main process; the next gets a worker."""
    inputs = AnalysisInputs(POLICY, DIRECTORY, DiesInAWorker())
    with capture_logs() as logs:
        decisions = pool.submit([mail(1), mail(2)], inputs).decisions()
    assert "analysis.worker_failed" in [entry["event"] for entry in logs]
    assert [d.classification.severity for d in decisions if isinstance(d, Analysis)] == \
        ["P2", "P2"]
    healthy = AnalysisInputs(POLICY, DIRECTORY, DefaultSeverity("P4"))
    again = pool.submit([mail(3)], healthy).decisions()
    assert [d.classification.severity for d in again if isinstance(d, Analysis)] == ["P4"]


def test_a_classifier_that_cannot_travel_is_run_in_place(pool: AnalysisPool) -> None:
    """Inputs that cannot be pickled (a class made inside a function) are used here instead."""

    class Local:
        def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification:
            return Classification("P1", reason="local")

    with capture_logs() as logs:
        decisions = pool.submit([mail(1)], AnalysisInputs(POLICY, DIRECTORY, Local())).decisions()
    assert "analysis.inputs_not_portable" in [entry["event"] for entry in logs]
    assert [d.classification.reason for d in decisions if isinstance(d, Analysis)] == ["local"]


def test_a_reloaded_rule_set_reaches_the_workers(pool: AnalysisPool, tmp_path: Path) -> None:
    """After the rules change, the next chunk is classified by the new rules in the worker."""
    rule = ("rules:\n  - id: {id}\n    severity: {severity}\n"
            "    when: {{subject: {{contains: problem}}}}\n")
    (tmp_path / "10.yaml").write_text(rule.format(id="first", severity="P2"))
    book = RuleBook(tmp_path)
    inputs = AnalysisInputs(POLICY, DIRECTORY, book)
    first = pool.submit([mail(1)], inputs).decisions()
    (tmp_path / "10.yaml").write_text(rule.format(id="second", severity="P1"))
    assert book.reload().loaded
    second = pool.submit([mail(2)], inputs).decisions()
    assert [(d.classification.severity, d.classification.hits[0].rule_id)
            for d in (*first, *second) if isinstance(d, Analysis)] == \
        [("P2", "first"), ("P1", "second")]


def test_a_chunk_shared_with_the_main_process_is_decided_as_a_whole_in_order(
        pool: AnalysisPool) -> None:
    """The worker takes the head of the chunk, the main process its tail: same decisions."""
    raws = [mail(n, "Complete outage: site is down" if n % 2 else "How do I add a user?")
            for n in range(1, 9)]
    inputs = AnalysisInputs(POLICY, DIRECTORY, RuleBook(REPO / "rules"))
    expected = [summary(d) for d in PendingAnalysis.here(raws, inputs).decisions()]
    pool.sharing.kept = 3
    assert pool.sharing.split(len(raws)) == 3
    assert [summary(d) for d in pool.submit(raws, inputs).decisions()] == expected


def test_the_main_process_takes_more_of_each_chunk_while_it_waits_for_the_worker() -> None:
    sharing = WorkSharing()
    assert sharing.split(50) == 0
    sharing.answered(0.2, 50)  # waited: the worker is the slower side
    sharing.answered(0.2, 50)
    assert sharing.split(50) == 10
    for _ in range(10):
        sharing.answered(0.2, 50)
    assert sharing.split(50) == 25  # never more than half a chunk
    assert sharing.split(7) == 3
    sharing.answered(0.0, 50)  # the answer was there: give the worker one more
    assert sharing.split(50) == 24
    for _ in range(100):
        sharing.answered(0.0, 50)
    assert sharing.split(50) == 0


def test_the_workers_are_ready_only_once_started(pool: AnalysisPool) -> None:
    """Asking starts them; they are ready when they have imported and unpickled the inputs."""
    inputs = AnalysisInputs(POLICY, DIRECTORY, RuleBook(REPO / "rules"))
    assert not pool.started
    assert not pool.ready(inputs)
    assert pool.started
    deadline = time.monotonic() + 60
    while not pool.ready(inputs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.ready(inputs)
    decisions = pool.submit([mail(1)], inputs).decisions()
    assert [d.customer.customer_id for d in decisions if isinstance(d, Analysis)] == \
        ["RC-10001"]


def test_inputs_that_cannot_travel_never_make_the_workers_ready(pool: AnalysisPool) -> None:
    class Local:
        def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification:
            return Classification("P1", reason="local")

    with capture_logs() as logs:
        assert not pool.ready(AnalysisInputs(POLICY, DIRECTORY, Local()))
    assert "analysis.inputs_not_portable" in [entry["event"] for entry in logs]
    assert not pool.started


@pytest.mark.dovecot
def test_a_backlog_is_analysed_in_a_worker_and_every_mail_ticketed_once(
        dovecot: DovecotServer, db: Database, pool: AnalysisPool) -> None:
    """A pass over a backlog uses the worker, tickets every mail once and acks them all."""
    dovecot.append_many("INBOX", (mail(n) for n in range(60)))
    endpoint = ImapEndpoint(host=dovecot.host, port=dovecot.port, security="none",
                            username=dovecot.username, password=dovecot.password, timeout=5)
    plan = MailboxPlan(name="support", endpoint=endpoint, batch_size=20, commit_every=7)
    ingestor = Ingestor(db, POLICY, DefaultSeverity("P3"), FrozenClock(NOW), DIRECTORY,
                        pool=pool, parallel_from=10)
    poller = MailboxPoller(plan, ingestor, db, FrozenClock(NOW))
    assert ingestor.parallel(60)
    report = poller.run_pass()
    poller.close()
    assert (report.fetched, report.tickets, report.acked) == (60, 60, 60)
    assert pool.started
    with db.session() as session:
        subjects = sorted(t.subject for t in session.exec(select(Ticket)).all())
    assert subjects == sorted(f"problem {n}" for n in range(60))
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 60)


def test_a_worker_of_the_mailbot_command_imports_only_what_analysing_needs() -> None:
    """A spawned worker runs `python -m mailbot`'s main module as __mp_main__ first."""
    probe = ("import runpy, sys\n"
             "runpy.run_module('mailbot.__main__', run_name='__mp_main__', alter_sys=True)\n"
             "import mailbot.analysis\n"
             "print(sorted({'sqlalchemy', 'jinja2', 'imapclient', 'click'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
