"""Jobs: a claimed file, where it is, and the record it keeps while it runs.

A job lives in this worker's own folder, `state/work/<worker>/<job>/` (claim.py puts it there).
Its record (`job.json`: the job source that claimed it, attempts, history) is written before the
claim's rename, and every attempt is counted before it starts, so a crash during one counts too.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from .. import durable
from ..errors import StorageFault
from ..logs import get_logger
from .sidecars import sidecars_of
from .storage import Storage
from .workers import WorkerId, timestamp

#: The job's record in its folder.
RECORD_FILE = "job.json"

log = get_logger()


class JobState(str, Enum):
    """Where a job is. Each state is a folder, so a job's state survives any crash:

    WAITING  `inbox/<rel>`: users copy files here (a requeued job goes back here too)
    RUNNING  `state/work/<worker>/<job>/`: claimed; also a finished job whose moves a folder refused
    DONE     `done/<rel>`, its results in `outbox/<rel-stem>.*`
    FAILED   `failed/<rel>` beside `<rel>.error.json`: bad input, or a poison file
    """

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Job:
    """A file being transcribed: its folder in the work area, and what we know about it."""

    id: str
    relpath: PurePosixPath
    dir: Path
    #: The name of the job source that claimed it (`inbox`, `library`): where its end is sent.
    intake: str = "inbox"
    attempts: int = 0
    claimed_at: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source(self) -> Path:
        return self.dir / "src" / self.relpath.name

    @property
    def stem(self) -> str:
        """The source's name without its suffix: the name its results take."""
        name = self.relpath.name
        return name[: -len(self.relpath.suffix)] if self.relpath.suffix else name

    def sidecars(self) -> dict[str, Path]:
        """The per-file options delivered with the source: sidecar suffix -> file."""
        return sidecars_of(self.source)

    @property
    def staging(self) -> Path:
        """Where results are written before they move to the outbox."""
        return self.dir / "out"

    @property
    def log_path(self) -> Path:
        return self.dir / "log.jsonl"

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "relpath": str(self.relpath), "intake": self.intake,
                "attempts": self.attempts, "claimed_at": self.claimed_at, "history": self.history}


class JobRecords:
    """The records of this worker's jobs: written at each attempt and each error.

    A record a full, over-quota or read-only filesystem refuses is kept in memory (`unsaved`)
    and written when storage takes writes again (`flush`, a recovery action of storage.py); an
    attempt is never started without its count on disk."""

    def __init__(self, worker: WorkerId, storage: Storage | None = None) -> None:
        self.worker = worker
        self.storage = storage
        #: Records a full or read-only filesystem refused, by job id: written by `flush`.
        self.unsaved: dict[str, Job] = {}

    def save(self, job: Job) -> None:
        """Write the job's record. A full or read-only disk keeps it for `flush` (the storage
        monitor says so, once); any other error is logged, and the job goes on (its files are
        safe where they are; only its record is not updated on disk)."""
        try:
            self._write(job)
        except StorageFault as fault:
            self.unsaved[job.id] = job
            if self.storage is not None:
                self.storage.report(fault)
        except OSError as exc:
            log.error("spool.state_write_failed", job_id=job.id, file=str(job.relpath),
                      error=str(exc))

    def _write(self, job: Job) -> None:
        durable.write_json_atomic(job.dir / RECORD_FILE, job.record())
        self.unsaved.pop(job.id, None)

    def flush(self) -> None:
        """Write the records storage refused (those of jobs still in the work folder)."""
        for job in list(self.unsaved.values()):
            if job.dir.is_dir():
                self.save(job)
            else:
                self.unsaved.pop(job.id, None)

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too. A full
        or read-only disk raises `StorageFault` (the run cannot start without its count on disk:
        the consumer forgets the attempt, `forget_attempt`, and the job waits for storage)."""
        job.attempts += 1
        job.history.append({"attempt": job.attempts, "worker": self.worker.name,
                            "started_at": timestamp()})
        shutil.rmtree(job.staging, ignore_errors=True)
        try:
            with durable.own_write(job.dir):
                job.staging.mkdir()
        except StorageFault:
            raise
        except OSError as exc:
            log.error("spool.state_write_failed", job_id=job.id, error=str(exc))
        try:
            self._write(job)
        except StorageFault:
            raise
        except OSError as exc:
            log.error("spool.state_write_failed", job_id=job.id, file=str(job.relpath), error=str(exc))

    def forget_attempt(self, job: Job) -> None:
        """The run just started is not held against the file: storage refused one of the
        daemon's own writes. Uncounted, and the record says so once it can be written."""
        job.attempts = max(0, job.attempts - 1)
        if job.history:
            job.history.pop()
        self.save(job)

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""
        if job.history:
            job.history[-1]["error"] = error
        self.save(job)


def read_job(job_dir: Path) -> Job | None:
    """Read a job back from its folder (one that has no finish plan); a half-made claim (no
    source) is removed, and None returned for it."""
    sources = _files_in(job_dir / "src")
    if not sources:
        shutil.rmtree(job_dir, ignore_errors=True)  # claimed nothing: a crash mid-claim
        return None
    try:
        record = durable.read_json(job_dir / RECORD_FILE)
    except (OSError, ValueError):
        # The record is written before the claim, so this is damage from outside; the
        # file is what matters: keep it, under its own name.
        record = {"id": job_dir.name, "relpath": sources[0].name}
        log.warning("job.record_missing", job_id=job_dir.name, file=sources[0].name)
    return Job(id=record["id"], relpath=PurePosixPath(record["relpath"]), dir=job_dir,
               intake=_intake_named(record, job_dir), attempts=record.get("attempts", 0),
               claimed_at=record.get("claimed_at", ""), history=record.get("history", []))


def intake_of(job_dir: Path) -> str:
    """The name of the job source that claimed the job in `job_dir`, from its record."""
    try:
        record = durable.read_json(job_dir / RECORD_FILE)
    except (OSError, ValueError):
        record = {}
    return _intake_named(record, job_dir)


def _intake_named(record: dict[str, Any], job_dir: Path) -> str:
    """The record's job source; where it names none (written before job sources had names, or
    unreadable), a library job is told by its `library.json`, any other is the inbox's."""
    intake = record.get("intake") if isinstance(record, dict) else None
    if isinstance(intake, str) and intake:
        return intake
    return "library" if os.path.lexists(job_dir / "library.json") else "inbox"


def new_job_id() -> str:
    """Sortable by claim time, unique across workers."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def _files_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if os.path.lexists(p))
    except OSError:
        return []
