"""Parsing and classifying messages in worker processes, while the main process stores.

A backlog is analysed a chunk ahead: a worker parses and classifies the next messages while
the main process writes the current ones and talks to the IMAP server. When the worker is the
slower of the two, the main process analyses the tail of each chunk itself (`WorkSharing`).
What a worker returns is exactly what `pipeline.analyze` returns in the main process; a
worker that dies, hangs or cannot be started costs only time: its chunk is analysed in the
main process.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from mailbot.heap import pause_collections, settle_after_startup
from mailbot.identify import CustomerDirectory
from mailbot.pipeline import Analysis, Classifier, IngestPolicy, Rejection, analyze
from mailbot.rules.book import RuleBook

log = structlog.get_logger("mailbot.analysis")

Decision = Analysis | Rejection | BaseException
CHUNK_TIMEOUT_S = 120.0  # far beyond any chunk's analysis: regex tests are bounded at 50 ms
STOP_TIMEOUT_S = 5.0  # for a terminated worker to exit
LATE_S = 0.002  # a worker's answer waited for longer than this came late


class AnalysisFailed(Exception):
    """Analysing a message raised in a worker process; the text names the original error."""


@dataclass(frozen=True, slots=True)
class AnalysisInputs:
    """What analysing a message reads besides its bytes."""

    policy: IngestPolicy
    directory: CustomerDirectory
    classifier: Classifier


def analyze_all(raws: Sequence[bytes], inputs: AnalysisInputs) -> list[Decision]:
    """Each message's analysis, or the exception analysing it raised."""
    decisions: list[Decision] = []
    for raw in raws:
        try:
            decisions.append(analyze(raw, inputs.policy, inputs.directory, inputs.classifier))
        except Exception as exc:
            decisions.append(exc)
    return decisions


class WorkSharing:
    """How many mails at the end of each chunk the main process analyses itself.

    The worker analyses a batch ahead while the main process stores the one before. When the
    main process had to wait for a chunk, the worker is the slower side: the next chunks leave
    more of their mails here (a tenth of a chunk more). When it did not wait, one fewer, so
    that a main process that is itself the slower side soon leaves the worker everything.
    At most half of a chunk stays here.
    """

    def __init__(self) -> None:
        self.kept = 0

    def split(self, count: int) -> int:
        """How many of a chunk of `count` mails, from its end, to analyse here."""
        return min(self.kept, count // 2)

    def answered(self, waited: float, count: int) -> None:
        """The worker's answer for a chunk of `count` mails was waited for `waited` seconds."""
        if waited > LATE_S:
            self.kept = min(count // 2, self.kept + max(1, count // 10))
        else:
            self.kept = max(0, self.kept - 1)


_worker_inputs: dict[int, AnalysisInputs] = {}


def _work(generation: int, inputs: bytes, raws: list[bytes]) -> list[Decision]:
    """In a worker: analyse `raws` with the inputs of `generation`, unpickled once.

    Called with no mails when the workers start, so that they have imported what analysing
    needs and unpickled the inputs by the time the first chunk comes.
    """
    known = _worker_inputs.get(generation)
    if known is None:
        _worker_inputs.clear()
        # Pickled by the parent from its own settings and rules; mail is only ever bytes here.
        known = _worker_inputs[generation] = pickle.loads(inputs)
        settle_after_startup()
    return [AnalysisFailed(f"{type(d).__name__}: {d}") if isinstance(d, BaseException) else d
            for d in analyze_all(raws, known)]


class AnalysisPool:
    """Worker processes that analyse chunks of messages; started at the first backlog."""

    def __init__(self, workers: int, *, timeout: float = CHUNK_TIMEOUT_S) -> None:
        self.workers = workers
        self.timeout = timeout
        self.sharing = WorkSharing()
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._warming: Future[list[Decision]] | None = None
        self._inputs: tuple[object, ...] = ()
        self._blob: bytes | None = None
        self._generation = 0

    @property
    def started(self) -> bool:
        """Whether worker processes are running (they start with the first backlog)."""
        return self._executor is not None

    def ready(self, inputs: AnalysisInputs) -> bool:
        """Whether the workers are up to take a chunk at once; starts them when none runs.

        Until they have started (imported what analysing needs, unpickled the inputs: about
        a second), chunks are better analysed in the main process than queued behind that.
        """
        with self._lock:
            if self._executor is None:
                self._start(inputs)
            warming = self._warming
            if warming is None or not warming.done():
                return False
            failure = None if warming.cancelled() else warming.exception()
        if failure is not None:  # started again at the next call
            self.failed(failure)
            return False
        return True

    def submit(self, raws: Sequence[bytes], inputs: AnalysisInputs) -> PendingAnalysis:
        """Start analysing `raws` in a worker; the result is ready when the caller needs it.

        The last `sharing.split` of them are left to the main process, analysed when the
        decisions are asked for, before waiting for the worker's.
        """
        future: Future[list[Decision]] | None = None
        kept = self.sharing.split(len(raws))
        with self._lock:
            blob = self._inputs_blob(inputs)
            if blob is not None and self.workers > 0:
                try:
                    future = self._running(blob).submit(
                        _work, self._generation, blob, list(raws[:len(raws) - kept]))
                except Exception as exc:
                    self._unavailable(exc)
        return PendingAnalysis(raws, inputs, future, self, kept=kept if future else 0)

    def close(self) -> None:
        with self._lock:
            self._stop_workers()

    def failed(self, exc: BaseException) -> None:
        """A worker's chunk did not come back (crash, hang): start afresh for the next one."""
        log.warning("analysis.worker_failed", error=repr(exc),
                    detail="chunk analysed in the main process; workers restarted")
        with self._lock:
            self._stop_workers()

    def _start(self, inputs: AnalysisInputs) -> None:
        blob = self._inputs_blob(inputs)
        if blob is None or self.workers <= 0:
            return
        try:
            self._running(blob)
        except Exception as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: Exception) -> None:
        log.warning("analysis.workers_unavailable", error=repr(exc),
                    detail="analysing in the main process")
        self._stop_workers()

    def _running(self, blob: bytes) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the daemon has threads (mailboxes, outbox, metrics) whose locks
            # a forked child would inherit in whatever state they were. A worker collects
            # nothing while it imports and unpickles its inputs, until its first chunk.
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=pause_collections)
            self._warming = self._executor.submit(_work, self._generation, blob, [])
            log.info("analysis.workers_started", workers=self.workers)
        return self._executor

    def _stop_workers(self) -> None:
        executor, self._executor = self._executor, None
        self._warming = None
        if executor is None:
            return
        processes: dict[Any, Any] = getattr(executor, "_processes", None) or {}
        for process in list(processes.values()):
            process.terminate()  # a hung worker would otherwise outlive the pool
        executor.shutdown(wait=False, cancel_futures=True)
        for process in list(processes.values()):
            process.join(timeout=STOP_TIMEOUT_S)  # reaped: no zombie, its CPU time counted

    def _inputs_blob(self, inputs: AnalysisInputs) -> bytes | None:
        """The pickled inputs, made anew only when the rules, directory or policy changed."""
        classifier = inputs.classifier
        portable = classifier.engine if isinstance(classifier, RuleBook) else classifier
        current = (inputs.policy, inputs.directory, portable)
        if len(self._inputs) == len(current) and all(
                a is b for a, b in zip(self._inputs, current, strict=True)):
            return self._blob
        self._inputs = current
        self._generation += 1
        try:
            self._blob = pickle.dumps(AnalysisInputs(inputs.policy, inputs.directory, portable))
        except Exception as exc:
            log.warning("analysis.inputs_not_portable", error=repr(exc),
                        detail="analysing in the main process")
            self._blob = None
        return self._blob


class PendingAnalysis:
    """The decisions about a chunk: from a worker when one took it, else made on demand.

    A worker may have taken all but the last `kept` mails: those are analysed here.
    """

    def __init__(self, raws: Sequence[bytes], inputs: AnalysisInputs,
                 future: Future[list[Decision]] | None, pool: AnalysisPool | None, *,
                 kept: int = 0) -> None:
        self._raws = raws
        self._inputs = inputs
        self._future = future
        self._pool = pool
        self._kept = kept
        self.waited = 0.0  # seconds the caller waited for a worker's answer

    @classmethod
    def here(cls, raws: Sequence[bytes], inputs: AnalysisInputs) -> PendingAnalysis:
        """Decisions made in this process when asked for."""
        return cls(raws, inputs, None, None)

    def decisions(self) -> list[Decision]:
        if self._future is None or self._pool is None:
            return analyze_all(self._raws, self._inputs)
        given = len(self._raws) - self._kept
        here = analyze_all(self._raws[given:], self._inputs)
        started = time.monotonic()
        try:
            decisions = self._future.result(timeout=self._pool.timeout)
            self.waited = time.monotonic() - started
            if len(decisions) != given:
                raise AnalysisFailed(f"{len(decisions)} decisions for {given} mails")
        except Exception as exc:
            self._future.cancel()
            self._pool.failed(exc)
            decisions = analyze_all(self._raws[:given], self._inputs)
        else:
            self._pool.sharing.answered(self.waited, len(self._raws))
        return [*decisions, *here]
