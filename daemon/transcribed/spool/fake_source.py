"""A fake job source for fast tests of the consumer loop, as engine/fake.py is a fake engine.

`FakeSource` offers the files of one plain folder (oldest name first), claims each into the work
folder like the inbox does (a real job, a real attempt count), and keeps each job's end in a
list instead of moving files to an outbox: a test reads `ended` to see which jobs ended how, in
which order, through which source. A released file goes back into its folder.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import BadInput
from .claim import Claims
from .folder import WorkFolder
from .jobs import Job, read_job
from .seam import Preference


@dataclass(frozen=True)
class Ended:
    """One job's end as the source was told it."""

    how: str  # "done", "failed" or "released"
    file: str
    #: The results' text by suffix (done), or the report (failed).
    results: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


class FakeSource:
    """The files of `folder`, claimed by name order; their ends kept in `ended`."""

    def __init__(self, spool: WorkFolder, folder: Path, name: str = "fake") -> None:
        self.name = name
        self.spool = spool
        self.folder = folder
        self._claims = Claims(spool.mine, name)
        self.ended: list[Ended] = []

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def claim(self, up_to: int, prefer: Preference | None = None) -> list[Job]:
        claimed: list[Job] = []
        for path in sorted(self.folder.iterdir()):
            if len(claimed) >= up_to:
                break
            job = self._claims.claim(path, PurePosixPath(path.name))
            if job is not None:
                claimed.append(job)
        return claimed

    def set_aside(self) -> list[tuple[Job, BadInput]]:
        return []

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        results = {suffix: path.read_text(encoding="utf-8", errors="replace")
                   for suffix, path in outputs.items() if path.is_file()}
        self.ended.append(Ended("done", str(job.relpath), results=results))
        return self._forget(job, outputs)

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path],
             logs: dict[str, Path]) -> dict[str, Path]:
        self.ended.append(Ended("failed", str(job.relpath), report=report))
        return self._forget(job, {**outputs, **logs})

    def release(self, job: Job) -> Path:
        back = self.folder / job.relpath.name
        os.rename(job.source, back)
        self.ended.append(Ended("released", str(job.relpath)))
        shutil.rmtree(job.dir, ignore_errors=True)
        return back

    def take_back(self, job_dir: Path) -> Job | None:
        return read_job(job_dir)

    def _forget(self, job: Job, files: dict[str, Path]) -> dict[str, Path]:
        """The job's folder goes; each file is reported where it was (nothing was moved)."""
        placed = {str(path): path for path in [job.source, *files.values()]}
        shutil.rmtree(job.dir, ignore_errors=True)
        return placed
