"""Overlap: the next files decoded, and their speech found, while the consumer transcribes.

A helper thread runs the first steps of claimed jobs that use no Whisper model
(`Pipeline.prepare`, `Pipeline.find_speech`), a bounded number of files ahead, so that on a GPU
the model never waits for the CPU's decoding. It is only a head start: when anything goes wrong
there, or a file is too long to hold decoded ahead, the consumer does the same steps itself when
the job's turn comes, where every outcome is decided (loop.py). A file claimed ahead that
waits behind a long job for more than `overlap.max_wait_seconds` goes back to the inbox, where
another daemon on the same inbox can take it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from .. import logs
from ..config import Config, Overlap
from ..engine.base import Engine
from ..spool.jobs import Job
from ..transcription.audio import declared_seconds
from ..transcription.pipeline import Pipeline, Prepared

log = logs.get_logger()


@dataclass
class _Ahead:
    """A job claimed ahead: its head start (running or done) and when it was claimed."""

    job: Job
    head_start: Future[Prepared | None]
    since: float = field(default_factory=time.monotonic)


class Prefetch:
    """Claimed jobs being prepared ahead, in the order the consumer will take them."""

    def __init__(self, pipeline: Pipeline, settings: Overlap,
                 context: Callable[[Job], AbstractContextManager[None]]) -> None:
        #: A pipeline of its own (its own stage and timings), sharing the resident engine.
        self.pipeline = pipeline
        self.settings = settings
        self._context = context
        self._ahead: dict[str, _Ahead] = {}
        self._closing = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")

    @property
    def room(self) -> int:
        """How many more files may be prepared ahead."""
        return 0 if self._closing.is_set() else self.settings.files_ahead - len(self._ahead)

    def first(self) -> Job | None:
        """The job the consumer should take next, if one is ahead."""
        return next((ahead.job for ahead in self._ahead.values()), None)

    def holds(self, job: Job) -> bool:
        return job.id in self._ahead

    def fill(self, claim: Callable[[int], list[Job]], in_flight: dict[str, Job]) -> None:
        """Claim the next files (the consumer's `claim`) and start decoding them while a job is
        transcribed. Their attempt counts when the consumer takes them, so a crash during this
        job is not held against them. One that crashes the daemon while it is decoded ahead is
        adopted after the restart like any other job, and adopted jobs (like retries) are never
        decoded ahead: the next crash counts."""
        while self.room > 0:
            claimed = claim(1)
            if not claimed:
                return
            in_flight[claimed[0].id] = claimed[0]
            self.start(claimed[0])

    def start(self, job: Job) -> None:
        """Begin preparing `job` (claimed by the consumer) on the helper thread."""
        self._ahead[job.id] = _Ahead(job, self._executor.submit(self._prepare, job))

    def take(self, job: Job) -> Prepared | None:
        """Wait for `job`'s head start and hand it over (None: the consumer prepares it itself)."""
        head_start = self._ahead.pop(job.id).head_start
        try:
            prepared = head_start.result()
        except Exception as exc:  # noqa: BLE001 - the consumer redoes the step and decides
            log.info("prefetch.left_to_consumer", job_id=job.id, file=str(job.relpath),
                     reason=f"{type(exc).__name__}: {exc}")
            return None
        if prepared is not None:
            # The job's own clock starts when the consumer takes it: decoding ahead overlapped
            # the job before it and is not counted twice.
            prepared.started = time.monotonic()
            prepared.state.notes["prepared_ahead"] = True
        return prepared

    def overdue(self) -> list[Job]:
        """Stop holding the files that have waited longer than `overlap.max_wait_seconds`
        (the consumer gives them back to the inbox)."""
        limit = time.monotonic() - self.settings.max_wait_seconds
        late = [ahead for ahead in self._ahead.values() if ahead.since < limit]
        for ahead in late:
            del self._ahead[ahead.job.id]
            ahead.head_start.cancel()
        return [ahead.job for ahead in late]

    def drop(self) -> list[Job]:
        """Stop holding every job ahead (a paused daemon gives them back); the helper thread
        stays for later. A step already running ends on its own, its result unused."""
        jobs = [ahead.job for ahead in self._ahead.values()]
        for ahead in self._ahead.values():
            ahead.head_start.cancel()
        self._ahead.clear()
        return jobs

    def close(self) -> list[Job]:
        """Stop preparing; return the jobs that were ahead (the consumer gives them back). A step
        already running ends on its own: Python waits for it at exit (one file's decode and VAD)."""
        self._closing.set()
        jobs = [ahead.job for ahead in self._ahead.values()]
        self._ahead.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        return jobs

    def _prepare(self, job: Job) -> Prepared | None:
        with self._context(job):
            if self._closing.is_set() or not self._fits(job):
                return None
            prepared = self.pipeline.prepare(job)
            if self._closing.is_set():
                return None
            return self.pipeline.find_speech(prepared)

    def _fits(self, job: Job) -> bool:
        """Decoded ahead only when the header promises a length within the memory bound."""
        try:
            declared = declared_seconds(job.source)
        except Exception:  # noqa: BLE001 - unreadable or not audio: the consumer finds out and says so
            return False
        if declared is not None and declared <= self.settings.max_audio_seconds:
            return True
        log.info("prefetch.skipped", declared_s=declared,
                 reason=f"not decoded ahead: longer than overlap.max_audio_seconds "
                        f"({self.settings.max_audio_seconds:g} s) or of unknown length")
        return False


def overlap_wanted(config: Config, engine: Engine) -> bool:
    """Decoding ahead: on a GPU (the CPU decodes while the GPU transcribes). On the CPU only with
    the light Silero VAD: pyannote's torch threads compete with Whisper's for the same cores and
    made 2 cores 0.88x slower, Silero's ONNX step ahead made them 1.08x faster (measured: see
    docs/performance.md)."""
    setting = config.overlap.enabled
    if setting == "auto":
        return engine.settings.device == "cuda" or config.vad.method == "silero"
    return bool(setting)
