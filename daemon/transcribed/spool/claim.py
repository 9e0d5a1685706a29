"""The claim: a file renamed out of the inbox into this worker's folder, exactly once.

A claim is `os.rename` out of the inbox into `state/work/<worker>/<job>/src/<name>`, so among any
number of daemons on one inbox exactly one wins. The job's record is written before the rename
(jobs.py), and the sidecars travel with the file. The rename goes through a descriptor of the
file's folder reached without following links, so a folder swapped for a link since the scan
cannot send it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path, PurePosixPath

from .. import durable
from ..errors import StorageFault
from ..logs import get_logger
from .jobs import RECORD_FILE, Job, new_job_id
from .sidecars import sidecars_of
from .workers import timestamp

log = get_logger()


class Claims:
    """Files claimed out of a folder into this worker's folder, one atomic rename each."""

    def __init__(self, folder: Path, intake: str = "inbox") -> None:
        self.folder = folder
        #: The job source whose claims these are (recorded in each job).
        self.intake = intake

    def claim(self, path: Path, relpath: PurePosixPath) -> Job | None:
        """Take `path` (at `relpath` in the inbox) for this worker; None if another worker (or a
        user) was faster, or the job's record cannot be written. A full or read-only disk raises
        `StorageFault` (the file stays in the inbox; no more claims until storage is back)."""
        job_id = new_job_id()
        job = Job(id=job_id, relpath=relpath, dir=self.folder / job_id, intake=self.intake,
                  claimed_at=timestamp())
        try:
            with durable.own_write(self.folder):
                job.source.parent.mkdir(parents=True)
            durable.write_json_atomic(job.dir / RECORD_FILE, job.record())  # before the rename
        except StorageFault:
            shutil.rmtree(job.dir, ignore_errors=True)
            raise
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
