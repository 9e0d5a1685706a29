"""How far the running job is and how long it still needs: one estimate for the `job.progress`
log events, the status file, systemd's STATUS= line and /metrics, so that they never disagree.

The engine reports the share of the speech chunks it has decoded, after each batch. Nothing is
reported while the file is decoded and its speech found (on the CPU that is 35-45 % of a job),
nor during alignment and diarization after it. So the estimate has two sources:
- before the engine's first figure: the job's audio over the realtime factor of the last few
  done jobs (whole jobs, decoding to writing), less the time already spent;
- from the first figure on: this job's own rate, the model's seconds so far over the share
  decoded, counted down between figures.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: How many done jobs predict the next one's duration before it reports progress of its own.
RECENT_JOBS = 5
#: `job.progress` events: never more than one per this many percent.
LOG_STEP_PERCENT = 5.0


@dataclass(frozen=True)
class Estimate:
    """The running job at one instant."""

    #: Share of the speech decoded, 0 to 100 (0 until the engine's first figure).
    percent: float
    #: Seconds of the job's audio that share stands for, and the job's whole audio.
    audio_s: float | None
    audio_total_s: float | None
    #: Seconds since the job began.
    elapsed_s: float
    #: Seconds still needed, or None when nothing predicts it (no figure and no done job yet).
    eta_s: float | None
    #: What the ETA rests on: "this job" (its own rate), "recent jobs" (their speed), or None.
    eta_from: str | None

    def as_dict(self) -> dict[str, Any]:
        """The fields of a `job.progress` event and of the status file's `progress`."""
        return {"percent": round(self.percent, 1),
                "audio_s": None if self.audio_s is None else round(self.audio_s, 1),
                "audio_total_s": None if self.audio_total_s is None else round(self.audio_total_s, 1),
                "elapsed_s": round(self.elapsed_s, 1),
                "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
                "eta_from": self.eta_from}


class RecentSpeed:
    """Audio seconds per wall-clock second over the last few done jobs, decode to write."""

    def __init__(self, jobs: int = RECENT_JOBS) -> None:
        self._jobs: deque[tuple[float, float]] = deque(maxlen=jobs)

    def add(self, audio_seconds: float, processing_seconds: float) -> None:
        if audio_seconds > 0 and processing_seconds > 0:
            self._jobs.append((audio_seconds, processing_seconds))

    def factor(self) -> float | None:
        """Their realtime factor (total audio over total time), None before the first done job."""
        if not self._jobs:
            return None
        return sum(a for a, _ in self._jobs) / sum(s for _, s in self._jobs)


class JobProgress:
    """One running job's progress; written by the consumer thread, read by any.

    Each figure is stored as one tuple, so a reader on another thread (a scrape) never sees a
    percentage with another figure's time.
    """

    def __init__(self, job_id: str, audio_seconds: float | None, started: float,
                 recent_factor: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.audio_seconds = audio_seconds
        self.started = started
        self.recent_factor = recent_factor
        self.clock = clock
        self._model_started: float | None = None
        self._figure: tuple[float, float] | None = None
        self._logged: tuple[float, float] | None = None

    def model_started(self) -> None:
        """The engine starts on this job now: its own rate counts from here."""
        self._model_started = self.clock()

    def update(self, percent: float) -> None:
        """The engine's figure: `percent` of the speech decoded, now."""
        self._figure = (min(100.0, max(0.0, float(percent))), self.clock())

    def estimate(self, now: float | None = None) -> Estimate:
        """Where the job stands at `now`."""
        now = self.clock() if now is None else now
        elapsed = max(0.0, now - self.started)
        percent, eta, basis = 0.0, None, None
        if self._figure is not None and self._figure[0] > 0:
            percent, at = self._figure
            model_began = self._model_started if self._model_started is not None else self.started
            model_total = (at - model_began) * 100.0 / percent
            eta, basis = max(0.0, model_began + model_total - now), "this job"
        elif self.recent_factor and self.audio_seconds:
            eta = max(0.0, self.audio_seconds / self.recent_factor - elapsed)
            basis = "recent jobs"
        audio = None if self.audio_seconds is None else self.audio_seconds * percent / 100.0
        return Estimate(percent, audio, self.audio_seconds, elapsed, eta, basis)

    def due_for_log(self, every_seconds: float, now: float | None = None) -> Estimate | None:
        """The estimate to log now, or None: at most one event per `every_seconds` (the first
        that long after the job began) and per LOG_STEP_PERCENT."""
        now = self.clock() if now is None else now
        estimate = self.estimate(now)
        last_at, last_percent = self._logged if self._logged is not None else (self.started, None)
        if now - last_at < every_seconds:
            return None
        if last_percent is not None and estimate.percent - last_percent < LOG_STEP_PERCENT:
            return None
        self._logged = (now, estimate.percent)
        return estimate


def describe_eta(seconds: float) -> str:
    """A remaining time as a person says it: "about 40 s left", "about 3 min left"."""
    if seconds < 10:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 55:
        return f"about {round(seconds / 10) * 10} s left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


def describe_duration(seconds: float) -> str:
    """A length of time as a person says it: "42 s", "3 min 10 s", "1 h 02 min"."""
    total = max(0, round(float(seconds)))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
