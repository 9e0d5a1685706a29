"""Adoption: the jobs of a worker that is gone are taken into this worker's folder.

kill -9, a power cut, a lost node and a second SIGTERM all leave the same thing behind: job
folders in `state/work/<worker>/`. Once that worker is gone (`workers.Liveness`), each job folder
is renamed into ours, so among any number of adopters exactly one wins it; the job is then read
back by its job source, or finished where its plan was written (`finish.py`). Its attempt count comes with
it: a file that kills every worker that takes it becomes poison, not an endless loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .. import durable
from ..logs import get_logger
from .jobs import Job
from .workers import Liveness, forget_worker

log = get_logger()


class Adoption:
    """Takes the jobs of gone workers under `work` into this worker's folder, `mine`."""

    def __init__(self, work: Path, mine: Path, liveness: Liveness) -> None:
        self.work = work
        self.mine = mine
        self.liveness = liveness

    def adopt_orphans(self, load: Callable[[Path], Job | None]) -> list[Job]:
        """Move the jobs of dead workers into this worker's folder; returns those still to run,
        each read back from its adopted folder by `load` (None: finished, or nothing to run)."""
        adopted: list[Job] = []
        try:
            others = sorted(p for p in self.work.iterdir() if p != self.mine and p.is_dir())
        except FileNotFoundError:
            return adopted
        except OSError as exc:  # the share is away (EIO, ENOTCONN): look again at the next rescan
            log.warning("spool.adoption_skipped", error=str(exc), reason="the work folder cannot be read")
            return adopted
        for worker_dir in others:
            reason = self.liveness.gone_because(worker_dir)
            if reason is None:
                continue
            log.warning("spool.worker_gone", worker=worker_dir.name, reason=reason)
            adopted += self._take_jobs_of(worker_dir, load)
            forget_worker(worker_dir)
        return adopted

    def _take_jobs_of(self, worker_dir: Path, load: Callable[[Path], Job | None]) -> list[Job]:
        """Rename each job folder of a gone worker into ours, and read back those still to run."""
        taken = []
        for job_dir in sorted(p for p in worker_dir.iterdir() if p.is_dir()):
            try:
                os.rename(job_dir, self.mine / job_dir.name)  # exactly one adopter wins
            except OSError:
                continue
            durable.fsync_dir(worker_dir)
            durable.fsync_dir(self.mine)
            job = load(self.mine / job_dir.name)
            if job is not None:
                log.warning("job.adopted", job_id=job.id, file=str(job.relpath),
                            attempts=job.attempts, previous_worker=worker_dir.name)
                taken.append(job)
        return taken
