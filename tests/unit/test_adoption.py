"""Adoption on real temp folders: a gone worker's jobs are taken over, a live one's are left alone."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from tests.support.daemon import wait_until
from transcribed.config import Config, Daemon, Folders
from transcribed.spool.folder import WorkFolder
from transcribed.spool.jobs import read_job
from transcribed.spool.workers import WorkerId, process_start_time

JOB = "20260101T000000000000Z-abcdef"


def _spool(root: Path, lease_seconds: float = 60.0) -> WorkFolder:
    folders = Folders(*(root / name for name in ("inbox", "outbox", "done", "failed", "state")))
    spool = WorkFolder(Config(folders=folders, daemon=Daemon(lease_seconds=lease_seconds)))
    spool.prepare()
    return spool


def _worker_with_job(spool: WorkFolder, name: str, lease: dict | None = None, file: str = "a.wav") -> Path:
    """Another worker's folder, as it left it: one claimed job, and its lease if given."""
    worker = spool.work / name
    job = worker / JOB
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
        assert spool.adopt_orphans(read_job) == []
    jobs = wait_until(lambda: spool.adopt_orphans(read_job), 5, "adoption once the lease stops changing")
    assert [str(job.relpath) for job in jobs] == ["a.wav"]
    assert jobs[0].source.read_bytes() == b"audio" and jobs[0].attempts == 1
    assert jobs[0].dir == spool.mine / JOB
    assert not worker.exists()


def test_a_running_local_workers_jobs_are_never_adopted_however_old_its_lease(tmp_path: Path) -> None:
    """Same machine, process running (our parent process stands in for a daemon): its jobs stay."""
    spool = _spool(tmp_path, lease_seconds=0.0)
    parent = WorkerId(socket.gethostname(), os.getppid(), process_start_time(os.getppid()) or 0)
    live = _worker_with_job(spool, parent.name, spool.machine)
    odd = _worker_with_job(spool, "not-a-worker")  # no worker's name: not ours to judge
    for _ in range(3):
        assert spool.adopt_orphans(read_job) == []
    assert (live / JOB / "src" / "a.wav").exists() and (odd / JOB / "src" / "a.wav").exists()


def test_adoption_never_deletes_a_gone_workers_folder_that_still_holds_something(tmp_path: Path) -> None:
    """Only the lease is removed: anything else there is kept (a wrongly judged worker's claim)."""
    spool = _spool(tmp_path)
    worker = _worker_with_job(spool, f"{socket.gethostname()}.999999.5", spool.machine)
    (worker / "stray.wav").write_bytes(b"keep me")
    assert len(spool.adopt_orphans(read_job)) == 1
    assert sorted(os.listdir(worker)) == ["stray.wav"]


def test_an_adopted_job_whose_record_is_missing_keeps_its_file(tmp_path: Path) -> None:
    """Damage from outside (job.json gone) must not cost the file: it runs under its own name."""
    spool = _spool(tmp_path)
    worker = _worker_with_job(spool, f"{socket.gethostname()}.999999.5", spool.machine, file="x y.mp3")
    (worker / JOB / "job.json").unlink()
    (job,) = spool.adopt_orphans(read_job)
    assert str(job.relpath) == "x y.mp3" and job.source.read_bytes() == b"audio"


def test_an_adopted_job_with_a_version_1_plan_is_finished_not_run_again(tmp_path: Path) -> None:
    """Version 1 plans named the old job folder; after adoption they are re-anchored, not taken as done."""
    spool = _spool(tmp_path)
    worker = _worker_with_job(spool, f"{socket.gethostname()}.999999.5", spool.machine)
    job_dir = worker / JOB
    (job_dir / "out").mkdir()
    (job_dir / "out" / "a.txt").write_text("words")
    (job_dir / "plan.json").write_text(json.dumps({
        str(job_dir / "out" / "a.txt"): str(spool.folders.outbox / "a.txt"),
        str(job_dir / "src" / "a.wav"): str(spool.folders.done / "a.wav")}))
    assert spool.adopt_orphans(read_job) == []
    assert (spool.folders.done / "a.wav").read_bytes() == b"audio"
    assert (spool.folders.outbox / "a.txt").read_text() == "words"
    assert list(spool.mine.iterdir()) == [spool.mine / "worker.json"]
