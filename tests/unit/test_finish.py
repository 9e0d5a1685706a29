"""Finishing jobs on real temp folders: the plan's moves, result names, refused moves and old plans."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from transcribed.config import Folders
from transcribed.spool.claim import Claims
from transcribed.spool.finish import Finisher, free_name_beside, has_plan
from transcribed.spool.jobs import Job, JobRecords
from transcribed.spool.workers import WorkerId


def _folders(root: Path) -> Folders:
    folders = Folders(*(root / name for name in ("inbox", "outbox", "done", "failed", "state")))
    for path in (folders.inbox, folders.outbox, folders.done, folders.failed, folders.state):
        path.mkdir(parents=True)
    return folders


def _job(folders: Folders, name: str, sidecar: str | None = None) -> Job:
    """A claimed job with one attempt started, as the consumer has it when it finishes."""
    (folders.inbox / name).write_bytes(b"audio")
    if sidecar is not None:
        (folders.inbox / (name + ".yaml")).write_text(sidecar)
    claims = Claims(folders.state / "work" / "me")
    job = claims.claim(folders.inbox / name, PurePosixPath(name))
    assert job is not None
    JobRecords(WorkerId("h", 1, 2)).start_attempt(job)
    return job


def test_a_done_job_puts_results_in_the_outbox_and_source_and_sidecar_in_done(tmp_path: Path) -> None:
    """Every file lands under the source's name; the job folder is gone; names taken get `.2`."""
    folders = _folders(tmp_path)
    finisher = Finisher(folders)
    (folders.done / "a.wav").write_bytes(b"an older a.wav")
    job = _job(folders, "a.wav", sidecar="language: de\n")
    (job.staging / "r.txt").write_text("words")
    placed = finisher.complete(job, {".txt": job.staging / "r.txt"})
    assert placed[str(job.source)] == folders.done / "a.2.wav"
    assert (folders.outbox / "a.2.txt").read_text() == "words"
    assert (folders.done / "a.2.wav.yaml").read_text() == "language: de\n"
    assert (folders.done / "a.wav").read_bytes() == b"an older a.wav"
    assert not job.dir.exists()


def test_a_failed_job_lies_in_failed_beside_its_report_and_log(tmp_path: Path) -> None:
    """`<name>.error.json` and the log sit next to the source; a transcript kept goes to the outbox."""
    folders = _folders(tmp_path)
    job = _job(folders, "a.wav")
    (job.staging / "a.txt").write_text("partial")
    (job.dir / "log.jsonl").write_text("{}\n")
    Finisher(folders).fail(job, {"error": "bad"}, outputs={".txt": job.staging / "a.txt"},
                           logs={".log.jsonl": job.dir / "log.jsonl"})
    assert sorted(os.listdir(folders.failed)) == ["a.wav", "a.wav.error.json", "a.wav.log.jsonl"]
    assert json.loads((folders.failed / "a.wav.error.json").read_text()) == {"error": "bad"}
    assert (folders.outbox / "a.txt").read_text() == "partial"


def test_a_requeued_job_goes_back_to_the_inbox_untouched_with_its_sidecar(tmp_path: Path) -> None:
    """Shutdown or a lost GPU: the same bytes under the same name, nothing in done/ or failed/."""
    folders = _folders(tmp_path)
    job = _job(folders, "a.wav", sidecar="language: de\n")
    assert Finisher(folders).requeue(job) == folders.inbox / "a.wav"
    assert sorted(os.listdir(folders.inbox)) == ["a.wav", "a.wav.yaml"]
    assert (folders.inbox / "a.wav").read_bytes() == b"audio"
    assert os.listdir(folders.done) == [] == os.listdir(folders.failed)


def test_result_names_too_long_for_the_filesystem_are_shortened_and_stay_distinct(tmp_path: Path) -> None:
    """A 250-byte source name still gets its results (name.log.jsonl would pass 255 bytes)."""
    folders = _folders(tmp_path)
    finisher = Finisher(folders)
    for n in range(2):
        job = _job(folders, "é" * 123 + ".wav")  # 250 bytes in UTF-8
        (job.staging / "r.log.jsonl").write_text(f"log {n}")
        finisher.complete(job, {".log.jsonl": job.staging / "r.log.jsonl"})
    logs = sorted(folders.outbox.iterdir())
    assert len(logs) == 2 and all(len(os.fsencode(p.name)) <= 255 for p in logs)
    assert sorted(p.read_text() for p in logs) == ["log 0", "log 1"]
    assert len(list(folders.done.iterdir())) == 2


def test_a_name_taken_after_planning_gets_a_numbered_name_that_keeps_its_extension(tmp_path: Path) -> None:
    """`x.json` taken by someone else between plan and move: ours lands at `x.2.json`, nothing lost."""
    assert free_name_beside(tmp_path / "x.json") == tmp_path / "x.2.json"
    (tmp_path / "x.2.json").touch()
    assert free_name_beside(tmp_path / "x.json") == tmp_path / "x.3.json"
    assert free_name_beside(tmp_path / "README") == tmp_path / "README.2"


def test_a_job_whose_moves_were_refused_is_held_with_its_files_until_a_retry(tmp_path: Path) -> None:
    """The consumer can tell 'moved' from 'waiting for a folder'; the retry, once due, finishes it."""
    folders = _folders(tmp_path)
    finisher = Finisher(folders)
    job = _job(folders, "a.wav")
    folders.done.rmdir()
    folders.done.write_text("not a folder")
    finisher.complete(job, {})
    assert finisher.is_held(job) and job.source.exists() and has_plan(job.dir)
    assert not finisher.paused  # ENOTDIR is one file's trouble, not a folder refusing everything
    folders.done.unlink()
    folders.done.mkdir()
    finisher.retry_held(now=0.0)  # long before the retry is due: nothing happens
    assert finisher.is_held(job) and job.source.exists()
    finisher.retry_held(now=float("inf"))
    assert not finisher.is_held(job) and (folders.done / "a.wav").exists() and not job.dir.exists()


def test_a_version_1_plan_with_absolute_paths_is_re_anchored_where_the_job_now_is(tmp_path: Path) -> None:
    """Version 1 plans named the job folder where it was; after a move (adoption) they still hold."""
    folders = _folders(tmp_path)
    job = _job(folders, "a.wav")
    (job.staging / "a.txt").write_text("words")
    (job.dir / "plan.json").write_text(json.dumps({
        str(job.staging / "a.txt"): str(folders.outbox / "a.txt"),
        str(job.source): str(folders.done / "a.wav")}))
    moved = folders.state / "work" / "adopter" / job.dir.name
    moved.parent.mkdir()
    os.rename(job.dir, moved)
    assert Finisher(folders).resume(moved)
    assert (folders.done / "a.wav").read_bytes() == b"audio"
    assert (folders.outbox / "a.txt").read_text() == "words"
    assert not moved.exists()
