"""What the daemon is doing and has done: one object the consumer writes and others read.

The status file, systemd's STATUS= line, /healthz and /metrics all read this, so every number
an operator sees comes from one place. The consumer thread is the only writer.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    """Counters and the current state of one daemon."""

    started_at: float = field(default_factory=time.time)
    model: str = ""
    device: str = ""
    model_load_seconds: float | None = None
    batch_size: int | None = None
    jobs: Counter[str] = field(default_factory=Counter)
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    oom_backoffs: int = 0
    queue_length: int = 0
    current_file: str | None = None
    current_since: float | None = None
    #: time.monotonic() of the consumer loop's last sign of life.
    last_beat: float = field(default_factory=time.monotonic)

    def model_loaded(self, model: str, device: str, seconds: float, batch_size: int) -> None:
        self.model, self.device, self.model_load_seconds = model, device, seconds
        self.batch_size = batch_size

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def job_started(self, file: str) -> None:
        self.current_file, self.current_since = file, time.time()

    def job_finished(self, outcome: str, audio_seconds: float | None = None,
                     processing_seconds: float | None = None) -> None:
        """Count a job by outcome: done, failed, retried, requeued."""
        self.jobs[outcome] += 1
        if outcome == "done" and audio_seconds is not None and processing_seconds is not None:
            self.audio_seconds += audio_seconds
            self.processing_seconds += processing_seconds
        self.current_file = self.current_since = None

    def oom_backoff(self, new_batch_size: int | None) -> None:
        self.oom_backoffs += 1
        if new_batch_size is not None:
            self.batch_size = new_batch_size
