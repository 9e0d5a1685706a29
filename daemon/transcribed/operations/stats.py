"""What the daemon is doing and has done: one object the consumer writes and others read.

The status file, systemd's STATUS= line, /healthz and /metrics all read this, so every number
an operator sees comes from one place. The consumer thread writes it; the HTTP thread reads it
through `snapshot()`, under a lock, so a scrape never sees a counter half-updated.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .progress import JobProgress, RecentSpeed
from .status_line import storage_words

#: Upper bounds (seconds) of the processing-time histogram: a short clip up to a long recording.
PROCESSING_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
#: The last jobs ended (done or failed) that a snapshot lists, newest first.
RECENT_ENDINGS = 20
#: Waiting files a snapshot names (the inbox's first, then the libraries'); the rest are counted.
WAITING_NAMED = 50


@dataclass(frozen=True)
class Health:
    """Is the daemon fit to work: model loaded, consumer's heartbeat fresh, not stopping. A
    daemon waiting for storage is fit (`degraded` says why it takes no file): a restart would
    free no space, so an orchestrator must not be told to restart it."""

    ok: bool
    reason: str | None
    heartbeat_age: float
    degraded: str | None = None

    def as_dict(self) -> dict[str, Any]:
        status = "unavailable" if not self.ok else "degraded" if self.degraded else "ok"
        return {"status": status, "reason": self.reason or self.degraded,
                "heartbeat_age_s": round(self.heartbeat_age, 3)}


@dataclass
class Stats:
    """Counters and the current state of one daemon."""

    started_at: float = field(default_factory=time.time)
    #: starting -> loading -> running -> stopping; with `model.idle_unload_seconds`, running ->
    #: unloaded (the models released while idle) -> reloading (for the next file) -> running.
    state: str = "starting"
    model: str = ""
    device: str = ""
    model_load_seconds: float | None = None
    batch_size: int | None = None
    jobs: Counter[str] = field(default_factory=Counter)
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    #: Done jobs per histogram bucket (same order as PROCESSING_BUCKETS, then +Inf).
    processing_buckets: list[int] = field(default_factory=lambda: [0] * (len(PROCESSING_BUCKETS) + 1))
    #: Audio seconds per processing second of the last finished job.
    last_realtime_factor: float | None = None
    oom_backoffs: int = 0
    #: Files the last inbox scan found waiting, and each one's declared seconds of audio (relative
    #: name -> seconds, None where the header does not tell); a job that starts leaves them.
    inbox_waiting: int = 0
    inbox_audio: dict[str, float | None] = field(default_factory=dict)
    #: Files in the inbox it will never take (an extension not watched), at the last scan.
    inbox_ignored: int = 0
    #: This daemon's jobs waiting for a retry, the same way (each also counted as waiting).
    retries_audio: dict[str, float | None] = field(default_factory=dict)
    #: Library media files the last scan found without their subtitles, not yet claimed (None:
    #: no library configured).
    library_waiting: int | None = None
    #: Some of them with their declared audio (absolute path -> seconds, None: not told).
    library_audio: dict[str, float | None] = field(default_factory=dict)
    #: No file is claimed while a folder refuses finished work (spool `paused`).
    claims_paused: bool = False
    #: The completion hooks' deliveries (None: no hook configured): pending, failing, last error.
    hooks: dict[str, Any] | None = None
    #: The last jobs ended, newest last (`landed`).
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_ENDINGS))
    #: The running job's progress (None between jobs), and the speed of the last done jobs.
    progress: JobProgress | None = None
    recent_speed: RecentSpeed = field(default_factory=RecentSpeed)
    #: Idle unloads so far, and when the models were last released (Unix time; None: resident).
    model_unloads: int = 0
    unloaded_at: float | None = None
    current_file: str | None = None
    #: The job id of `current_file` (a job claimed ahead finishing does not clear it).
    current_job: str | None = None
    current_since: float | None = None
    #: Bytes in use on this daemon's GPU (all processes on it), sampled from the heartbeat.
    gpu_memory_used: int | None = None
    gpu_memory_total: int | None = None
    #: The storage monitor's last look (spool/storage.py `Storage.snapshot`: waiting, why, the
    #: free space and the floor), and how many of this daemon's jobs wait for storage.
    storage: dict[str, Any] = field(default_factory=dict)
    storage_jobs_waiting: int = 0
    #: Why no new job starts (`transcribed pause`, quiet hours: consumer/gate.py's Paused: by,
    #: since, until, reason, asked_by, now); None: not paused.
    pause: dict[str, Any] | None = None
    #: With several models (a route's, library's or sidecar's own): the resident ones, their
    #: estimated bytes, the budget, and the loads for a job so far (engine/resident.py); None: one model.
    models: dict[str, Any] | None = None
    #: time.monotonic() of the consumer loop's last sign of life.
    last_beat: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # --- written by the service and the consumer --------------------------------------------------

    def loading(self) -> None:
        self.state = "loading"

    def model_loaded(self, model: str, device: str, seconds: float, batch_size: int) -> None:
        with self._lock:
            self.model, self.device, self.model_load_seconds = model, device, seconds
            self.batch_size = batch_size

    def running(self) -> None:
        """The consumer starts now: its heartbeat counts from here (loading took what it took)."""
        with self._lock:
            self.state, self.last_beat = "running", time.monotonic()

    def stopping(self) -> None:
        self.state = "stopping"

    def models_unloaded(self) -> None:
        """The models were released after an idle spell (the daemon still runs and beats)."""
        with self._lock:
            self.model_unloads += 1
            self.state, self.unloaded_at = "unloaded", time.time()

    def models_reloading(self) -> None:
        with self._lock:
            self.state = "reloading"

    def models_reloaded(self) -> None:
        with self._lock:
            self.state, self.unloaded_at = "running", None

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def job_started(self, file: str, job_id: str) -> None:
        with self._lock:
            self.current_file, self.current_job, self.current_since = file, job_id, time.time()
            self.library_audio.pop(file, None)
            # Counted among the waiting ones at the last look; it no longer waits.
            if file in self.retries_audio:
                del self.retries_audio[file]
            else:
                self.inbox_waiting = max(0, self.inbox_waiting - 1)
                self.inbox_audio.pop(file, None)

    def waiting(self, count: int, audio: dict[str, float | None]) -> None:
        """What the last inbox scan found waiting: how many files, and each one's audio
        (relative name -> seconds, None where its header does not tell)."""
        with self._lock:
            self.inbox_waiting, self.inbox_audio = count, dict(audio)

    def ignored_in_inbox(self, count: int) -> None:
        """How many files the last inbox scan found that will never be taken (inbox.ignored)."""
        with self._lock:
            self.inbox_ignored = count

    def retries_waiting(self, audio: dict[str, float | None]) -> None:
        """This daemon's jobs waiting for a retry: relative name -> declared seconds (None where
        the header does not tell). They wait too, so they count in the queue."""
        with self._lock:
            self.retries_audio = dict(audio)

    @property
    def queue_length(self) -> int:
        """Files waiting: the inbox's at the last scan, plus this daemon's retries."""
        return self.inbox_waiting + len(self.retries_audio)

    def _queue_audio_seconds(self) -> float:
        retries = sum(s for s in self.retries_audio.values() if s is not None)
        return sum(s for s in self.inbox_audio.values() if s is not None) + retries

    def library_waits(self, count: int, audio: dict[str, float | None] | None = None) -> None:
        """How many library files wait for their subtitles, after a scan or a claim; with a scan,
        their audio (absolute path -> seconds, None: not told)."""
        with self._lock:
            self.library_waiting = count
            if audio is not None:
                self.library_audio = dict(audio)

    def paused(self, claims: bool) -> None:
        """Are claims paused (a folder refuses finished work)? Told on each heartbeat."""
        self.claims_paused = claims

    def hooks_seen(self, pending: int, failing: dict[str, str], gave_up: int) -> None:
        """The hook thread's last pass: deliveries pending, those failing (job id -> last error,
        no secret in it), and how many were given up since the start."""
        with self._lock:
            self.hooks = {"pending": pending, "failing": len(failing),
                          "last_error": next(reversed(failing.values()), None), "gave_up": gave_up}

    def landed(self, job_id: str, file: str, outcome: str, places: list[str],
               error: dict[str, Any] | None = None, audio_seconds: float | None = None,
               took_seconds: float | None = None) -> None:
        """A job ended done or failed: where its source and results went (absolute paths: the
        readers show them relative to the configured folders, and nothing outside them)."""
        with self._lock:
            self.recent.append({
                "job_id": job_id, "file": file, "outcome": outcome, "at": round(time.time(), 3),
                "places": list(places), "error": dict(error) if error else None,
                "audio_s": audio_seconds, "took_s": took_seconds})

    def track(self, progress: JobProgress) -> None:
        """The job whose progress the reports show, from now on."""
        with self._lock:
            self.progress = progress

    def job_finished(self, outcome: str, job_id: str, audio_seconds: float | None = None,
                     processing_seconds: float | None = None) -> None:
        """Count a job by outcome: done, failed, retried, requeued. The current file is cleared
        only when it is this job's (one claimed ahead may finish while another runs)."""
        with self._lock:
            self.jobs[outcome] += 1
            if outcome == "done" and audio_seconds is not None and processing_seconds is not None:
                self.audio_seconds += audio_seconds
                self.processing_seconds += processing_seconds
                bucket = next((i for i, bound in enumerate(PROCESSING_BUCKETS)
                               if processing_seconds <= bound), len(PROCESSING_BUCKETS))
                self.processing_buckets[bucket] += 1
                if processing_seconds > 0:
                    self.last_realtime_factor = round(audio_seconds / processing_seconds, 3)
                self.recent_speed.add(audio_seconds, processing_seconds)
            if self.progress is not None and self.progress.job_id == job_id:
                self.progress = None
            if job_id == self.current_job:
                self.current_file = self.current_job = self.current_since = None

    def job_waits(self, job_id: str) -> None:
        """A job waits for storage: it is no longer the current one (not counted as ended)."""
        with self._lock:
            if self.progress is not None and self.progress.job_id == job_id:
                self.progress = None
            if job_id == self.current_job:
                self.current_file = self.current_job = self.current_since = None

    def storage_seen(self, snapshot: dict[str, Any], jobs_waiting: int) -> None:
        """The storage monitor's last look, and the jobs of this daemon waiting for storage."""
        with self._lock:
            self.storage, self.storage_jobs_waiting = dict(snapshot), jobs_waiting

    def oom_backoff(self, new_batch_size: int | None) -> None:
        with self._lock:
            self.oom_backoffs += 1
            if new_batch_size is not None:
                self.batch_size = new_batch_size

    def pause_changed(self, pause: dict[str, Any] | None) -> None:
        """Paused (why, since and until when), or working again (None)."""
        with self._lock:
            self.pause = dict(pause) if pause is not None else None

    def models_seen(self, models: dict[str, Any]) -> None:
        """The Whisper models loaded now (engine/resident.py `ResidentModels.describe`)."""
        with self._lock:
            self.models = dict(models)

    def gpu_memory(self, used: int | None, total: int | None) -> None:
        self.gpu_memory_used, self.gpu_memory_total = used, total

    # --- read by the status file, STATUS=, /healthz and /metrics ----------------------------------

    def health(self, stale_after: float) -> Health:
        """Healthy: the model is loaded, the consumer runs and beat within `stale_after` seconds."""
        age = time.monotonic() - self.last_beat
        if self.state == "stopping":
            return Health(False, "stopping", age)
        # Idle-unloaded or reloading for the next file is healthy: the consumer runs and beats.
        if self.model_load_seconds is None or self.state in ("starting", "loading"):
            return Health(False, f"model not loaded yet ({self.state})", age)
        if age > stale_after:
            return Health(False, f"consumer heartbeat is {age:.0f} s old (limit {stale_after:g} s): "
                          "the consumer loop is stuck", age)
        return Health(True, None, age, storage_words(self.storage) if self.storage.get("waiting") else None)

    def snapshot(self, stale_after: float) -> dict[str, Any]:
        """Everything above as plain data, consistent at one instant (the status file's body)."""
        with self._lock:
            health = self.health(stale_after)
            now = time.time()
            return {
                "state": self.state,
                "healthy": health.ok,
                "reason": health.reason,
                "degraded": health.degraded,
                "storage": {**self.storage, "jobs_waiting": self.storage_jobs_waiting},
                "heartbeat_at": round(now - health.heartbeat_age, 3),
                "heartbeat_age_s": round(health.heartbeat_age, 3),
                "stale_after_s": stale_after,
                "started_at": round(self.started_at, 3),
                "model": self.model,
                "device": self.device,
                "model_load_s": self.model_load_seconds,
                "batch_size": self.batch_size,
                "queue_length": self.queue_length,
                "queue_audio_s": round(self._queue_audio_seconds(), 3),
                "inbox_ignored": self.inbox_ignored,
                "library_waiting": self.library_waiting,
                "waiting": self._waiting_named(),
                "claims_paused": self.claims_paused,
                "paused": dict(self.pause) if self.pause is not None else None,
                "models": dict(self.models) if self.models is not None else None,
                "hooks": dict(self.hooks) if self.hooks is not None else None,
                "recent": list(reversed(self.recent)),
                "current_file": self.current_file,
                "current_for_s": round(now - self.current_since, 1) if self.current_since else None,
                "progress": self.progress.estimate().as_dict() if self.progress else None,
                "model_unloads": self.model_unloads,
                "unloaded_at": round(self.unloaded_at, 3) if self.unloaded_at else None,
                "jobs": {"done": 0, "failed": 0, **self.jobs},
                "audio_s": round(self.audio_seconds, 3),
                "processing_s": round(self.processing_seconds, 3),
                "processing_buckets": self._cumulative_buckets(),
                "last_realtime_factor": self.last_realtime_factor,
                "oom_backoffs": self.oom_backoffs,
                "gpu_memory_used_bytes": self.gpu_memory_used,
                "gpu_memory_total_bytes": self.gpu_memory_total,
            }

    def _waiting_named(self) -> list[dict[str, Any]]:
        """The first WAITING_NAMED files waiting: the retries, the inbox's, then the libraries'."""
        named: list[dict[str, Any]] = []
        for where, files in (("retry", self.retries_audio), ("inbox", self.inbox_audio),
                             ("library", self.library_audio)):
            for name, seconds in files.items():
                if len(named) >= WAITING_NAMED:
                    return named
                named.append({"file": name, "from": where, "audio_s": seconds})
        return named

    def _cumulative_buckets(self) -> dict[str, int]:
        """Done jobs that took at most each bound (Prometheus' `le` convention), "+Inf" = all."""
        counts, total = {}, 0
        for bound, n in zip((*PROCESSING_BUCKETS, float("inf")), self.processing_buckets, strict=True):
            total += n
            counts["+Inf" if bound == float("inf") else f"{bound:g}"] = total
        return counts
