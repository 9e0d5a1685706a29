"""Jobs: a file claimed out of the inbox, the record it keeps while it runs, and where it is.

A claim is `os.rename` out of the inbox into this worker's own folder,
`state/work/<worker>/<job>/src/<name>`, so among any number of daemons on one inbox exactly one
wins. The job's record (`job.json`: attempts, history) is written before the rename, and every
attempt is counted before it starts, so a crash during one counts too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from . import durable
from .inbox import sidecars_of
from .logs import get_logger
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
        return {"id": self.id, "relpath": str(self.relpath), "attempts": self.attempts,
                "claimed_at": self.claimed_at, "history": self.history}


class Claims:
    """This worker's jobs: claimed out of the inbox into its folder, their records kept there."""

    def __init__(self, folder: Path, worker: WorkerId, max_attempts: int) -> None:
        self.folder = folder
        self.worker = worker
        self.max_attempts = max_attempts

    def claim(self, path: Path, relpath: PurePosixPath) -> Job | None:
        """Take `path` (at `relpath` in the inbox) for this worker; None if another worker (or a
        user) was faster, or the job's record cannot be written."""
        job_id = new_job_id()
        job = Job(id=job_id, relpath=relpath, dir=self.folder / job_id, claimed_at=timestamp())
        try:
            job.source.parent.mkdir(parents=True)
            durable.write_json_atomic(job.dir / RECORD_FILE, job.record())  # before the rename
        except OSError as exc:
            shutil.rmtree(job.dir, ignore_errors=True)
            log.error("job.claim_failed", file=str(job.relpath), error=str(exc),
                      reason="cannot write the job's state; the file stays in the inbox")
            return None
        try:
            folder = open_folder_of(path, relpath)
        except OSError as exc:
            shutil.rmtree(job.dir, ignore_errors=True)
            if not isinstance(exc, FileNotFoundError):
                log.warning("job.claim_refused", file=str(job.relpath), error=str(exc),
                            reason="a folder on its path is not a folder (a link?); not followed")
            return None
        try:
            return self._take(folder, path, job)
        finally:
            os.close(folder)

    def _take(self, folder: int, path: Path, job: Job) -> Job | None:
        """The claim's rename, of the entry `path.name` in the open inbox folder `folder`."""
        try:
            os.rename(path.name, job.source, src_dir_fd=folder)  # rename, not copy: atomic
        except OSError as exc:
            # NFS: a rename whose reply was lost is sent again and answers ENOENT, though the
            # first one moved the file. So look before deciding the claim was lost.
            if not os.path.lexists(job.source):
                shutil.rmtree(job.dir, ignore_errors=True)
                if not isinstance(exc, FileNotFoundError):
                    log.error("job.claim_failed", file=str(job.relpath), error=str(exc))
                return None
        durable.failpoint("claim")
        _claim_sidecars(folder, path, job)
        durable.fsync_dir(path.parent)
        durable.fsync_dir(job.source.parent)
        return job

    def save(self, job: Job) -> None:
        """Write the job's record; a full or read-only disk is logged, and the job goes on (its
        files are safe where they are; only its attempt count is not updated on disk)."""
        try:
            durable.write_json_atomic(job.dir / RECORD_FILE, job.record())
        except OSError as exc:
            log.error("spool.state_write_failed", job_id=job.id, file=str(job.relpath),
                      error=str(exc))

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too."""
        job.attempts += 1
        job.history.append({"attempt": job.attempts, "worker": self.worker.name,
                            "started_at": timestamp()})
        try:
            shutil.rmtree(job.staging, ignore_errors=True)
            job.staging.mkdir()
        except OSError as exc:
            log.error("spool.state_write_failed", job_id=job.id, error=str(exc))
        self.save(job)

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""
        if job.history:
            job.history[-1]["error"] = error
        self.save(job)

    def exhausted(self, job: Job) -> bool:
        """Has this job been tried as often as it may be?"""
        return job.attempts >= self.max_attempts


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
               attempts=record.get("attempts", 0), claimed_at=record.get("claimed_at", ""),
               history=record.get("history", []))


def new_job_id() -> str:
    """Sortable by claim time, unique across workers."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def open_folder_of(path: Path, relpath: PurePosixPath) -> int:
    """A descriptor of the inbox folder holding `path` (at `relpath` in the inbox), reached from
    the inbox one folder at a time with O_NOFOLLOW: a subfolder an inbox writer swapped for a
    link since the scan cannot send the claim's rename to the link's target (ELOOP or ENOTDIR
    instead). The inbox itself is the config's, and may be a link."""
    flags = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(Path(*path.parts[: len(path.parts) - len(relpath.parts)]), flags)
    try:
        for part in relpath.parent.parts:
            inner = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _claim_sidecars(folder: int, path: Path, job: Job) -> None:
    """Per-file options (`<name>.yaml`, `.yml`, `.json`) travel with their audio: those there
    (a 255-byte audio name has no room for a sidecar's: nothing to move, no ENAMETOOLONG)."""
    for sidecar in sidecars_of(path).values():
        with contextlib.suppress(FileNotFoundError):
            os.rename(sidecar.name, job.source.parent / sidecar.name, src_dir_fd=folder)


def _files_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if os.path.lexists(p))
    except OSError:
        return []
