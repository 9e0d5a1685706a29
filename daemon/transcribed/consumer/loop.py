"""The single consumer: carries jobs from their sources to their ends, in order of arrival.

One job at a time; on a GPU, the next file is decoded meanwhile (prefetch.py), and several short
files may share one model call (`process_together`), each still finished on its own. Jobs come
from a list of job sources (the inbox first, then the libraries: spool/seam.py), each job's end
goes back to the source that claimed it. What happens to a job is decided by one pure function
(outcome.decide: failed with a report, retried later, or every file in flight given back and the
daemon exits) and carried out in one place, endings.Endings.

The storage monitor (spool/storage.py) is asked on each turn and before each claim: below its
floor no file is claimed; while storage refuses writes nothing is started either, and the loop
only beats and looks again each second (jobs that waited for storage go on first after). A
pause or quiet hours (gate.py) start nothing either, and look at the inbox only to count it.
With several models, files that use a loaded one are claimed first (model_order.py).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import structlog

from .. import durable, logs
from ..config import Config
from ..engine.base import Engine
from ..engine.resident import ResidentModels
from ..errors import FailedIn, StorageFault
from ..hooks import Hooks
from ..intake.arrivals import Arrivals
from ..intake.backlog import BacklogAudio
from ..operations.stats import Stats
from ..spool.jobs import Job, intake_of
from ..spool.seam import JobSource, Spool
from ..spool.storage import CHECK_SECONDS
from ..transcription.alignment import Aligner
from ..transcription.diarization import Diarizer
from ..transcription.pipeline import Pipeline, Prepared
from .endings import Endings
from .gate import Gate, PausedNow
from .model_order import model_order
from .outcome import Action, decide
from .prefetch import Prefetch, overlap_wanted
from .residency import Residency
from .sharing import SharedCalls, batching_wanted, packing_wanted, share_groups
from .storage_watch import StorageWatch

log = logs.get_logger()

#: A paused daemon looks at the pause file (and the quiet hours) at least this often.
PAUSE_LOOK_SECONDS = 2.0

T = TypeVar("T")


class Consumer:
    """Claims complete files in arrival order and runs each through the pipeline."""

    def __init__(self, config: Config, spool: Spool, sources: list[JobSource], engine: Engine,  # noqa: PLR0913 - wired once, by service.py
                 arrivals: Arrivals, wake: threading.Event, *, on_beat: Callable[[], None] = lambda: None,
                 stats: Stats | None = None, aligner: Aligner | None = None,
                 diarizer: Diarizer | None = None, beat_interval: float = 5.0,
                 hooks: Hooks | None = None) -> None:
        self.config = config
        #: The completion hooks: told each job's end before its finish plan (hooks/).
        self.hooks = hooks
        self.beat_interval = beat_interval
        self.stats = stats or Stats()
        self.spool = spool
        #: Where jobs come from, asked in this order (the inbox first, then the libraries).
        self.sources = sources
        self.arrivals = arrivals
        self.wake = wake
        self.on_beat = on_beat
        #: The Whisper models loaded, within the budget (one model: the default alone).
        self.resident = ResidentModels(engine, on_change=lambda r: self.stats.models_seen(r.describe()))
        self.pipeline = Pipeline(config, engine, self._beat_in_job, spool.worker.name, self.stats,
                                 aligner, diarizer, resident=self.resident)
        #: Files that run with a loaded model first (model_order.py), and whether a job may start (gate.py).
        self.order, self.gate = model_order(config, self.resident), Gate(config, self.stats)
        #: The models' idle unload (model.idle_unload_seconds), and the waiting audio's durations.
        self.residency = Residency(config, engine, self.stats, aligner, diarizer)
        #: The audio of the jobs waiting for a retry, for the queue's figures.
        self.retries_audio = BacklogAudio()
        #: Carries out each job's end; holds the jobs in flight and those waiting for a retry.
        self.endings = Endings(spool, sources, self.stats, hooks)
        self.backlog = self.endings.backlog
        self.in_flight = self.endings.in_flight
        self.storage = spool.storage
        #: The storage monitor, asked on each turn and before each claim (storage_watch.py).
        self.watch = StorageWatch(spool.storage, self.stats, self.endings)
        #: Batching and packing of short files (sharing.py): by default batching on a GPU, packing
        #: on the CPU.
        self.sharing = SharedCalls(config, self.pipeline, batching=batching_wanted(config, engine),
                                   packing=packing_wanted(config, engine))
        self.batching, self.packing = self.sharing.batching, self.sharing.packing
        self.prefetch = self._make_prefetch(engine) if overlap_wanted(config, engine) else None
        self._next_rescan = 0.0

    # --- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process jobs until `stop` is set (the current job is finished first; files decoded
        ahead go back to the inbox)."""
        self._take_back_orphans()
        try:
            while not stop.is_set():
                self.beat()
                if self.watch.blocked():
                    self.watch.wait(self.wake, stop, self.beat_interval)
                    continue
                if self.endings.storage_waits:
                    self._carry_on_after_storage()
                    continue
                if self.gate.closed() is not None:
                    self._while_paused(stop)
                    continue
                job = self.next_job()
                if job is None:
                    self._wait_for_work(stop)
                    continue
                try:
                    together = self.sharing.files_at_most()
                    more = self._claim(together - 1) if together > 1 else []
                    if more:
                        self.process_together([job, *more])
                    else:
                        self.process(job)
                except PausedNow:
                    self.give_back_in_flight(reason="transcribed pause --now")
        finally:
            self._give_back_prefetched()

    @property
    def current(self) -> Job | None:
        """A job in flight (the one running, when there is only one)."""
        return next(iter(self.in_flight.values()), None)

    def next_job(self) -> Job | None:
        """A job decoded ahead first, then a due retry or adopted job, then the oldest complete
        file of the first source that has one."""
        if self.prefetch is not None and (ahead := self.prefetch.first()) is not None:
            return ahead
        return self._next_waiting_job()

    def _next_waiting_job(self) -> Job | None:
        now = time.monotonic()
        if now >= self._next_rescan:
            self._take_back_orphans()
            self._set_aside()
            self._next_rescan = now + self.config.watch.rescan_seconds
        for job_id, (due, job) in sorted(self.backlog.items(), key=lambda item: item[1][0]):
            if due <= now:
                del self.backlog[job_id]
                return job
        self.wake.clear()
        claimed = self._claim(1)
        return claimed[0] if claimed else None

    def _claim(self, up_to: int) -> list[Job]:
        """Claim up to `up_to` complete files, asking each source in turn (the inbox first);
        none while a folder refuses finished work, or storage is short."""
        self.watch.check()
        self.spool.retry_held()
        if self.spool.paused:
            return []
        claimed: list[Job] = []
        for source in self.sources:
            if len(claimed) >= up_to:
                break
            claimed += source.claim(up_to - len(claimed), self.order)
        self._count_retries()
        return claimed

    def _wait_for_work(self, stop: threading.Event) -> None:
        waits = [max(0.0, self._next_rescan - time.monotonic()), self.beat_interval]
        if (settling := self.arrivals.next_check_in()) is not None:
            waits.append(settling)
        if self.backlog:
            waits.append(max(0.0, min(due for due, _ in self.backlog.values()) - time.monotonic()))
        unload_in = self.residency.idle(nothing_waits=not self.in_flight and not self.backlog)
        if unload_in is not None:
            waits.append(unload_in)
        if self.storage.waiting:  # below the floor: claims go on as soon as it is passed
            waits.append(CHECK_SECONDS)
        if not stop.is_set():
            self.wake.wait(timeout=max(0.01, min(waits)))

    def _while_paused(self, stop: threading.Event) -> None:
        """No job starts (gate.py): files decoded ahead go back to the inbox, the sources are
        looked at (what arrives is counted, nothing claimed), the models leave memory after the
        gate's delay, and the pause is looked at again every PAUSE_LOOK_SECONDS."""
        self._give_back_prefetched(reason="the daemon is paused; it was claimed ahead", closing=False)
        for source in self.sources:
            source.claim(0)
        waits = [PAUSE_LOOK_SECONDS, self.beat_interval]
        unload_in = self.residency.idle(nothing_waits=True, after=self.gate.unload_after)
        waits += [w for w in (unload_in, self.gate.seconds_left()) if w is not None]
        self.wake.clear()
        if not stop.is_set():
            self.wake.wait(timeout=max(0.01, min(waits)))

    # --- storage ---------------------------------------------------------------------------------

    def _carry_on_after_storage(self) -> None:
        """Carry on the oldest job that waited for storage with its work kept: its transcript
        written (not transcribed again), or its end recorded. Refused again, it waits again."""
        job_id = next(iter(self.endings.storage_waits))
        wait = self.endings.storage_waits.pop(job_id)
        self.in_flight[job_id] = wait.job
        log.info("job.resumed", job_id=job_id, file=str(wait.job.relpath),
                 reason="storage takes writes again")
        self._attempt(wait.job, wait.resume, then=wait.then)

    def _count_retries(self) -> None:
        """For the reports: this worker's jobs waiting for a retry wait too, with their audio
        where their headers tell it (read once per file: backlog.py)."""
        names = {job.source: str(job.relpath) for _, job in self.backlog.values()}
        durations = self.retries_audio.durations(names)
        self.stats.retries_waiting({name: durations.get(path) for path, name in names.items()})

    def _load_models_again(self) -> None:
        """After an idle unload the models come back before the job starts (its `model_load`
        timing). If they cannot, the files in flight go back to the inbox and the error ends
        the consumer, as a failed load at start would."""
        try:
            seconds = self.residency.ensure_loaded(self.beat, self.beat_interval)
        except BaseException:
            self.give_back_in_flight(reason="the models could not be loaded again after the idle unload")
            raise
        if seconds is not None:
            self.pipeline.pending_model_load = seconds

    def _take_back_orphans(self) -> None:
        self.spool.sweep()
        for job in self.spool.adopt_orphans(self._take_back):
            self.backlog[job.id] = (0.0, job)

    def _take_back(self, job_dir: Path) -> Job | None:
        """A job found in this worker's folder after a crash, read back by the source that
        claimed it."""
        return self.endings.sources[intake_of(job_dir)].take_back(job_dir)

    def _set_aside(self) -> None:
        """What a source claims only to fail at once (a sidecar left in the inbox without its
        audio) goes to failed/ with a report, so that nothing lies there for ever unexplained."""
        self.spool.retry_held()
        if self.spool.paused:
            return
        for source in self.sources:
            for job, refusal in source.set_aside():
                self.in_flight[job.id] = job
                with self._context(job):
                    self.endings.carry_out(job, decide(refusal, job.attempts, self.config.jobs),
                                           stage="arrival")

    def beat(self) -> None:
        """The consumer is alive and making progress (feeds systemd's watchdog and /healthz)."""
        self.stats.beat()
        self.stats.paused(self.spool.paused)
        self.on_beat()

    def _beat_in_job(self) -> None:
        """A beat from inside a job (each stage, each decoded chunk); files claimed ahead that
        have waited too long behind it are given back to the inbox here, and a share that fills
        meanwhile is told at once, not when the job ends."""
        self.beat()
        self.watch.check()
        self.gate.give_back_now()  # `transcribed pause --now`: PausedNow unwinds the job
        if self.prefetch is not None:
            for job in self.prefetch.overdue():
                self.endings.requeue(job, reason="waited behind a long job; any daemon on the inbox "
                                     "may take it")

    # --- one job ---------------------------------------------------------------------------------

    def process(self, job: Job) -> None:
        """Run one job and move its file to where its outcome says; meanwhile, decode the next."""
        began, ahead = self._begin(job)
        if not began:
            return
        self._prefetch_next()
        if ahead is not None:
            self._attempt(job, functools.partial(self.pipeline.finish, ahead), then=self.endings.complete)
        else:
            self._attempt(job, functools.partial(self.pipeline.run, job), then=self.endings.complete)

    def process_together(self, jobs: list[Job]) -> None:
        """Several short files: decode and find speech for each, decode their speech in shared
        batches (one model call per group of files with the same language and options), then
        finish each on its own. A shared call that fails is retried file by file."""
        prepared = []
        for job in jobs:
            began, ahead = self._begin(job)
            if began:
                ready = self._attempt(job, functools.partial(self._ready_to_share, job, ahead))
                if ready is not None:
                    prepared.append(ready)
        for group in share_groups([p for p in prepared if self.sharing.may_share(p)]):
            # A lost GPU in the shared call is settled as the first job's outcome (every file in
            # flight goes back); any other failure leaves each file to be transcribed alone.
            results = self._attempt(group[0].job, functools.partial(self.sharing.transcribe, group))
            for item, result in zip(group, results or [None] * len(group), strict=True):
                self._attempt(item.job, functools.partial(self.pipeline.finish, item, result),
                              then=self.endings.complete)
        for item in (p for p in prepared if not self.sharing.may_share(p)):
            self._attempt(item.job, functools.partial(self.pipeline.finish, item), then=self.endings.complete)

    def _ready_to_share(self, job: Job, ahead: Prepared | None) -> Prepared:
        prepared = ahead or self.pipeline.prepare(job)
        if prepared.speech is None:
            self.pipeline.find_speech(prepared)
        return self.pipeline.decide_language(prepared)

    def _begin(self, job: Job) -> tuple[bool, Prepared | None]:
        """Take what was prepared ahead of the job, if anything, and start it (count the
        attempt). False: it was a poison file and went to failed/."""
        ahead = None
        if self.prefetch is not None and self.prefetch.holds(job):
            ahead = self.prefetch.take(job)
        self.in_flight[job.id] = job
        with self._context(job):
            outcome = decide(None, job.attempts, self.config.jobs)
            if outcome.action is not Action.RUN:
                self.endings.carry_out(job, outcome, stage="recovery")
                return False, None
            self._load_models_again()
            try:
                self.spool.start_attempt(job)
            except StorageFault as fault:  # the count cannot be written: not started at all
                self.endings.carry_out(job, decide(fault, job.attempts, self.config.jobs), "start", fault)
                return False, None
            log.info("job.started", attempt=job.attempts)
        self.stats.job_started(str(job.relpath), job.id)
        return True, ahead

    @contextlib.contextmanager
    def _context(self, job: Job) -> Iterator[None]:
        """The job's id and file on every log event, and a copy of each in the job's own log."""
        with structlog.contextvars.bound_contextvars(job_id=job.id, file=str(job.relpath)), \
                logs.open_job_log(job.log_path) as job_log, logs.job_log(job_log):
            yield

    def _attempt(self, job: Job, work: Callable[[], T],
                 then: Callable[[Job, T], None] | None = None) -> T | None:
        """Run one step of a job; if it raises, decide and carry out the job's outcome (then None).
        On success, `then` (completing the job) runs in the same job context; a StorageFault there
        (its end could not be recorded) keeps the step's value for when storage is back."""
        with self._context(job):
            try:
                value = work()
            except Exception as exc:  # noqa: BLE001 - every failure is decided by outcome.decide
                stage, error = (exc.stage, exc.error) if isinstance(exc, FailedIn) else ("finish", exc)
                reachable = durable.reachable(job.source) is True
                outcome = decide(error, job.attempts, self.config.jobs, reachable)
                self.endings.carry_out(job, outcome, stage, error, then=then)
                return None
            if then is not None:
                try:
                    then(job, value)
                except StorageFault as fault:
                    self.endings.carry_out(job, decide(fault, job.attempts, self.config.jobs), "finish",
                                           fault, resume=functools.partial(_given, value), then=then)
                    return None
            return value

    # --- decoding ahead --------------------------------------------------------------------------

    def _make_prefetch(self, engine: Engine) -> Prefetch:
        own = Pipeline(self.config, engine, lambda: None, self.spool.worker.name, Stats(),
                       resident=self.resident)
        return Prefetch(own, self.config.overlap, self._context)

    def _prefetch_next(self) -> None:
        """Claim the next files and start decoding them while this one is transcribed (prefetch.py)."""
        if self.prefetch is not None:
            self.prefetch.fill(self._claim, self.in_flight)

    def _give_back_prefetched(self, reason: str = "the daemon stops; it was claimed ahead",
                              closing: bool = True) -> None:
        """Stopping (or paused): files decoded ahead go back to the inbox, for this or another daemon."""
        if self.prefetch is not None:
            for job in self.prefetch.close() if closing else self.prefetch.drop():
                self.endings.requeue(job, reason=reason)

    def give_back_in_flight(self, reason: str) -> list[Path]:
        """Give the files of every job in flight back to the inbox (the shutdown grace ran out:
        called from the main thread while the consumer is still inside the engine)."""
        return self.endings.give_back_in_flight(reason)


def _given(value: T) -> T:
    """What a step gave, given again (a job's end retried once storage takes writes)."""
    return value
