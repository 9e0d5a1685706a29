"""Carrying out a job's end: the only place the consumer lets a job go.

outcome.decide says what should happen; `Endings.carry_out` does it: failed with a report, a
retry after a delay, a wait for an unreachable folder (the attempt not counted), a wait for
storage (a full or read-only filesystem: the attempt not counted, the work done so far kept in
`storage_waits` and carried on by the consumer once writes go through), or every file in flight
given back when the GPU is lost. `complete` ends a transcribed job, `requeue` gives a file
back untouched (shutdown, a file claimed ahead that waited too long). Each end is sent to the job
source that claimed the job (`Job.intake`), which moves its files. Each end happens once,
whichever thread asks first: the consumer, or the main thread when the shutdown grace runs out
while the consumer is inside the engine.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import logs
from ..errors import GpuLost, StorageFault
from ..hooks import Hooks
from ..operations.stats import Stats
from ..spool.jobs import Job
from ..spool.seam import JobSource, Spool
from ..transcription.pipeline import Finished
from .outcome import Action, Outcome

log = logs.get_logger()


@dataclass(frozen=True)
class StorageWait:
    """A job whose work is done so far, waiting for storage to take its writes: `resume` gives
    what the job's step gave (the finished transcript, written now), then `then` ends the job."""

    job: Job
    resume: Callable[[], Any]
    then: Callable[[Job, Any], None] | None


class Endings:
    """Ends jobs: done, failed, retried later, waiting for their folder, or given back."""

    def __init__(self, spool: Spool, sources: list[JobSource], stats: Stats,
                 hooks: Hooks | None = None) -> None:
        self.spool = spool
        #: Where each job's end is carried out, by the name each job records (`Job.intake`).
        self.sources = {source.name: source for source in sources}
        self.stats = stats
        #: The completion hooks: told each job's end before its finish plan (hooks/).
        self.hooks = hooks
        #: Jobs already in this worker's folder (adopted, or waiting for a retry): id -> due time.
        self.backlog: dict[str, tuple[float, Job]] = {}
        #: Jobs claimed and not yet finished (several when short files share a model call).
        self.in_flight: dict[str, Job] = {}
        #: Jobs whose work is kept while storage refuses writes, oldest first (consumer/loop.py
        #: carries them on once writes go through); those with nothing kept are in `backlog`.
        self.storage_waits: dict[str, StorageWait] = {}
        self._lock = threading.Lock()
        self._abandoned: set[str] = set()
        #: Jobs whose end was logged and is being carried out (asked again after a StorageFault).
        self._ending: set[str] = set()

    def carry_out(self, job: Job, outcome: Outcome, stage: str,
                  error: BaseException | None = None, resume: Callable[[], Any] | None = None,
                  then: Callable[[Job, Any], None] | None = None) -> None:
        """Carry out a decided outcome: the only place a failed job's file is moved or kept.
        `resume` and `then` are a storage wait's: what is left of the job's work (by default
        the StorageFault's own `resume`), and what ends the job after it."""
        if error is not None and outcome.action in (Action.FAIL, Action.RETRY):
            self.spool.note_error(job, f"{type(error).__name__}: {error}")  # in the report's history
        if outcome.action is Action.FAIL:
            try:
                self._fail(job, outcome, stage)
            except StorageFault as fault:  # its end could not be recorded (a library's ledger)
                again = functools.partial(self.carry_out, job, outcome, stage)
                self._wait_for_storage(job, stage, fault, again)
        elif outcome.action is Action.WAIT_FOR_STORAGE and isinstance(error, StorageFault):
            self._wait_for_storage(job, stage, error, resume or error.resume, then)
        elif outcome.action is Action.RETRY:
            self._retry_later(job, outcome, stage, error)
        elif outcome.action is Action.WAIT:
            self._wait_for_folder(job, outcome, stage)
        elif outcome.action is Action.REQUEUE_AND_EXIT:
            log.critical("engine.gpu_lost", error=outcome.message,
                         action="the files in flight go back to the inbox; the daemon exits for a restart")
            self.give_back_in_flight(reason="the GPU is lost")
            raise GpuLost(outcome.message)

    def complete(self, job: Job, finished: Finished) -> None:
        """End a transcribed job: its results delivered, its source to done. A StorageFault
        (a library's ledger refused) is raised before anything is final: asked again later."""
        with self._lock:
            if self._abandoned_already(job):
                return
            meta = finished.metadata
            outputs = {**finished.outputs, ".log.jsonl": job.log_path}
            if self._first_time(job):
                log.info("job.done", audio_s=meta["audio_seconds"], wall_s=meta["timings"]["total"],
                         rtf=meta["realtime_factor"], batch_size=meta["batch_size"],
                         device=meta["device"], oom_backoffs=len(meta["oom_backoffs"]),
                         language=meta["language"])
            if self.hooks is not None:
                self.hooks.job_ended(job, "done", outputs, metadata=meta)
            placed = self.sources[job.intake].complete(job, outputs)
            self._ended(job)
            self.stats.job_finished("done", job.id, meta["audio_seconds"], meta["timings"]["total"])
            self._log_moves(job, placed, done=job.source, outputs=finished.outputs.values())
            self.stats.landed(job.id, str(job.relpath), "done", _places(placed, job.source, finished.outputs),
                              audio_seconds=meta["audio_seconds"], took_seconds=meta["timings"]["total"])

    def _fail(self, job: Job, outcome: Outcome, stage: str) -> None:
        with self._lock:
            if self._abandoned_already(job):
                return
            kind = outcome.kind or "failed"
            if self._first_time(job):
                log.error("job.failed", error_kind=kind, error=outcome.message, stage=stage,
                          attempts=job.attempts)
            report = self._report(job, kind, outcome.message, stage)
            if self.hooks is not None:
                self.hooks.job_ended(job, "failed", {**(outcome.kept or {}), ".log.jsonl": job.log_path},
                                     error={"kind": kind, "message": outcome.message, "stage": stage})
            placed = self.sources[job.intake].fail(job, report, outcome.kept or {},
                                                   {".log.jsonl": job.log_path})
            self._ended(job)
            self.stats.job_finished("failed", job.id)
            self._log_moves(job, placed, failed=job.source, outputs=(outcome.kept or {}).values())
            self.stats.landed(job.id, str(job.relpath), "failed",
                              _places(placed, job.source, outcome.kept or {}),
                              error={"kind": kind, "message": outcome.message, "stage": stage})

    def _log_moves(self, job: Job, placed: dict[str, Path], outputs: Iterable[Path],
                   **source: Path) -> None:
        """Where the files went, or that a folder refused them and they wait in the work folder."""
        if self.spool.is_held(job):
            log.warning("job.finish_waiting", reason="a folder refused the moves; retried later",
                        work_folder=str(job.dir))
            return
        (where, path), = source.items()
        log.info("job.moved", **{where: str(placed[str(path)])},
                 outputs=[str(placed[str(p)]) for p in outputs])

    def _retry_later(self, job: Job, outcome: Outcome, stage: str, error: BaseException | None) -> None:
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=8)) \
            if error is not None else None
        log.warning("job.retry_later", error=outcome.message, stage=stage, attempts=job.attempts,
                    retry_in_s=outcome.retry_in, traceback=trace)
        self.stats.job_finished("retried", job.id)
        self.in_flight.pop(job.id, None)
        self.backlog[job.id] = (time.monotonic() + (outcome.retry_in or 0.0), job)

    def _wait_for_folder(self, job: Job, outcome: Outcome, stage: str) -> None:
        """The job's folder is away (a share unmounted or its server down): the file is not to
        blame, so this attempt does not count; the job is run again once the folder is back."""
        job.attempts = max(0, job.attempts - 1)
        if job.history:
            job.history.pop()
        log.warning("job.folder_unreachable", error=outcome.message, stage=stage,
                    retry_in_s=outcome.retry_in, action="retried later; this attempt does not count")
        self.stats.job_finished("retried", job.id)
        self.in_flight.pop(job.id, None)
        self.backlog[job.id] = (time.monotonic() + (outcome.retry_in or 0.0), job)

    def _wait_for_storage(self, job: Job, stage: str, fault: StorageFault,
                          resume: Callable[[], Any] | None,
                          then: Callable[[Job, Any], None] | None = None) -> None:
        """A write of the daemon's own was refused (full, over quota, read-only): not the file's
        fault, so nothing counts against it and nothing fails. The work done so far is kept
        (`resume`: a finished transcript not yet written, an end not yet recorded) and carried on
        once writes go through; without any, the attempt is forgotten and the job runs again.
        No new file is taken meanwhile (spool/storage.py says why, once)."""
        self.spool.storage.report(fault)
        self.in_flight.pop(job.id, None)
        if resume is None:
            self.spool.forget_attempt(job)
            self.backlog[job.id] = (0.0, job)
        else:
            self.storage_waits[job.id] = StorageWait(job, resume, then)
        log.warning("job.waiting_for_storage", stage=stage, error=str(fault), kept=resume is not None,
                    attempts=job.attempts, action="this attempt does not count; the job goes on "
                    "by itself once the filesystem takes writes again")
        self.stats.job_waits(job.id)

    def _report(self, job: Job, kind: str, message: str, stage: str) -> dict[str, Any]:
        return {
            "file": str(job.relpath), "error_kind": kind, "error": message, "stage": stage,
            "attempts": job.attempts, "history": job.history, "job_id": job.id,
            "worker": self.spool.worker.name,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    # --- back to the inbox ------------------------------------------------------------------------

    def _first_time(self, job: Job) -> bool:
        """Is this the first try of the job's end (a StorageFault may have it asked again)? Its
        `job.done` or `job.failed` is logged once, before its files move."""
        first = job.id not in self._ending
        self._ending.add(job.id)
        return first

    def _ended(self, job: Job) -> None:
        self._ending.discard(job.id)
        self.in_flight.pop(job.id, None)

    def _abandoned_already(self, job: Job) -> bool:
        """Did shutdown already give the job's file back (nothing to do; it is forgotten)?"""
        if job.id in self._abandoned:
            self.in_flight.pop(job.id, None)
            return True
        return False

    def requeue(self, job: Job, reason: str) -> Path | None:
        """Give a job's file back to the inbox, untouched (once, whichever thread asks first)."""
        with self._lock:
            self.in_flight.pop(job.id, None)
            if job.id in self._abandoned or not os.path.lexists(job.source):
                return None
            self._abandoned.add(job.id)
            back = self.sources[job.intake].release(job)
        self.stats.job_finished("requeued", job.id)
        log.warning("job.requeued", job_id=job.id, file=str(job.relpath), back_in=str(back), reason=reason)
        return back

    def give_back_in_flight(self, reason: str) -> list[Path]:
        """Give the files of every job in flight back to the inbox (a lost GPU; or the shutdown
        grace ran out, from the main thread while the consumer is still inside the engine)."""
        returned = [self.requeue(job, reason) for job in list(self.in_flight.values())]
        return [path for path in returned if path is not None]


def _places(placed: dict[str, Path], source: Path, outputs: dict[str, Path]) -> list[str]:
    """Where a job's source and results went (the plan's destinations), for the reports."""
    return [str(placed[str(path)]) for path in (source, *outputs.values()) if str(path) in placed]
