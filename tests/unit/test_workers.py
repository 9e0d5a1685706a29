"""Workers on real temp folders: who is gone (by pid here, by lease elsewhere), and this worker's lease."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.support.daemon import wait_until
from transcribed.spool.workers import (
    LEASE_FILE,
    Lease,
    Liveness,
    WorkerId,
    forget_worker,
    is_running,
    machine_identity,
    process_start_time,
)

HOST = socket.gethostname()


def _liveness(lease_seconds: float = 60.0) -> Liveness:
    return Liveness(WorkerId.of_this_process(), machine_identity(), lease_seconds)


def _worker_folder(work: Path, name: str, lease: dict | None = None) -> Path:
    """A worker's folder as another daemon left it: one job in it, and its lease if given."""
    worker = work / name
    (worker / "20260101T000000000000Z-abcdef" / "src").mkdir(parents=True)
    if lease is not None:
        (worker / LEASE_FILE).write_text(json.dumps(lease))
    return worker


def test_a_dead_local_worker_is_gone_and_a_live_one_is_not(tmp_path: Path) -> None:
    """Same machine: a pid that has ended means gone; this very process is alive."""
    liveness, me = _liveness(), WorkerId.of_this_process()
    assert liveness.gone_because(_worker_folder(tmp_path, f"{HOST}.999999.5", machine_identity()))
    assert liveness.gone_because(_worker_folder(tmp_path, me.name, machine_identity())) is None


def test_a_reused_pid_does_not_make_a_dead_worker_look_alive(tmp_path: Path) -> None:
    """A live pid with another start time is someone else: the old worker is gone."""
    started = process_start_time(os.getpid())
    assert started
    worker = _worker_folder(tmp_path, f"{HOST}.{os.getpid()}.{started - 1}", machine_identity())
    assert "has ended" in (_liveness().gone_because(worker) or "")


@pytest.mark.parametrize("key", ["boot_id", "pid_namespace"])
def test_a_local_looking_worker_from_another_boot_or_container_is_judged_by_its_lease(
        tmp_path: Path, key: str) -> None:
    """Its pid cannot be checked here, so only an unchanged lease makes it gone."""
    liveness = _liveness(lease_seconds=0.3)
    worker = _worker_folder(tmp_path, f"{HOST}.999999.5", {**machine_identity(), key: "other"})
    assert liveness.gone_because(worker) is None  # first sight of the lease
    reason = wait_until(lambda: liveness.gone_because(worker), 5, "the lease to expire")
    assert "lease" in reason


def test_another_hosts_renewed_lease_keeps_it_alive_and_a_stale_one_makes_it_gone(tmp_path: Path) -> None:
    """The lease's content must change within lease_seconds of our own clock."""
    liveness = _liveness(lease_seconds=0.3)
    worker = _worker_folder(tmp_path, "otherhost.1.2", {"beat": 1})
    for beat in range(2, 8):
        (worker / LEASE_FILE).write_text(json.dumps({"beat": beat}))
        assert liveness.gone_because(worker) is None
    reason = wait_until(lambda: liveness.gone_because(worker), 5, "the lease to stop changing")
    assert "not been renewed for 0.3 s" in reason


def test_a_folder_not_named_like_a_worker_is_never_gone(tmp_path: Path) -> None:
    """Something else in the work area (a user's folder) is left alone, however old."""
    liveness = _liveness(lease_seconds=0.0)
    folder = _worker_folder(tmp_path, "not-a-worker")
    assert liveness.gone_because(folder) is None
    assert liveness.gone_because(folder) is None


def test_this_process_is_running_and_an_ended_pid_is_not() -> None:
    """The one answer the adopter and the status reader share."""
    assert is_running(WorkerId.of_this_process()) is True
    assert is_running(WorkerId(HOST, 999999, 5)) is False


def test_a_retiring_worker_keeps_its_lease_while_jobs_wait_in_its_folder(tmp_path: Path) -> None:
    """A clean stop removes lease and folder, unless a job is left; then the lease stays, and a
    late heartbeat does not rewrite it after retirement."""
    me = WorkerId.of_this_process()
    idle, busy = tmp_path / "idle", tmp_path / "busy"
    idle_lease, busy_lease = Lease(idle, me, machine_identity()), Lease(busy, me, machine_identity())
    idle_lease.renew()
    busy_lease.renew()
    (busy / "job").mkdir()
    idle_lease.retire()
    busy_lease.retire()
    assert not idle.exists()
    assert json.loads((busy / LEASE_FILE).read_text())["pid"] == os.getpid()
    idle_lease.renew()
    assert not idle.exists()


def test_forgetting_a_gone_worker_removes_only_its_lease(tmp_path: Path) -> None:
    """Anything else in its folder (a claim of a worker wrongly judged gone) is kept."""
    worker = _worker_folder(tmp_path, "otherhost.1.2", {"beat": 1})
    (worker / f".{LEASE_FILE}.7.tmp").write_text("{")
    forget_worker(worker)
    assert sorted(os.listdir(worker)) == ["20260101T000000000000Z-abcdef"]
    os.rmdir(worker / "20260101T000000000000Z-abcdef" / "src")
    os.rmdir(worker / "20260101T000000000000Z-abcdef")
    forget_worker(worker)
    assert not worker.exists()
