"""Analysis in worker processes: the same decisions as in place, and nothing lost to a worker."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS
from sqlmodel import select
from structlog.testing import capture_logs

from mailbot.analysis import (
    JOB_MAILS,
    AnalysisInputs,
    AnalysisPool,
    PendingAnalysis,
)
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
            decision.classification, decision.notes, decision.visible_text, decision.automatic)


def test_a_worker_decides_exactly_what_the_main_process_decides(pool: AnalysisPool) -> None:
    """Parsed message, customer, severity, rule hits, the text the sender wrote and why a
    machine wrote the mail are the same from a worker."""
    raws = [mail(1, "Complete outage: site is down"), mail(2, "How do I add a user?"),
            b"\x00\x01 not a mail", *(p.read_bytes() for p in
                                      sorted((REPO / "mailbot" / "samples").glob("*.eml"))),
            *(p.read_bytes() for p in sorted((CORPUS / "autoreplies").glob("*.eml"))[:5])]
    inputs = AnalysisInputs(POLICY, DIRECTORY, RuleBook(REPO / "rules"))
    expected = [summary(d) for d in PendingAnalysis.here(raws, inputs).decisions()]
    actual = [summary(d) for d in pool.submit(raws, inputs).decisions()]
    assert expected == actual
    assert sum(1 for d in actual if d[0] != "rejected" and d[-1] is not None) >= 5


def test_a_worker_that_dies_costs_only_time(pool: AnalysisPool) -> None:
    """The chunk of a crashed worker is analysed in the main process; the next gets a worker."""
    inputs = AnalysisInputs(POLICY, DIRECTORY, DiesInAWorker())
    with capture_logs() as logs:
        pending = begun_in_a_worker(pool.submit([mail(1), mail(2)], inputs), 2)
        decisions = pending.decisions()
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


def ready_pool(pool: AnalysisPool, inputs: AnalysisInputs) -> AnalysisPool:
    deadline = time.monotonic() + 60
    while not pool.ready(inputs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.ready(inputs)
    return pool


def begun_in_a_worker(pending: PendingAnalysis, mails: int) -> PendingAnalysis:
    deadline = time.monotonic() + 30
    while pending.in_workers() < mails and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending.in_workers() >= mails
    return pending


def worker_pids(pool: AnalysisPool) -> list[int]:
    executor = pool._executor
    assert executor is not None
    return [process.pid for process in executor._processes.values()]


def test_jobs_no_worker_has_begun_are_analysed_here_while_it_works(pool: AnalysisPool) -> None:
    """With the worker held up, the main process decides what it has not begun: the tail of
    the chunk it asks for, then the chunk queued after it; decisions come whole, in order."""
    subjects = ["Complete outage: site is down", "How do I add a user?"]
    first = [mail(n, subjects[n % 2]) for n in range(5 * JOB_MAILS)]
    second = [mail(n, subjects[n % 2]) for n in range(100, 100 + 3 * JOB_MAILS)]
    inputs = AnalysisInputs(POLICY, DIRECTORY, RuleBook(REPO / "rules"))
    expected = [[summary(d) for d in PendingAnalysis.here(raws, inputs).decisions()]
                for raws in (first, second)]
    ready_pool(pool, inputs)
    pids = worker_pids(pool)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(1.0, lambda: [os.kill(pid, signal.SIGCONT) for pid in pids])
    try:
        pending = [pool.submit(raws, inputs) for raws in (first, second)]
        begun_in_a_worker(pending[0], JOB_MAILS)
        time.sleep(0.2)  # the executor fills the stopped worker's queue as far as it goes
        begun = pending[0].in_workers()
        assert 0 < begun < len(first)
        resume.start()
        decided = [[summary(d) for d in p.decisions()] for p in pending]
    finally:
        resume.cancel()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert decided == expected
    assert pending[0].analysed_here == len(first) - begun
    assert pending[1].analysed_here == len(second)  # all of it, while the worker was held up
    assert pending[1].waited == 0.0


def test_a_chunk_the_worker_took_is_decided_by_it(pool: AnalysisPool) -> None:
    raws = [mail(n) for n in range(JOB_MAILS + 3)]
    inputs = AnalysisInputs(POLICY, DIRECTORY, DefaultSeverity("P3"))
    pending = begun_in_a_worker(pool.submit(raws, inputs), len(raws))
    assert [summary(d) for d in pending.decisions()] == \
        [summary(d) for d in PendingAnalysis.here(raws, inputs).decisions()]
    assert pending.analysed_here == 0


def test_the_workers_are_ready_only_once_started(pool: AnalysisPool) -> None:
    """Asking starts them; they are ready when they have imported and unpickled the inputs."""
    inputs = AnalysisInputs(POLICY, DIRECTORY, RuleBook(REPO / "rules"))
    assert not pool.started
    assert not pool.ready(inputs)
    assert pool.started
    ready_pool(pool, inputs)
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
