"""A running job's progress as the engine reports it, fed to everyone who follows it.

The engine calls back after each batch with a percentage. That figure moves the job's tracker
(which the reports read: STATUS=, the status file, /metrics, the status page), becomes a
`job.progress` log line at most every `log.progress_seconds`, moves `transcribed transcribe`'s
progress bar, and is the consumer's heartbeat during a long job.
"""

from __future__ import annotations

from collections.abc import Callable

from ..logs import get_logger
from ..operations.progress import JobProgress
from ..operations.stats import Stats

log = get_logger()


class ProgressFeed:
    """The tracker of the job (or shared call) whose progress the engine reports now."""

    def __init__(self, stats: Stats, log_every: float, heartbeat: Callable[[], None],
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.stats = stats
        self.log_every = log_every
        self.heartbeat = heartbeat
        #: The engine's figures go here too (`transcribed transcribe`'s progress bar).
        self.on_progress = on_progress
        self.tracker: JobProgress | None = None

    def track(self, job_id: str, audio_seconds: float, started: float) -> JobProgress:
        """Follow this job's progress from here on, here and in the reports."""
        self.tracker = JobProgress(job_id, audio_seconds, started, self.stats.recent_speed.factor())
        self.stats.track(self.tracker)
        return self.tracker

    def model_started(self) -> None:
        """The model starts on the tracked job: its speed is measured from here."""
        if self.tracker is not None:
            self.tracker.model_started()
            self._log_if_due(self.tracker)

    def update(self, percent: float) -> None:
        """The engine's figure after each batch."""
        if self.tracker is not None:
            self.tracker.update(percent)
            self._log_if_due(self.tracker)
        if self.on_progress is not None:
            self.on_progress(percent)
        self.heartbeat()

    def _log_if_due(self, tracker: JobProgress) -> None:
        """`job.progress`, at most every `log.progress_seconds` and per 5 %."""
        estimate = tracker.due_for_log(self.log_every)
        if estimate is not None:
            log.info("job.progress", **estimate.as_dict())
