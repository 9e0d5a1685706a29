"""Claim markers: how several daemons on one library do each file once, the media left in place.

`state/library/claims/<content id>.json` names the job that holds the file. It is created with
O_CREAT|O_EXCL, so exactly one daemon wins; the winner's job folder exists before its marker, so a
marker always names a job that was made. A marker goes when its job ends (after the ledger says
so) or is given back. One left by a crash is taken over by the job it names (adopted by another
daemon, which renames the job folder but keeps its id), or by any job once no worker folder holds
the job it names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from .. import durable
from ..spool.workers import timestamp
from .job import LibraryJob

#: An empty or unreadable marker this young may be one another daemon is writing: not free.
BEING_WRITTEN_SECONDS = 60.0


class ClaimMarkers:
    """The markers in `folder`; `work` is the state's work area (every worker's job folders)."""

    def __init__(self, folder: Path, work: Path, worker: str) -> None:
        self.folder = folder
        self.work = work
        self.worker = worker

    def path(self, job: LibraryJob) -> Path:
        """The marker of the job's file: named by its content id, so a renamed file keeps it."""
        return self.folder / f"{job.content_id}.json"

    def take(self, job: LibraryJob) -> bool:
        """Create the claim marker (O_EXCL: one daemon wins); True when it is this job's. A full
        or read-only disk raises `StorageFault`, and leaves no marker (an empty one would hold the
        file from every daemon for BEING_WRITTEN_SECONDS)."""
        marker = self.path(job)
        body = durable.to_json({"job_id": job.id, "worker": self.worker,
                                "file": str(job.origin), "at": timestamp()}).encode()
        with durable.own_write(self.folder):
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                return self._free_for(job, marker)
            try:
                if os.write(fd, body) < len(body):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(marker))
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    marker.unlink()  # an unlink needs no space
                raise
            finally:
                os.close(fd)
        durable.fsync_dir(marker.parent)
        durable.failpoint("library_claimed")
        return True

    def _free_for(self, job: LibraryJob, marker: Path) -> bool:
        """A marker exists: this job's (an adopted one), or a job that no worker folder holds any
        more (a crash after its end): then it is taken over. Else the file is another's."""
        try:
            holder = durable.read_json(marker).get("job_id", "")
        except (OSError, ValueError, AttributeError):
            holder = ""
        if holder == job.id:
            return True
        if not holder and _age(marker) < BEING_WRITTEN_SECONDS:
            return False  # just made by another daemon, its body not yet written
        if holder and any((folder / holder).is_dir() for folder in self.work.iterdir() if folder.is_dir()):
            return False
        durable.write_json_atomic(marker, {"job_id": job.id, "worker": self.worker,
                                           "file": str(job.origin), "at": timestamp(),
                                           "took_over": holder})
        return True

    def drop(self, job: LibraryJob) -> None:
        """Remove this job's marker (never another job's)."""
        marker = self.path(job)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if durable.read_json(marker).get("job_id") == job.id:
                marker.unlink()


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
