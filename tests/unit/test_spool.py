"""The spool's decisions on real temp folders: who is gone, what a crash left, which name a result gets."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path, PurePosixPath

from tests.support.daemon import wait_until

from transcribed.config import Config, Daemon, Folders
from transcribed.finish import RETRY_FIRST_SECONDS, free_name_beside
from transcribed.jobs import Job
from transcribed.spool import Spool


def _spool(root: Path, lease_seconds: float = 60.0) -> Spool:
    folders = Folders(*(root / name for name in ("inbox", "outbox", "done", "failed", "state")))
    spool = Spool(Config(folders=folders, daemon=Daemon(lease_seconds=lease_seconds)))
    spool.prepare()
    return spool


def _worker_with_job(spool: Spool, name: str, lease: dict | None = None, file: str = "a.wav") -> Path:
    worker = spool.work / name
    job = worker / "20260101T000000000000Z-abcdef"
    (job / "src").mkdir(parents=True)
    (job / "src" / file).write_bytes(b"audio")
    (job / "job.json").write_text(json.dumps({"id": job.name, "relpath": file, "attempts": 1}))
    if lease is not None:
        (worker / "worker.json").write_text(json.dumps(lease))
    return worker


def test_another_hosts_renewed_lease_keeps_its_jobs_and_a_stale_one_gives_them_up(tmp_path: Path) -> None:
    """The lease's content must change within lease_seconds of our own clock."""
    spool = _spool(tmp_path, lease_seconds=0.3)
    worker = _worker_with_job(spool, "otherhost.1.2", {"beat": 1})
    for beat in range(2, 8):
        (worker / "worker.json").write_text(json.dumps({"beat": beat}))
        assert spool.adopt_orphans() == []
    jobs = wait_until(spool.adopt_orphans, 5, "adoption once the lease stops changing")
    assert [str(job.relpath) for job in jobs] == ["a.wav"]
    assert jobs[0].source.read_bytes() == b"audio"
    assert not worker.exists()


def test_adoption_never_deletes_a_gone_workers_folder_that_still_holds_something(tmp_path: Path) -> None:
    """Only the lease is removed: anything else there is kept (a wrongly judged worker's claim)."""
    spool = _spool(tmp_path)
    worker = _worker_with_job(spool, f"{socket.gethostname()}.999999.5", spool.machine)
    (worker / "stray.wav").write_bytes(b"keep me")
    assert len(spool.adopt_orphans()) == 1
    assert sorted(os.listdir(worker)) == ["stray.wav"]


def test_a_job_whose_record_is_missing_keeps_its_file(tmp_path: Path) -> None:
    """Damage from outside (job.json gone) must not cost the file: it runs under its own name."""
    spool = _spool(tmp_path)
    worker = _worker_with_job(spool, f"{socket.gethostname()}.999999.5", spool.machine, file="x y.mp3")
    (worker / "20260101T000000000000Z-abcdef" / "job.json").unlink()
    (job,) = spool.adopt_orphans()
    assert job.relpath == PurePosixPath("x y.mp3") and job.source.read_bytes() == b"audio"


def test_a_plan_with_absolute_paths_from_before_adoption_is_carried_out(tmp_path: Path) -> None:
    """Version 1 plans named the old job folder; they are re-anchored, never taken as 'done'."""
    spool = _spool(tmp_path)
    worker = _worker_with_job(spool, f"{socket.gethostname()}.999999.5", spool.machine)
    job_dir = worker / "20260101T000000000000Z-abcdef"
    (job_dir / "out").mkdir()
    (job_dir / "out" / "a.txt").write_text("words")
    (job_dir / "plan.json").write_text(json.dumps({
        str(job_dir / "out" / "a.txt"): str(spool.folders.outbox / "a.txt"),
        str(job_dir / "src" / "a.wav"): str(spool.folders.done / "a.wav")}))
    assert spool.adopt_orphans() == []
    assert (spool.folders.done / "a.wav").read_bytes() == b"audio"
    assert (spool.folders.outbox / "a.txt").read_text() == "words"
    assert list(spool.mine.iterdir()) == [spool.mine / "worker.json"]


def _job(spool: Spool, name: str) -> Job:
    (spool.folders.inbox / name).write_bytes(b"audio")
    job = spool.claim(spool.folders.inbox / name)
    assert job is not None
    spool.start_attempt(job)
    return job


def test_result_names_too_long_for_the_filesystem_are_shortened_and_stay_distinct(tmp_path: Path) -> None:
    """A 250-byte source name still gets its results (name.log.jsonl would pass 255 bytes)."""
    spool = _spool(tmp_path)
    placed = []
    for n in range(2):
        job = _job(spool, "é" * 123 + ".wav")  # 250 bytes in UTF-8
        (job.staging / "r.log.jsonl").write_text(f"log {n}")
        placed.append(spool.complete(job, {".log.jsonl": job.staging / "r.log.jsonl"}))
    logs = sorted(spool.folders.outbox.iterdir())
    assert len(logs) == 2 and all(len(os.fsencode(p.name)) <= 255 for p in logs)
    assert sorted(p.read_text() for p in logs) == ["log 0", "log 1"]
    assert len(list(spool.folders.done.iterdir())) == 2


def test_a_name_taken_after_planning_gets_a_numbered_name_that_keeps_its_extension(tmp_path: Path) -> None:
    """`x.json` taken by someone else between plan and move: ours lands at `x.2.json`, nothing lost."""
    assert free_name_beside(tmp_path / "x.json") == tmp_path / "x.2.json"
    (tmp_path / "x.2.json").touch()
    assert free_name_beside(tmp_path / "x.json") == tmp_path / "x.3.json"


def test_claims_pause_while_a_folder_refuses_finished_work_and_resume_after(tmp_path: Path) -> None:
    """A refused move holds the job (its files stay in the work folder) and blocks new claims."""
    spool = _spool(tmp_path)
    job = _job(spool, "a.wav")
    (job.staging / "a.txt").write_text("words")
    spool.folders.outbox.rmdir()
    spool.folders.outbox.write_text("not a folder")  # makes every move into the outbox fail
    spool.complete(job, {".txt": job.staging / "a.txt"})
    assert job.source.exists() and (job.staging / "a.txt").exists()
    assert not spool.paused  # ENOTDIR is not a folder-wide refusal...
    (spool.folders.inbox / "b.wav").write_bytes(b"audio")
    assert spool.claim(spool.folders.inbox / "b.wav") is not None  # ...so claims go on
    spool.folders.outbox.unlink()
    spool.folders.outbox.mkdir()
    spool.retry_held(now=time.monotonic() + RETRY_FIRST_SECONDS)  # the first retry is due
    assert (spool.folders.outbox / "a.txt").read_text() == "words"
    assert (spool.folders.done / "a.wav").exists() and not job.dir.exists()


def test_claiming_a_file_deleted_since_the_scan_makes_no_job_and_no_error(tmp_path: Path) -> None:
    """The window between scan and claim: the rename finds nothing, and nothing is left behind."""
    spool = _spool(tmp_path)
    (spool.folders.inbox / "gone.wav").write_bytes(b"audio")
    (path,) = spool.scan()
    path.unlink()
    assert spool.claim(path) is None
    assert list(spool.mine.iterdir()) == [spool.mine / "worker.json"]


def test_a_job_whose_moves_were_refused_is_reported_as_held(tmp_path: Path) -> None:
    """The worker can tell 'moved' from 'waiting for a folder' after complete()."""
    spool = _spool(tmp_path)
    job = _job(spool, "a.wav")
    spool.folders.done.rmdir()
    spool.folders.done.write_text("not a folder")
    spool.complete(job, {})
    assert spool.is_held(job) and job.source.exists()
