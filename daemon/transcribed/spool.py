"""The spool: a job's state is the folder its file is in. `Spool` is what the consumer holds.

```
inbox/<rel>                          waiting      users copy files here
state/work/<worker>/<job>/src/<name> running      claimed by one atomic rename (exactly once)
outbox/<rel-stem>.{json,txt,...}     done         results, moved in without overwriting
done/<rel>                           done         the source, once its results are in the outbox
failed/<rel> + <rel>.error.json      failed       bad input, or a poison file
```

A job's path, one module per step, composed here:

    inbox.py     which files in the inbox are jobs; the sidecars that travel with them
    jobs.py      Job, JobState; the claim (one rename) and the record a job keeps
    finish.py    the plan of moves to the outbox, done/, failed/ or back; held jobs, result names
    workers.py   who this worker is, its lease, whether another worker is gone
    adoption.py  the jobs of gone workers, taken over

Set-up is here: the folders exist, and share one filesystem, before anything is claimed.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path, PurePosixPath
from typing import Any

from . import durable
from .adoption import Adoption
from .config import Config
from .errors import ConfigError, TranscribedError
from .finish import BeforeMoves, Finisher, has_plan
from .inbox import Inbox
from .jobs import Claims, Job, read_job
from .logs import get_logger
from .workers import Lease, Liveness, WorkerId, machine_identity

log = get_logger()


class Spool:
    """The folders, and every move of a file between them."""

    def __init__(self, config: Config, worker: WorkerId | None = None,
                 before_moves: BeforeMoves | None = None) -> None:
        self.folders = config.folders
        self._inbox = Inbox(self.folders.inbox, config.watch.extensions, config.watch.rescan_seconds)
        self.worker = worker or WorkerId.of_this_process()
        self.work = self.folders.state / "work"
        self.mine = self.work / self.worker.name
        self.machine = machine_identity()
        self._lease = Lease(self.mine, self.worker, self.machine)
        self._claims = Claims(self.mine, self.worker, config.jobs.max_attempts)
        self._finisher = Finisher(self.folders, before_moves)  # hooks.py's pending record
        liveness = Liveness(self.worker, self.machine, config.daemon.lease_seconds)
        self._adoption = Adoption(self.work, self.mine, liveness, self.load)

    # --- set-up ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the folders, refuse folders on different filesystems, and register this worker."""
        for path in (self.folders.inbox, self.folders.outbox, self.folders.done,
                     self.folders.failed, self.folders.state):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno in durable.UNREACHABLE:  # not the config's fault: exit 1, restarted
                    raise TranscribedError(f"folders: {path} cannot be reached ({exc.strerror}); "
                                           "is the share mounted and its server up?") from None
                raise ConfigError(f"folders: cannot create {path}: {exc.strerror}") from None
        self._refuse_split_filesystems()
        self.mine.mkdir(parents=True, exist_ok=True)
        self.renew_lease()

    def _refuse_split_filesystems(self) -> None:
        devices = {name: os.stat(getattr(self.folders, name)).st_dev
                   for name in ("inbox", "outbox", "done", "failed", "state")}
        if len(set(devices.values())) > 1:
            other = next(n for n, d in devices.items() if d != devices["inbox"])
            raise ConfigError(
                f"folders.{other}: is on a different filesystem from folders.inbox; all folders "
                "must share one filesystem, because moves between them must be atomic renames")

    def renew_lease(self) -> None:
        """Tell other daemons this worker is alive (called by a heartbeat thread)."""
        self._lease.renew()

    def retire(self) -> None:
        """On a clean stop, remove this worker's lease and folder, unless jobs wait in it: those
        stay (with their attempt counts) for the next daemon to adopt."""
        self.sweep(wait=RETIRE_SWEEP_SECONDS)
        self._lease.retire()

    def sweep(self, wait: float = 0.0) -> None:
        """Remove finished jobs' folders left behind holding only a network filesystem's stand-in
        for a file unlinked while still open (`.fuse_hidden*` on sshfs, `.nfs*` on NFS: the job's
        log, closed a moment later), waiting up to `wait` seconds for those to go."""
        deadline = time.monotonic() + wait
        while True:
            left = [d for d in _subfolders(self.mine) if _only_leftovers(d) and not _removed(d)]
            if not left or time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    # --- the inbox -------------------------------------------------------------------------------

    def scan(self) -> list[Path]:
        """Every file in the inbox that looks like audio or video and is not a temporary name."""
        return self._inbox.scan()

    def not_regular(self) -> list[Path]:
        """The last scan's entries with a wanted name that are no regular files (links, FIFOs,
        sockets, device nodes): nothing to settle, so they may be taken (and failed) at once."""
        return self._inbox.not_regular()

    def stray_sidecars(self, older_than: float) -> list[Path]:
        """Sidecars in the inbox, untouched for `older_than` seconds, whose audio is not there."""
        return self._inbox.stray_sidecars(older_than)

    def wants(self, name: str) -> bool:
        """Is this a file name the daemon takes (once it is complete)?"""
        return self._inbox.wants(name)

    def relative(self, path: Path) -> PurePosixPath:
        """A path in the inbox, relative to it (kept in outbox/, done/ and failed/)."""
        return self._inbox.relative(path)

    def claim(self, path: Path) -> Job | None:
        """Take `path` out of the inbox for this worker; None if another worker (or a user) was
        faster, or while a folder refuses to take finished work."""
        self.retry_held()
        if self.paused:
            return None
        return self._claims.claim(path, self.relative(path))

    # --- running jobs ----------------------------------------------------------------------------

    def save(self, job: Job) -> None:
        """Write the job's record; a full or read-only disk is logged, and the job goes on."""
        self._claims.save(job)

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too."""
        self._claims.start_attempt(job)

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""
        self._claims.note_error(job, error)

    def exhausted(self, job: Job) -> bool:
        """Has this job been tried as often as it may be?"""
        return self._claims.exhausted(job)

    def load(self, job_dir: Path) -> Job | None:
        """Read a job back from its folder; a half-made claim is removed and a half-finished one
        is finished (None for both)."""
        if has_plan(job_dir):
            self._finisher.resume(job_dir)
            return None
        return read_job(job_dir)

    # --- finishing -------------------------------------------------------------------------------

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """Move the results (suffix -> staged file) into the outbox, then the source to done/."""
        return self._finisher.complete(job, outputs)

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path] | None = None,
             logs: dict[str, Path] | None = None) -> dict[str, Path]:
        """Move the source to failed/ beside `<name>.error.json` (and its log); results kept so
        far (a plain transcript when a later stage failed) go to the outbox."""
        return self._finisher.fail(job, report, outputs, logs)

    def requeue(self, job: Job) -> Path:
        """Put the source back in the inbox untouched (shutdown, lost GPU) and forget the job."""
        return self._finisher.requeue(job)

    def retry_held(self, now: float | None = None) -> None:
        """Try again the moves of finished jobs that a folder refused, those due by `now` (a
        `time.monotonic()` reading; the present by default)."""
        self._finisher.retry_held(now)

    def is_held(self, job: Job) -> bool:
        """Did a folder refuse this job's moves (its files wait in the work folder for a retry)?"""
        return self._finisher.is_held(job)

    @property
    def paused(self) -> bool:
        """Is a folder refusing finished work (so no new file should be claimed)?"""
        return self._finisher.paused

    # --- taking back jobs of workers that are gone -----------------------------------------------

    def adopt_orphans(self) -> list[Job]:
        """Move the jobs of dead workers into this worker's folder; returns those still to run."""
        self.retry_held()
        return self._adoption.adopt_orphans()


#: How long a clean stop waits for a share to drop its stand-ins of the last job's log.
RETIRE_SWEEP_SECONDS = 2.0
#: Names network filesystems give a file unlinked while open (libfuse, the NFS client).
_LEFTOVER_PREFIXES = (".fuse_hidden", ".nfs")


def _subfolders(folder: Path) -> list[Path]:
    with contextlib.suppress(OSError):
        return [p for p in folder.iterdir() if p.is_dir()]
    return []


def _only_leftovers(folder: Path) -> bool:
    """Nothing in `folder` but stand-ins of unlinked open files (a live job always has job.json)."""
    try:
        return all(name.startswith(_LEFTOVER_PREFIXES) for name in os.listdir(folder))
    except OSError:
        return False


def _removed(folder: Path) -> bool:
    try:
        folder.rmdir()
    except OSError:
        return False
    return True
