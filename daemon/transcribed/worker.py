"""The single consumer: carries jobs one at a time from the inbox to done/ or failed/.

Every outcome of a job is decided in one place, `process`:
- BadInput, or out of memory with `oom.fallback: fail`  -> failed/ with an error report;
- a lost GPU                                           -> back to the inbox, then the daemon exits;
- anything else (a bug, a full or read-only outbox)    -> retried later, up to `jobs.max_attempts`,
                                                          then failed/ as a poison file.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from . import logs
from .config import Config
from .alignment import Aligner
from .diarization import Diarizer
from .engine.base import Engine
from .errors import BadInput, GpuLost, OutOfMemory, StageFailed
from .pipeline import Finished, Pipeline
from .spool import Job, Spool
from .stats import Stats
from .watcher import Arrivals

log = logs.get_logger()


class Worker:
    """Claims complete files in arrival order and runs each through the pipeline."""

    def __init__(self, config: Config, spool: Spool, engine: Engine, arrivals: Arrivals,
                 wake: threading.Event, on_beat: Callable[[], None] = lambda: None,
                 stats: Stats | None = None, aligner: Aligner | None = None,
                 diarizer: Diarizer | None = None, beat_interval: float = 5.0) -> None:
        self.config = config
        self.beat_interval = beat_interval
        self.stats = stats or Stats()
        self.spool = spool
        self.arrivals = arrivals
        self.wake = wake
        self.on_beat = on_beat
        self.pipeline = Pipeline(config, engine, self.beat, spool.worker.name, self.stats,
                                 aligner, diarizer)
        #: Jobs already in this worker's folder (adopted, or waiting for a retry): id -> due time.
        self.backlog: dict[str, tuple[float, Job]] = {}
        self.current: Job | None = None
        self.counts = {"done": 0, "failed": 0, "retried": 0}
        self.last_beat = time.monotonic()
        self._finish_lock = threading.Lock()
        self._abandoned = False
        self._next_rescan = 0.0

    # --- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process jobs until `stop` is set (the current job is finished first)."""
        self._take_back_orphans()
        while not stop.is_set():
            self.beat()
            job = self.next_job()
            if job is None:
                self._wait_for_work(stop)
                continue
            self.process(job)

    def next_job(self) -> Job | None:
        """A due retry or adopted job first, then the oldest complete file in the inbox."""
        now = time.monotonic()
        if now >= self._next_rescan:
            self._take_back_orphans()
            self._next_rescan = now + self.config.watch.rescan_seconds
        for job_id, (due, job) in sorted(self.backlog.items(), key=lambda item: item[1][0]):
            if due <= now:
                del self.backlog[job_id]
                return job
        self.wake.clear()
        waiting = self.spool.scan()
        self.stats.queue_length = len(waiting) + len(self.backlog)
        for path in self.arrivals.ready(waiting):
            job = self.spool.claim(path)
            if job is not None:
                log.info("job.claimed", job_id=job.id, file=str(job.relpath))
                return job
        return None

    def _wait_for_work(self, stop: threading.Event) -> None:
        waits = [max(0.0, self._next_rescan - time.monotonic()), self.beat_interval]
        if (settling := self.arrivals.next_check_in()) is not None:
            waits.append(settling)
        if self.backlog:
            waits.append(max(0.0, min(due for due, _ in self.backlog.values()) - time.monotonic()))
        if not stop.is_set():
            self.wake.wait(timeout=max(0.01, min(waits)))

    def _take_back_orphans(self) -> None:
        for job in self.spool.adopt_orphans():
            self.backlog[job.id] = (0.0, job)

    def beat(self) -> None:
        """The consumer is alive and making progress (feeds systemd's watchdog and /healthz)."""
        self.last_beat = time.monotonic()
        self.stats.beat()
        self.on_beat()

    # --- one job ---------------------------------------------------------------------------------

    def process(self, job: Job) -> None:
        """Run one job and move its file to where its outcome says."""
        self.current, self._abandoned = job, False
        self.stats.job_started(str(job.relpath))
        with structlog.contextvars.bound_contextvars(job_id=job.id, file=str(job.relpath)), \
                open(job.log_path, "a", encoding="utf-8") as job_log, logs.job_log(job_log):
            try:
                self._run(job)
            finally:
                self.current = None

    def _run(self, job: Job) -> None:
        if self.spool.exhausted(job):
            self._fail(job, "poison", f"the file was tried {job.attempts} times and each attempt "
                       "killed or failed the daemon; it is not tried again", stage="recovery")
            return
        self.spool.start_attempt(job)
        log.info("job.started", attempt=job.attempts)
        try:
            finished = self.pipeline.run(job)
        except BadInput as exc:
            self._fail(job, exc.kind, str(exc))
        except OutOfMemory as exc:
            self._fail(job, "out_of_memory", str(exc))
        except StageFailed as exc:
            self._fail(job, "stage_failed", str(exc), outputs=exc.kept)
        except GpuLost as exc:
            log.critical("engine.gpu_lost", error=str(exc),
                         action="the file goes back to the inbox; the daemon exits for a restart")
            self._requeue(job)
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure: retried, then poison
            self._retry_or_fail(job, exc)
        else:
            self._complete(job, finished)

    def _complete(self, job: Job, finished: Finished) -> None:
        with self._finish_lock:
            if self._abandoned:
                return
            outputs = {**finished.outputs, ".log.jsonl": job.log_path}
            log.info("job.done", audio_s=finished.metadata["audio_seconds"],
                     wall_s=finished.metadata["timings"]["total"],
                     rtf=finished.metadata["realtime_factor"],
                     batch_size=finished.metadata["batch_size"], device=finished.metadata["device"],
                     oom_backoffs=len(finished.metadata["oom_backoffs"]),
                     language=finished.metadata["language"])
            placed = self.spool.complete(job, outputs)
            self.counts["done"] += 1
            self.stats.job_finished("done", finished.metadata["audio_seconds"],
                                    finished.metadata["timings"]["total"])
            log.info("job.moved", done=str(placed[str(job.source)]),
                     outputs=[str(placed[str(p)]) for p in finished.outputs.values()])

    def _fail(self, job: Job, kind: str, message: str, stage: str | None = None,
              outputs: dict[str, Path] | None = None) -> None:
        with self._finish_lock:
            if self._abandoned:
                return
            stage = stage or self.pipeline.stage
            log.error("job.failed", error_kind=kind, error=message, stage=stage, attempts=job.attempts)
            report = self._report(job, kind, message, stage)
            placed = self.spool.fail(job, report, outputs=outputs, logs={".log.jsonl": job.log_path})
            self.counts["failed"] += 1
            self.stats.job_finished("failed")
            log.info("job.moved", failed=str(placed[str(job.source)]),
                     outputs=[str(placed[str(p)]) for p in (outputs or {}).values()])

    def _retry_or_fail(self, job: Job, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.spool.note_error(job, error)
        if self.spool.exhausted(job):
            self._fail(job, "poison", f"failed {job.attempts} times; last error: {error}")
            return
        delay = self.config.jobs.retry_delay_seconds * 2 ** (job.attempts - 1)
        log.warning("job.retry_later", error=error, stage=self.pipeline.stage, attempts=job.attempts,
                    retry_in_s=delay, traceback=traceback.format_exc(limit=8))
        self.counts["retried"] += 1
        self.stats.job_finished("retried")
        self.backlog[job.id] = (time.monotonic() + delay, job)

    def _report(self, job: Job, kind: str, message: str, stage: str) -> dict[str, Any]:
        return {
            "file": str(job.relpath), "error_kind": kind, "error": message, "stage": stage,
            "attempts": job.attempts, "history": job.history, "job_id": job.id,
            "worker": self.spool.worker.name,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    # --- stopping --------------------------------------------------------------------------------

    def _requeue(self, job: Job) -> Path:
        with self._finish_lock:
            self._abandoned = True
            back = self.spool.requeue(job)
        self.stats.job_finished("requeued")
        log.warning("job.requeued", back_in=str(back))
        return back

    def abandon_current(self) -> Path | None:
        """Give the running job's file back to the inbox (shutdown grace ran out); None if none."""
        with self._finish_lock:
            job = self.current
            if job is None or self._abandoned or not job.source.exists():
                return None
            self._abandoned = True
            back = self.spool.requeue(job)
        log.warning("job.requeued", job_id=job.id, file=str(job.relpath), back_in=str(back),
                    reason="shutdown grace period ran out")
        return back
