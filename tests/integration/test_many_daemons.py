"""Several daemons on one inbox: each file is transcribed by exactly one of them, and a daemon
takes back only the claims of workers that are gone."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s

pytestmark = pytest.mark.usefixtures("corpus")


def _daemon(folders: Folders, **fake: object) -> DaemonProcess:
    return DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(fake)})


def _deliver(folders: Folders, name: str) -> None:
    staging = folders.root / "staging"
    staging.mkdir(exist_ok=True)
    shutil.copy(corpus_dir() / SHORT, staging / name)
    os.rename(staging / name, folders.inbox / name)


def _files_started(daemons: list[DaemonProcess]) -> Counter[str]:
    return Counter(e["file"] for d in daemons for e in d.events() if e.get("event") == "job.started")


def test_three_daemons_on_one_inbox_transcribe_each_file_exactly_once(folders: Folders) -> None:
    """30 files dropped while three daemons watch: 30 claims, 30 runs, 30 results, no copies."""
    names = [f"file{n:02d}.wav" for n in range(30)]
    daemons = [_daemon(folders, delay=0.05).start() for _ in range(3)]
    try:
        for name in names:
            _deliver(folders, name)
        wait_until(lambda: len(folders.files(folders.done)) == len(names), 60, "30 files in done/")
        for daemon in daemons:
            assert daemon.stop() == 0
    finally:
        for daemon in daemons:
            daemon.kill()
    assert folders.files(folders.done) == names
    assert _files_started(daemons) == Counter({name: 1 for name in names})
    workers = {json.loads((folders.outbox / f"{Path(n).stem}.json").read_text())["transcribed"]["worker"]
               for n in names}
    assert len(workers) >= 2, "one daemon took every file: the race was not exercised"
    assert not any(".2." in name for name in folders.files(folders.outbox))


def test_a_starting_daemon_leaves_a_live_workers_job_alone(folders: Folders) -> None:
    """A second daemon, rescanning often, never adopts the job a live daemon is running."""
    folders.write_config(watch={"settle_seconds": 0.5, "rescan_seconds": 0.2})
    with _daemon(folders, delays={"long.wav": 4}) as first:
        _deliver(folders, "long.wav")
        first.wait_for("job.started", timeout=30)
        with _daemon(folders) as second:
            first.wait_for("job.moved", timeout=30)
            assert second.count("job.adopted") == 0 and second.count("spool.worker_gone") == 0
            assert second.stop() == 0
        assert first.stop() == 0
    assert folders.files(folders.done) == ["long.wav"]


def test_a_killed_daemons_job_is_taken_back_by_a_live_one(folders: Folders) -> None:
    """kill -9 one daemon mid-job: another, running beside it, adopts the job and finishes it."""
    folders.write_config(watch={"settle_seconds": 0.5, "rescan_seconds": 0.2})
    victim = _daemon(folders, delays={"orphan.wav": 60}).start()
    try:
        _deliver(folders, "orphan.wav")
        victim.wait_for("job.started", timeout=30)
        with _daemon(folders) as survivor:
            victim.kill()
            event = survivor.wait_for("job.adopted", timeout=30, file="orphan.wav")
            assert event["previous_worker"].split(".")[-2] == str(victim.process.pid)
            wait_until(lambda: (folders.done / "orphan.wav").exists(), 30, "orphan.wav in done/")
            assert survivor.stop() == 0
    finally:
        victim.kill()
    assert folders.files(folders.done) == ["orphan.wav"]


def _other_host_job(folders: Folders, name: str) -> Path:
    """A claim made by a daemon on another machine: its worker folder, lease and one job."""
    worker = folders.state / "work" / "otherhost.example.4242.777"
    job = worker / "20260101T000000000000Z-abcdef"
    (job / "src").mkdir(parents=True)
    shutil.copy(corpus_dir() / SHORT, job / "src" / name)
    (job / "job.json").write_text(json.dumps({"id": job.name, "relpath": name, "attempts": 1}))
    return worker


def _renew(worker: Path, beat: int) -> None:
    tmp = worker / ".worker.json.test.tmp"
    tmp.write_text(json.dumps({"host": "otherhost.example", "pid": 4242, "started": 777,
                               "beat": beat, "boot_id": "another-machine"}))
    os.replace(tmp, worker / "worker.json")


def test_another_hosts_claim_is_taken_back_only_once_its_lease_stops_being_renewed(folders: Folders) -> None:
    """While the other host renews its lease its job is left alone; when it stops, it is adopted."""
    folders.write_config(watch={"settle_seconds": 0.5, "rescan_seconds": 0.2}, daemon={"lease_seconds": 1.0})
    worker = _other_host_job(folders, "remote.wav")
    stop_renewing = threading.Event()

    def heartbeat() -> None:
        beat = 0
        while not stop_renewing.wait(0.1):
            beat += 1
            _renew(worker, beat)

    _renew(worker, 0)
    renewer = threading.Thread(target=heartbeat, daemon=True)
    renewer.start()
    try:
        with _daemon(folders) as daemon:
            time.sleep(3)  # three lease periods of a live remote worker: nothing may happen
            assert daemon.count("job.adopted") == 0
            assert (worker / "20260101T000000000000Z-abcdef" / "src" / "remote.wav").exists()
            stop_renewing.set()
            renewer.join()
            daemon.wait_for("job.adopted", timeout=10, file="remote.wav", attempts=1)
            wait_until(lambda: (folders.done / "remote.wav").exists(), 30, "remote.wav in done/")
            assert daemon.stop() == 0
    finally:
        stop_renewing.set()
    assert not worker.exists()
    assert json.loads((folders.outbox / "remote.json").read_text())["transcribed"]["attempts"] == 2


def test_a_worker_with_this_host_name_in_another_pid_namespace_is_judged_by_its_lease(
        folders: Folders) -> None:
    """Same host name but another pid namespace (a container): its pid means nothing here."""
    folders.write_config(watch={"settle_seconds": 0.5, "rescan_seconds": 0.2}, daemon={"lease_seconds": 1.5})
    worker = folders.state / "work" / f"{socket.gethostname()}.999999.123"  # no such pid here
    job = worker / "20260101T000000000000Z-abcdef"
    (job / "src").mkdir(parents=True)
    shutil.copy(corpus_dir() / SHORT, job / "src" / "boxed.wav")
    (job / "job.json").write_text(json.dumps({"id": job.name, "relpath": "boxed.wav", "attempts": 0}))
    (worker / "worker.json").write_text(json.dumps({"pid_namespace": "pid:[1]", "beat": 1}))
    with _daemon(folders) as daemon:
        started = time.monotonic()
        daemon.wait_for("job.adopted", timeout=15, file="boxed.wav")
        assert time.monotonic() - started >= 1.5  # not at once, as a dead local pid would be
        wait_until(lambda: (folders.done / "boxed.wav").exists(), 30, "boxed.wav in done/")
        assert daemon.stop() == 0
