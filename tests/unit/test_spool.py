"""The work folder as the consumer uses it, on real temp folders: set-up, and claims that wait
for a folder.

Each concept has its own tests: test_inbox, test_jobs, test_finish, test_workers, test_adoption.
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

from transcribed.config import Config, Folders
from transcribed.spool.claim import Claims
from transcribed.spool.finish import RETRY_FIRST_SECONDS
from transcribed.spool.folder import WorkFolder
from transcribed.spool.jobs import Job


def _spool(root: Path) -> WorkFolder:
    folders = Folders(*(root / name for name in ("inbox", "outbox", "done", "failed", "state")))
    spool = WorkFolder(Config(folders=folders))
    spool.prepare()
    return spool


def _claim(spool: WorkFolder, name: str) -> Job | None:
    (spool.folders.inbox / name).write_bytes(b"audio")
    return Claims(spool.mine).claim(spool.folders.inbox / name, PurePosixPath(name))


def _job(spool: WorkFolder, name: str) -> Job:
    job = _claim(spool, name)
    assert job is not None
    spool.start_attempt(job)
    return job


def test_prepare_makes_the_folders_and_registers_this_worker(tmp_path: Path) -> None:
    """After prepare() every folder exists and this worker's lease names it; retire() removes both."""
    spool = _spool(tmp_path)
    assert all(getattr(spool.folders, name).is_dir() for name in ("inbox", "outbox", "done", "failed"))
    assert (spool.mine / "worker.json").is_file() and spool.mine.name == spool.worker.name
    spool.retire()
    assert not spool.mine.exists()


def test_claims_pause_while_a_folder_refuses_finished_work_and_resume_after(tmp_path: Path) -> None:
    """A refused move holds the job (its files stay in the work folder) and blocks new claims."""
    spool = _spool(tmp_path)
    job = _job(spool, "a.wav")
    (job.staging / "a.txt").write_text("words")
    spool.folders.outbox.rmdir()
    spool.folders.outbox.write_text("not a folder")  # makes every move into the outbox fail
    spool.finisher.complete(job, {".txt": job.staging / "a.txt"})
    assert job.source.exists() and (job.staging / "a.txt").exists()
    assert not spool.paused  # ENOTDIR is not a folder-wide refusal...
    assert _claim(spool, "b.wav") is not None  # ...so claims go on
    spool.folders.outbox.unlink()
    spool.folders.outbox.mkdir()
    spool.finisher.retry_held(now=time.monotonic() + RETRY_FIRST_SECONDS)  # the first retry is due
    assert (spool.folders.outbox / "a.txt").read_text() == "words"
    assert (spool.folders.done / "a.wav").exists() and not job.dir.exists()


def test_a_job_whose_moves_were_refused_is_reported_as_held(tmp_path: Path) -> None:
    """The consumer can tell 'moved' from 'waiting for a folder' after complete()."""
    spool = _spool(tmp_path)
    job = _job(spool, "a.wav")
    spool.folders.done.rmdir()
    spool.folders.done.write_text("not a folder")
    spool.finisher.complete(job, {})
    assert spool.is_held(job) and job.source.exists()
