"""Jobs on real temp folders: the claim, the record a job keeps, and what a damaged folder reads back as."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from transcribed.intake.inbox import Inbox
from transcribed.spool.claim import Claims
from transcribed.spool.jobs import JobRecords, JobState, intake_of, read_job
from transcribed.spool.workers import WorkerId


def _claims(root: Path) -> tuple[Inbox, Claims]:
    (root / "inbox").mkdir(parents=True)
    return Inbox(root / "inbox", ["wav"]), Claims(root / "work" / "me")


def test_a_claim_moves_the_file_and_its_sidecar_into_the_job_with_its_record(tmp_path: Path) -> None:
    """One rename out of the inbox; the record is on disk from the start."""
    inbox, claims = _claims(tmp_path)
    (inbox.folder / "sub").mkdir()
    (inbox.folder / "sub" / "a.wav").write_bytes(b"audio")
    (inbox.folder / "sub" / "a.wav.yaml").write_text("language: de\n")
    job = claims.claim(inbox.folder / "sub" / "a.wav", PurePosixPath("sub/a.wav"))
    assert job is not None
    assert job.source.read_bytes() == b"audio" and list(job.sidecars()) == [".yaml"]
    assert inbox.scan() == [] and not (inbox.folder / "sub" / "a.wav.yaml").exists()
    assert json.loads((job.dir / "job.json").read_text())["relpath"] == "sub/a.wav"
    assert read_job(job.dir) == job


def test_claiming_a_file_deleted_since_the_scan_makes_no_job_and_no_error(tmp_path: Path) -> None:
    """The window between scan and claim: the rename finds nothing, and nothing is left behind."""
    inbox, claims = _claims(tmp_path)
    (inbox.folder / "gone.wav").write_bytes(b"audio")
    (path,) = inbox.scan()
    path.unlink()
    assert claims.claim(path, inbox.relative(path)) is None
    assert list(claims.folder.iterdir()) == []


def test_each_attempt_is_counted_before_it_runs_and_its_error_kept(tmp_path: Path) -> None:
    """A crash during an attempt counts it; the record read back says what failed and who ran it."""
    inbox, claims = _claims(tmp_path)
    records = JobRecords(WorkerId("h", 1, 2))
    (inbox.folder / "a.wav").write_bytes(b"audio")
    job = claims.claim(inbox.folder / "a.wav", PurePosixPath("a.wav"))
    assert job is not None
    records.start_attempt(job)
    records.note_error(job, "RuntimeError: boom")
    assert read_job(job.dir) == job and job.attempts == 1
    records.start_attempt(job)
    again = read_job(job.dir)
    assert again is not None and again.attempts == 2
    assert [(h["attempt"], h["worker"], h.get("error")) for h in again.history] == [
        (1, "h.1.2", "RuntimeError: boom"), (2, "h.1.2", None)]
    assert job.staging.is_dir()


def test_a_job_whose_record_is_missing_keeps_its_file(tmp_path: Path) -> None:
    """Damage from outside (job.json gone) must not cost the file: it runs under its own name."""
    job_dir = tmp_path / "20260101T000000000000Z-abcdef"
    (job_dir / "src").mkdir(parents=True)
    (job_dir / "src" / "x y.mp3").write_bytes(b"audio")
    job = read_job(job_dir)
    assert job is not None and job.relpath == PurePosixPath("x y.mp3") and job.attempts == 0
    assert job.source.read_bytes() == b"audio"


def test_a_job_folder_left_by_a_crash_mid_claim_is_removed(tmp_path: Path) -> None:
    """A record but no source: nothing was claimed, so the folder goes."""
    job_dir = tmp_path / "20260101T000000000000Z-abcdef"
    (job_dir / "src").mkdir(parents=True)
    (job_dir / "job.json").write_text("{}")
    assert read_job(job_dir) is None and not job_dir.exists()


def test_a_job_records_the_source_that_claimed_it_and_reads_it_back(tmp_path: Path) -> None:
    """The consumer sends a job's end to the source that claimed it, after a crash too; a record
    written before sources had names is the inbox's, or the library's where `library.json` is."""
    inbox, _ = _claims(tmp_path)
    (inbox.folder / "a.wav").write_bytes(b"audio")
    job = Claims(tmp_path / "work" / "me", intake="elsewhere").claim(inbox.folder / "a.wav",
                                                                     PurePosixPath("a.wav"))
    assert job is not None and job.intake == "elsewhere"
    assert intake_of(job.dir) == "elsewhere" and read_job(job.dir) == job
    old = tmp_path / "old"
    (old / "src").mkdir(parents=True)
    (old / "src" / "b.wav").write_bytes(b"audio")
    (old / "job.json").write_text(json.dumps({"id": "old", "relpath": "b.wav"}))
    assert intake_of(old) == "inbox"
    (old / "library.json").write_text("{}")
    assert intake_of(old) == "library"


def test_job_states_read_as_the_words_the_logs_use() -> None:
    """A state is a string where one is expected (log fields, counters)."""
    assert [str(s.value) for s in JobState] == ["waiting", "running", "done", "failed"]
    assert JobState.DONE == "done"
