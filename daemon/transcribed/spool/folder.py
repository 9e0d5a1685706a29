"""The work folder: this worker's part of the state folder, and every job's record, attempts and end.

```
inbox/<rel>                          waiting      users copy files here
state/work/<worker>/<job>/src/<name> running      claimed by one atomic rename (exactly once)
outbox/<rel-stem>.{json,txt,...}     done         results, moved in without overwriting
done/<rel>                           done         the source, once its results are in the outbox
failed/<rel> + <rel>.error.json      failed       bad input, or a poison file
```

`WorkFolder` is the `Spool` the consumer and the service hold (seam.py). It sets the folders up
(they exist, and share one filesystem, before anything is claimed), keeps this worker's lease,
counts attempts (jobs.py), adopts the jobs of gone workers (adoption.py) and owns the
`Finisher` (finish.py) through which every job source carries out a job's end, and the
`Storage` monitor (storage.py): no claims while the filesystem is full or read-only, and what
it refused written once it takes writes again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from .. import durable
from ..config import Config
from ..errors import ConfigError, StorageFault, TranscribedError, storage_fault
from .adoption import Adoption
from .finish import BeforeMoves, BeforePlan, Finisher, has_plan
from .jobs import Job, JobRecords
from .storage import Storage, floor_bytes
from .workers import Lease, Liveness, WorkerId, machine_identity

#: How long a clean stop waits for a share to drop its stand-ins of the last job's log.
RETIRE_SWEEP_SECONDS = 2.0
#: Names network filesystems give a file unlinked while open (libfuse, the NFS client).
_LEFTOVER_PREFIXES = (".fuse_hidden", ".nfs")


class WorkFolder:
    """`state/work/<worker>/`: this worker's jobs, from their claim to their end."""

    def __init__(self, config: Config, worker: WorkerId | None = None,
                 before_moves: BeforeMoves | None = None, before_plan: BeforePlan | None = None,
                 storage: Storage | None = None) -> None:
        self.folders = config.folders
        self.worker = worker or WorkerId.of_this_process()
        self.work = self.folders.state / "work"
        self.mine = self.work / self.worker.name
        self.machine = machine_identity()
        #: Whether the folders' filesystem takes writes (service.py makes it with the floor
        #: resolved; alone, `auto` is the least floor).
        self.storage = storage or Storage(self.folders.state,
                                          floor_bytes(self.folders.min_free_bytes, None)[0])
        self._lease = Lease(self.mine, self.worker, self.machine)
        self._records = JobRecords(self.worker, self.storage)
        #: Carries out each job's plan of moves; `before_moves` records a pending hook delivery,
        #: `before_plan` writes the job's hook note.
        self.finisher = Finisher(self.folders, before_moves, before_plan, self.storage)
        self._liveness = Liveness(self.worker, self.machine, config.daemon.lease_seconds)
        self._adoption = Adoption(self.work, self.mine, self._liveness)
        self.storage.on_recovered(self._storage_recovered)

    # --- set-up and the lease ---------------------------------------------------------------------

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
        try:
            with durable.own_write(self.work):
                self.mine.mkdir(parents=True, exist_ok=True)
        except StorageFault as fault:  # the daemon starts, and waits for storage (no exit 1 to loop on)
            self.storage.report(fault)
            return
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
        """Tell other daemons this worker is alive (called by a heartbeat thread). A full or
        read-only disk is the storage monitor's to tell; the lease is renewed at its recovery,
        and other daemons wait for that before they take this one for gone (`_storage_recovered`
        is theirs too)."""
        try:
            self._lease.renew()
        except OSError as exc:
            fault = storage_fault(exc, self.mine)
            if fault is None:
                raise
            self.storage.report(fault)

    def _storage_recovered(self) -> None:
        """Storage takes writes again: this worker's folder and lease first (a start on a full
        disk), the job records it refused, and every lease's clock started again."""
        self._liveness.forget_seen()
        try:
            self.mine.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # refused again: reported by the next write, and done at the next recovery
        self.renew_lease()
        self._records.flush()

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

    # --- running jobs ----------------------------------------------------------------------------

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too."""
        self._records.start_attempt(job)

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""
        self._records.note_error(job, error)

    def forget_attempt(self, job: Job) -> None:
        """The attempt just started does not count: storage refused a write of the daemon's own."""
        self._records.forget_attempt(job)

    def adopt_orphans(self, take_back: Callable[[Path], Job | None]) -> list[Job]:
        """Move the jobs of dead workers into this worker's folder: a job whose plan was written
        is finished here, the others are read back by `take_back` (their job source's); returns
        those still to run."""
        self.retry_held()
        return self._adoption.adopt_orphans(lambda job_dir: self._finish_or(take_back, job_dir))

    def _finish_or(self, take_back: Callable[[Path], Job | None], job_dir: Path) -> Job | None:
        if has_plan(job_dir):
            self.finisher.resume(job_dir)
            return None
        return take_back(job_dir)

    # --- finished jobs a folder refused --------------------------------------------------------

    def retry_held(self) -> None:
        """Try again the moves of finished jobs that a folder refused, those due now."""
        self.finisher.retry_held()

    def is_held(self, job: Job) -> bool:
        """Did a folder refuse this job's moves (its files wait in the work folder for a retry)?"""
        return self.finisher.is_held(job)

    @property
    def paused(self) -> bool:
        """Is a folder refusing finished work, or storage short (so no new file should be
        claimed)?"""
        return self.finisher.paused or self.storage.waiting


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
