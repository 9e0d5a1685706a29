"""A full, over-quota or read-only filesystem is waited out, never blamed on a file: the storage
monitor and each writer of the daemon's own, on a real small tmpfs filled for real (mounted in
this process: tests/support/smallfs.py), no process started."""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.smallfs import SmallFs, tmpfs
from transcribed import durable
from transcribed.config import Config, Folders, Hooks
from transcribed.errors import StorageFault
from transcribed.hooks import Hooks as HookQueue
from transcribed.library.ledger import Ledger
from transcribed.operations.stats import Stats
from transcribed.operations.status_file import STATUS_FILE_BYTES, StatusFile, judge, read_all
from transcribed.operations.status_line import describe
from transcribed.spool.claim import Claims
from transcribed.spool.finish import Finisher
from transcribed.spool.jobs import RECORD_FILE, Job, JobRecords
from transcribed.spool.storage import (
    CHECK_SECONDS,
    MIN_AUTO_FLOOR_BYTES,
    REMIND_SECONDS,
    Storage,
    floor_bytes,
)
from transcribed.spool.workers import WorkerId

MiB = 1 << 20
WORKER = WorkerId("h", 1, 2)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fs() -> Iterator[SmallFs]:
    with tmpfs(8 * MiB) as mounted:
        yield mounted


def _events(logs: list[dict[str, Any]], prefix: str = "storage.") -> list[str]:
    return [e["event"] for e in logs if e["event"].startswith(prefix)]


def _fault(folder: Path) -> StorageFault:
    """A real refused write into `folder` (on a full or read-only filesystem)."""
    with pytest.raises(StorageFault) as caught:
        durable.write_json_atomic(folder / "x.json", {"pad": "x" * 100_000})
    return caught.value


# --- the error ---------------------------------------------------------------------------------------

class TestOwnWrites:
    """Only the daemon's own writes into its folders turn ENOSPC, EDQUOT, EROFS into StorageFault."""

    def test_a_full_disk_refuses_a_record_as_a_storage_fault_and_the_old_record_stands(
            self, fs: SmallFs) -> None:
        durable.write_json_atomic(fs.root / "job.json", {"attempts": 1})
        fs.fill()
        fault = _fault(fs.root)
        assert fault.errno == errno.ENOSPC and fault.condition == "full" and fault.folder == fs.root
        assert isinstance(fault, OSError)  # every `except OSError` that handled it still does
        assert json.loads((fs.root / "job.json").read_text()) == {"attempts": 1}
        assert [p.name for p in fs.root.iterdir() if p.name.endswith(".tmp")] == []

    def test_a_read_only_filesystem_is_one_too(self, fs: SmallFs) -> None:
        fs.remount_readonly()
        assert _fault(fs.root).condition == "read_only"

    def test_other_errors_and_errors_outside_a_write_of_ours_stay_what_they_are(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError), durable.own_write(tmp_path):
            (tmp_path / "missing" / "x").write_text("x")
        with pytest.raises(OSError) as caught:  # inotify's watch limit says ENOSPC too
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        assert not isinstance(caught.value, StorageFault)


# --- the monitor -------------------------------------------------------------------------------------

class TestStorageMonitor:
    """Waiting and blocked, the floor, the probe, recovery, and how often it says so."""

    def test_below_the_floor_no_file_is_claimed_but_writes_go_on(self, fs: SmallFs) -> None:
        clock = Clock()
        storage = Storage(fs.root, floor=2 * MiB, clock=clock)
        assert storage.check() is False
        fs.fill(leave_bytes=MiB)
        clock.advance(CHECK_SECONDS)
        with capture_logs() as logs:
            assert storage.check() is True
        assert storage.waiting and not storage.blocked
        snapshot = storage.snapshot()
        assert (snapshot["condition"], snapshot["reason"]) == ("full", "below_floor")
        assert MiB <= snapshot["free_bytes"] < 2 * MiB and snapshot["floor_bytes"] == 2 * MiB
        assert _events(logs) == ["storage.full"]
        assert logs[0]["folder"] == str(fs.root) and logs[0]["free_bytes"] == snapshot["free_bytes"]

    def test_space_coming_back_ends_the_wait_at_the_next_look(self, fs: SmallFs) -> None:
        clock = Clock()
        storage = Storage(fs.root, floor=2 * MiB, clock=clock)
        ran: list[str] = []
        storage.on_recovered(lambda: ran.append("recovered"))
        fs.fill()
        storage.report(_fault(fs.root))
        assert storage.waiting and storage.blocked  # at once, before any look
        with capture_logs() as logs:
            assert storage.check() is True
            clock.advance(CHECK_SECONDS / 2)
            fs.free()
            assert storage.check() is True  # not looked at again yet
            clock.advance(CHECK_SECONDS)
            assert storage.check() is False
        assert not storage.waiting and not storage.blocked and ran == ["recovered"]
        assert _events(logs) == ["storage.full", "storage.recovered"]
        assert logs[0]["reason"] == "write_refused" and "No space left" in logs[0]["error"]

    def test_a_refused_write_waits_for_a_probe_even_when_statvfs_shows_room(self, fs: SmallFs) -> None:
        """A quota is not seen by statvfs: the refused write itself says so, until a probe
        written into its folder goes through."""
        clock = Clock()
        storage = Storage(fs.root, floor=0, clock=clock)
        fs.fill()
        fault = _fault(fs.root)
        fs.free()
        fs.fill(leave_bytes=16 * 1024)  # room by statvfs (no floor), not for the 64 kB probe
        storage.report(fault)
        assert storage.check() is True and storage.blocked
        fs.free()
        clock.advance(CHECK_SECONDS)
        assert storage.check() is False
        assert [p.name for p in fs.root.iterdir() if p.name.startswith(".transcribed-probe")] == []

    def test_read_only_blocks_writes_until_remounted(self, fs: SmallFs) -> None:
        clock = Clock()
        storage = Storage(fs.root, floor=MiB, clock=clock)
        fs.remount_readonly()
        with capture_logs() as logs:
            assert storage.check() is True
            assert storage.blocked and storage.snapshot()["condition"] == "read_only"
            fs.remount_readwrite()
            clock.advance(CHECK_SECONDS)
            assert storage.check() is False
        assert _events(logs) == ["storage.read_only", "storage.recovered"]

    def test_no_inodes_left_is_a_full_disk(self) -> None:
        with tmpfs(8 * MiB, inodes=300) as fs:
            storage = Storage(fs.root, floor=MiB, clock=Clock())
            fs.exhaust_inodes()
            assert storage.check() is True
            assert storage.blocked and storage.snapshot()["reason"] == "no_inodes"

    def test_the_floor_is_left_only_a_tenth_above_it_so_a_disk_at_the_floor_does_not_flap(
            self, fs: SmallFs) -> None:
        clock = Clock()
        storage = Storage(fs.root, floor=4 * MiB, clock=clock)
        fs.fill(leave_bytes=3 * MiB)
        assert storage.check() is True
        fs.free()
        fs.fill(leave_bytes=4 * MiB + 64 * 1024)  # above the floor, below floor + 10 %
        clock.advance(CHECK_SECONDS)
        assert storage.check() is True
        fs.free()
        clock.advance(CHECK_SECONDS)
        assert storage.check() is False

    def test_it_says_so_once_then_every_ten_minutes_and_a_flapping_one_not_each_time(
            self, fs: SmallFs) -> None:
        clock = Clock()
        storage = Storage(fs.root, floor=2 * MiB, clock=clock)
        fs.fill(leave_bytes=MiB)
        with capture_logs() as logs:
            for _ in range(int(2.5 * REMIND_SECONDS)):  # a look each second for 25 minutes
                storage.check()
                clock.advance(1.0)
            reminders = [e.get("for_s") for e in logs if e["event"] == "storage.full"]
            fs.free()
            storage.check()
            fs.fill(leave_bytes=MiB)  # back a minute later, and gone again, twice
            for _ in range(2):
                clock.advance(60)
                storage.check()
                fs.free()
                clock.advance(CHECK_SECONDS)
                storage.check()
                fs.fill(leave_bytes=MiB)
        assert reminders == [None, 600.0, 1200.0]
        assert _events(logs) == ["storage.full"] * 3 + ["storage.recovered"]

    def test_the_auto_floor_is_twice_the_results_of_the_longest_file_at_least_64_mib(self) -> None:
        assert floor_bytes("auto", 7200)[0] == MIN_AUTO_FLOOR_BYTES
        assert floor_bytes("auto", None)[0] == MIN_AUTO_FLOOR_BYTES
        floor, source = floor_bytes("auto", 111_600)  # about 31 h: a 24 GiB host
        assert floor == 2 * 1024 * 111_600 and "111600 s" in source
        assert floor_bytes(0, 111_600) == (0, "folders.min_free_bytes")


# --- what waits for storage -------------------------------------------------------------------------

def _config(root: Path, **hooks: object) -> Config:
    folders = Folders(*(root / name for name in ("inbox", "outbox", "done", "failed", "state")))
    for path in (folders.inbox, folders.outbox, folders.done, folders.failed, folders.state):
        path.mkdir(parents=True)
    return Config(folders=folders, hooks=Hooks(**hooks))  # type: ignore[arg-type]


def _claimed(config: Config, name: str) -> Job:
    source = config.folders.inbox / name
    source.write_bytes(b"audio")
    job = Claims(config.folders.state / "work" / WORKER.name).claim(source, PurePosixPath(name))
    assert job is not None
    return job


class TestJobRecords:
    """No run starts without its count on disk; a record refused is written at recovery."""

    def test_a_full_disk_refuses_to_start_an_attempt_and_the_record_is_written_once_space_returns(
            self, fs: SmallFs) -> None:
        config = _config(fs.root / "t")
        storage = Storage(config.folders.state, floor=0)
        records = JobRecords(WORKER, storage)
        job = _claimed(config, "a.wav")
        records.start_attempt(job)
        fs.fill()
        with pytest.raises(StorageFault):
            records.start_attempt(job)
        assert json.loads((job.dir / RECORD_FILE).read_text())["attempts"] == 1  # on disk: one
        records.forget_attempt(job)
        assert job.attempts == 1 and len(job.history) == 1 and job.id in records.unsaved
        assert storage.blocked  # reported
        job.history[-1]["error"] = "noted while full"
        records.save(job)
        fs.free()
        records.flush()
        assert records.unsaved == {}
        assert json.loads((job.dir / RECORD_FILE).read_text())["history"][-1]["error"] == "noted while full"

    def test_a_claim_refused_by_a_full_disk_leaves_the_file_in_the_inbox_and_no_job_folder(
            self, fs: SmallFs) -> None:
        config = _config(fs.root / "t")
        source = config.folders.inbox / "a.wav"
        source.write_bytes(b"audio")
        fs.fill()
        claims = Claims(config.folders.state / "work" / WORKER.name)
        with pytest.raises(StorageFault):
            claims.claim(source, PurePosixPath("a.wav"))
        assert source.exists() and list((config.folders.state / "work" / WORKER.name).iterdir()) == []


class _Counting(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(self.headers["Idempotency-Key"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A webhook receiver on 127.0.0.1 that counts the deliveries it gets."""
    calls: list[str] = []
    handler = type("Handler", (_Counting,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class TestFinishesAndHooks:
    """A finish plan, its hook note and the hook's records survive a full disk."""

    def test_a_plan_and_its_hook_note_refused_are_held_and_carried_out_after_recovery_hook_included(
            self, fs: SmallFs, receiver: tuple[str, list[str]]) -> None:
        url, calls = receiver
        config = _config(fs.root / "t", url=url)
        clock = Clock()
        storage = Storage(config.folders.state, floor=0, clock=clock)
        hooks = HookQueue(config, WORKER, storage)
        finisher = Finisher(config.folders, hooks.before_moves, hooks.before_plan, storage)
        job = _claimed(config, "a.wav")
        JobRecords(WORKER).start_attempt(job)
        (job.staging / "a.txt").write_text("hello")
        fs.fill()
        with capture_logs() as logs:
            hooks.job_ended(job, "done", {".txt": job.staging / "a.txt"})
            finisher.complete(job, {".txt": job.staging / "a.txt"})
            assert finisher.is_held(job) and finisher.paused and storage.blocked
            assert not (job.dir / "hook.json").exists() and not (job.dir / "plan.json").exists()
            for _ in range(5):
                finisher.retry_held(now=clock.now + 3600)  # not tried while writes are refused
            assert hooks.deliver_due() > 0 and calls == []
            fs.free()
            clock.advance(CHECK_SECONDS)
            assert storage.check() is False
            finisher.retry_held()
            assert not finisher.is_held(job)
            hooks.deliver_due()
        assert (config.folders.done / "a.wav").exists() and (config.folders.outbox / "a.txt").exists()
        assert calls == [job.id]
        events = [e["event"] for e in logs]
        assert events.count("job.move_refused") == 1 and "hook.gave_up" not in events
        assert "job.move_resumed" in events

    def test_a_delivery_whose_record_cannot_be_written_is_not_made_again(
            self, fs: SmallFs, receiver: tuple[str, list[str]]) -> None:
        url, calls = receiver
        config = _config(fs.root / "t", url=url)
        storage = Storage(config.folders.state, floor=0)
        hooks = HookQueue(config, WORKER, storage)
        job = _claimed(config, "a.wav")
        JobRecords(WORKER).start_attempt(job)
        (job.staging / "a.txt").write_text("hello")
        hooks.job_ended(job, "done", {".txt": job.staging / "a.txt"})
        finisher = Finisher(config.folders, hooks.before_moves, hooks.before_plan)
        finisher.complete(job, {".txt": job.staging / "a.txt"})
        (pending,) = (config.folders.state / "hooks" / WORKER.name).glob("*.json")
        fs.fill()
        hooks.deliver_due()  # delivered; its record refused
        assert calls == [job.id] and storage.blocked
        storage.report(_fault(config.folders.state))
        for _ in range(3):
            hooks.deliver_due()
        fs.free()
        storage.check()
        hooks.deliver_due()
        assert calls == [job.id]  # once
        assert not pending.exists()
        assert (config.folders.state / "hooks" / "delivered" / f"{job.id}.json").exists()


class TestLedgerAndStatus:
    """The library ledger's half line on a full disk, and the status file written in place."""

    def test_a_ledger_write_cut_short_by_a_full_disk_damages_no_other_record(self, fs: SmallFs) -> None:
        state = fs.root / "state"
        ledger = Ledger(state, worker="w")
        ledger.record("a" * 32, "done", Path("/lib/a.mkv"), (1, 2))
        fs.fill()
        with open(state / "library" / "ledger.jsonl", "ab") as grow:  # the last page: room for ~95 B
            size = os.fstat(grow.fileno()).st_size
            grow.write(b"\n" * (os.statvfs(fs.root).f_frsize - size % os.statvfs(fs.root).f_frsize - 95))
        with pytest.raises(StorageFault):
            ledger.record("b" * 32, "done", Path("/lib/b.mkv"), (1, 2))
        fs.free()
        ledger.record("b" * 32, "done", Path("/lib/b.mkv"), (1, 2))
        fresh = Ledger(state)
        fresh.refresh()
        assert {e.content_id for e in fresh.entries()} == {"a" * 32, "b" * 32}

    def test_the_status_file_is_written_in_place_on_a_full_disk_and_says_why_it_waits(
            self, fs: SmallFs) -> None:
        state = fs.root / "state"
        stats = Stats(state="running", model_load_seconds=1.0)
        status = StatusFile(state, WorkerId.of_this_process())
        status.write(stats.snapshot(60))
        assert status.path.stat().st_size == STATUS_FILE_BYTES
        fs.fill()
        storage = Storage(state, floor=MiB)
        storage.check()
        stats.storage_seen(storage.snapshot(), jobs_waiting=2)
        status.write(stats.snapshot(60))
        (record,) = read_all(state)
        assert record["storage"]["waiting"] is True and record["degraded"].startswith("waiting for storage")
        verdict = judge(record)
        assert verdict.healthy and verdict.reason == record["degraded"]
        assert describe(record).startswith(f"waiting for storage: {state} is full (")
        assert describe(record).split(";")[0].endswith("floor 1.0 MB), 2 jobs kept")

    def test_a_stale_status_file_on_a_read_only_state_folder_is_not_a_stuck_consumer(
            self, fs: SmallFs) -> None:
        state = fs.root / "state"
        stats = Stats(state="running", model_load_seconds=1.0)
        status = StatusFile(state, WorkerId.of_this_process())
        status.write(stats.snapshot(60))
        fs.remount_readonly()
        (record,) = read_all(state)
        verdict = judge(record, now=record["heartbeat_at"] + 3600)
        assert verdict.healthy and "read-only" in (verdict.reason or "")
        fs.remount_readwrite()
        assert not judge(record, now=record["heartbeat_at"] + 3600).healthy
