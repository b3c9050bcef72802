"""Parsing and classifying messages in worker processes, while the main process stores.

A backlog is analysed ahead: a worker parses and classifies the next messages while the
main process writes the current ones. Each chunk goes to the workers as jobs of a few mails;
when the main process needs a chunk, it analyses itself the jobs no worker has begun, and
while it waits for the others, the last jobs of the chunks queued after it. Whichever side
is slower, neither waits for long.
What a worker returns is exactly what `pipeline.analyze` returns in the main process; a
worker that dies, hangs or cannot be started costs only time: its chunk is analysed in the
main process.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
import weakref
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
JOB_MAILS = 10  # mails a worker job: about 10 ms of analysis, the longest wait for one
QUEUED_PER_THREAD = 8  # chunks a thread may take jobs back from; later ones push out older


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
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._warming: Future[list[Decision]] | None = None
        self._inputs: tuple[object, ...] = ()
        self._blob: bytes | None = None
        self._generation = 0
        # By thread, the chunks it submitted and has not taken yet; held only by the caller.
        self._queued: dict[int, list[weakref.ref[PendingAnalysis]]] = {}

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
        """Start analysing `raws` in the workers, as jobs of `JOB_MAILS` mails."""
        jobs: list[_Job] = []
        with self._lock:
            blob = self._inputs_blob(inputs)
            if blob is not None and self.workers > 0:
                try:
                    executor = self._running(blob)
                    for start in range(0, len(raws), JOB_MAILS):
                        part = list(raws[start:start + JOB_MAILS])
                        jobs.append(_Job(start, start + len(part), executor.submit(
                            _work, self._generation, blob, part)))
                except Exception as exc:
                    for job in jobs:
                        job.cancel()
                    jobs = []
                    self._unavailable(exc)
        pending = PendingAnalysis(raws, inputs, jobs, self)
        if jobs:
            thread = threading.get_ident()
            queued = [ref for ref in self._queued.get(thread, []) if ref() is not None]
            queued.append(weakref.ref(pending))
            self._queued[thread] = queued[-QUEUED_PER_THREAD:]
        return pending

    def taken(self, pending: PendingAnalysis) -> None:
        """`pending` is being decided: no other chunk takes its jobs back from now on."""
        queued = self._queued.get(threading.get_ident(), [])
        queued[:] = [ref for ref in queued if ref() not in (pending, None)]

    def take_one_back(self) -> bool:
        """Analyse here the last job no worker has begun among this thread's queued chunks.

        False when every job of them has begun.
        """
        for ref in reversed(self._queued.get(threading.get_ident(), [])):
            pending = ref()
            if pending is not None and pending.take_last_back():
                return True
        return False

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


@dataclass(slots=True)
class _Job:
    """Mails `start` to `end` of a chunk: sent to a worker, or taken back and decided here."""

    start: int
    end: int
    future: Future[list[Decision]]
    decided: list[Decision] | None = None

    def cancel(self) -> bool:
        """Take the job back from the workers; False once one has begun it."""
        return self.future.cancel()


class PendingAnalysis:
    """The decisions about a chunk: from the workers when they took it, else made here.

    The jobs no worker has begun when the decisions are asked for are analysed here. Only
    the thread that submitted a chunk takes its jobs back.
    """

    def __init__(self, raws: Sequence[bytes], inputs: AnalysisInputs, jobs: list[_Job],
                 pool: AnalysisPool | None) -> None:
        self._raws = raws
        self._inputs = inputs
        self._jobs = jobs
        self._pool = pool
        self.waited = 0.0  # seconds the caller waited for a worker's answer
        self.analysed_here = 0 if jobs else len(raws)  # mails analysed in this process

    @classmethod
    def here(cls, raws: Sequence[bytes], inputs: AnalysisInputs) -> PendingAnalysis:
        """Decisions made in this process when asked for."""
        return cls(raws, inputs, [], None)

    def in_workers(self) -> int:
        """How many of the chunk's mails a worker has begun or finished analysing."""
        return sum(job.end - job.start for job in self._jobs
                   if not job.future.cancelled()
                   and (job.future.running() or job.future.done()))

    def take_last_back(self) -> bool:
        """Analyse here the last job no worker has begun; False when all have begun."""
        for job in reversed(self._jobs):
            if job.decided is not None:
                continue
            if not job.cancel():
                return False  # the workers take jobs in order: the earlier ones have begun
            self._decide_here(job)
            return True
        return False

    def decisions(self) -> list[Decision]:
        pool = self._pool
        if not self._jobs or pool is None:
            return analyze_all(self._raws, self._inputs)
        pool.taken(self)
        while self.take_last_back():
            pass
        try:
            for job in self._jobs:
                if job.decided is None:
                    job.decided = self._answer(job, pool)
        except Exception as exc:
            for job in self._jobs:
                job.cancel()
            pool.failed(exc)
            for job in self._jobs:
                if job.decided is None:
                    self._decide_here(job)
        return [decision for job in self._jobs for decision in job.decided or ()]

    def _answer(self, job: _Job, pool: AnalysisPool) -> list[Decision]:
        """A worker's decisions on `job`; meanwhile, later chunks' jobs are analysed here."""
        while not job.future.done() and pool.take_one_back():
            pass
        started = time.monotonic()
        decided = job.future.result(timeout=pool.timeout)
        self.waited += time.monotonic() - started
        if len(decided) != job.end - job.start:
            raise AnalysisFailed(f"{len(decided)} decisions for {job.end - job.start} mails")
        return decided

    def _decide_here(self, job: _Job) -> None:
        job.decided = analyze_all(self._raws[job.start:job.end], self._inputs)
        self.analysed_here += job.end - job.start
