"""The seams between the consumer and the places jobs come from and end in.

`JobSource` is where jobs come from and where each one's end is sent: the inbox folder
(intake/source.py) and the media libraries (library/source.py) implement it, and
`FakeSource` (spool/fake_source.py) is the one fast tests of the loop use. A job records the
name of the source that claimed it (`Job.intake`), so its end goes back there, even after a
crash and an adoption by another daemon.

`Spool` is the work folder under all of them, as the consumer and the service see it: this
worker's lease, the attempts counted before each run, adoption of gone workers' jobs, the
finished jobs whose moves a folder refused (held, and retried), and whether storage takes writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from ..errors import BadInput
from .jobs import Job
from .storage import Storage
from .workers import WorkerId


class Preference(Protocol):
    """Which waiting files a source offers first (the consumer's: those that run with a Whisper
    model already loaded), and how long any other file may wait behind them before the order of
    arrival rules again."""

    max_wait_seconds: float

    def wants(self, relpath: PurePosixPath, path: Path) -> bool:
        """Should this waiting file (its path relative to the source, and on disk) go first?"""


class JobSource(Protocol):
    """Where jobs come from, and where each one's end is carried out."""

    #: Recorded in every job it claims (`Job.intake`): the consumer sends the job's end here.
    name: str

    def prepare(self) -> None:
        """Make what the source keeps (its folders), before anything is claimed."""

    def claim(self, up_to: int, prefer: Preference | None = None) -> list[Job]:
        """Up to `up_to` complete files, each claimed for this worker, oldest first (those `prefer`
        wants first, where the source can tell). 0: only look, so that the reports count what
        waits (a paused daemon)."""

    def set_aside(self) -> list[tuple[Job, BadInput]]:
        """Entries claimed only to be failed at once, each with why (the inbox: a sidecar whose
        audio never came). Asked every `watch.rescan_seconds`."""

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """Carry out a transcribed job's end: its results (suffix -> staged file) delivered, its
        source where done files go. Returns where each file went (str(old path) -> new path)."""

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path],
             logs: dict[str, Path]) -> dict[str, Path]:
        """Carry out a failed job's end: the report and the job's log beside its source, results
        kept so far (a plain transcript when a later stage failed) delivered."""

    def release(self, job: Job) -> Path:
        """Give the job's file back untouched (the daemon stops, the GPU is lost, it waited too
        long claimed ahead), for this or another daemon to claim again."""

    def take_back(self, job_dir: Path) -> Job | None:
        """A job of this source found in this worker's folder after a crash (adopted from a gone
        worker): the job to run again, or None when there is nothing left to run."""


class Spool(Protocol):
    """The work folder, as the consumer and the service use it."""

    worker: WorkerId
    #: Whether the folders' filesystem takes writes (full, over quota, read-only: storage.py).
    storage: Storage

    def prepare(self) -> None:
        """Create the folders and register this worker, before anything is claimed."""

    def renew_lease(self) -> None:
        """Tell other daemons this worker is alive."""

    def retire(self) -> None:
        """On a clean stop, leave the work folder to the next daemon."""

    def sweep(self, wait: float = 0.0) -> None:
        """Remove finished jobs' folders a network filesystem left behind."""

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too."""

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""

    def forget_attempt(self, job: Job) -> None:
        """The attempt just started does not count: storage refused a write of the daemon's own
        (the job's record says so once it can be written)."""

    def adopt_orphans(self, take_back: Callable[[Path], Job | None]) -> list[Job]:
        """Move the jobs of gone workers into this worker's folder: those already finished are
        finished, the others read back by `take_back`; returns the jobs still to run."""

    def retry_held(self) -> None:
        """Try again the moves of finished jobs that a folder refused, those due now."""

    def is_held(self, job: Job) -> bool:
        """Did a folder refuse this job's moves (its files wait in the work folder)?"""

    @property
    def paused(self) -> bool:
        """Is a folder refusing finished work (so no new file should be claimed)?"""
