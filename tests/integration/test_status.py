"""The status file and `transcribed status`: one JSON file per daemon, for hosts without Prometheus.

Daemons run as child processes (fake engine); `transcribed status` runs as its own process, as
an operator or Docker's HEALTHCHECK would run it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav

from transcribed.stats import Stats
from transcribed.status import StatusFile, check, forget_dead, judge, read_all
from transcribed.workers import WorkerId


def status(folders: Folders, *args: str) -> subprocess.CompletedProcess[str]:
    """`transcribed status --config ... ARGS` in a child process."""
    return subprocess.run([sys.executable, "-m", "transcribed", "status", "--config",
                           str(folders.config), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def status_files(folders: Folders) -> list[Path]:
    return sorted((folders.state / "status").glob("*.json"))


def fake(folders: Folders, **options: object) -> DaemonProcess:
    return DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(options)})


def test_a_running_daemon_has_a_status_file_that_status_prints_and_a_clean_stop_removes(
        folders: Folders) -> None:
    """state/status/<worker>.json follows the work; `status`, `--json` and `--check` read it."""
    with fake(folders, delay=0.2) as daemon:
        worker = daemon.wait_for("daemon.started")["worker"]
        path = folders.state / "status" / f"{worker}.json"
        write_tone_wav(folders.root / "a.wav", 2.0)
        shutil.move(folders.root / "a.wav", folders.inbox / "a.wav")
        record = wait_until(lambda: path.exists() and (r := json.loads(path.read_text()))["jobs"]["done"] == 1
                            and r, 30, "the status file to count one done job")
        printed = status(folders)
        as_json = status(folders, "--json")
        checked = status(folders, "--check")
        assert daemon.stop() == 0
    assert record["worker"] == worker and record["pid"] == daemon.process.pid
    assert record["state"] == "running" and record["healthy"] is True
    assert record["model"] == "fake" and record["device"] == "cpu"
    assert record["audio_s"] == 2.0 and record["jobs"]["failed"] == 0
    assert abs(record["heartbeat_at"] - time.time()) < 30

    assert printed.returncode == 0, printed.stderr
    assert worker in printed.stdout and "healthy" in printed.stdout
    assert "1 done, 0 failed" in printed.stdout
    workers = json.loads(as_json.stdout)["workers"]
    assert [w["worker"] for w in workers] == [worker]
    assert workers[0]["verdict"]["healthy"] is True and workers[0]["local"] is True
    assert checked.returncode == 0 and "healthy" in checked.stdout

    assert status_files(folders) == [], "a clean stop removes the status file"
    after = status(folders, "--check")
    assert after.returncode == 1 and "no running transcribed daemon" in after.stdout


def test_a_killed_daemons_file_is_shown_as_dead_ignored_by_check_and_removed_by_the_next(
        folders: Folders) -> None:
    """kill -9 leaves the file behind: `status` says the process is gone, `--check` does not
    count it, and the next daemon to start removes it."""
    first = fake(folders).start()
    wait_until(lambda: status_files(folders), 10, "a status file")
    first.kill()
    [left] = status_files(folders)
    printed = status(folders)
    checked = status(folders, "--check")
    with fake(folders) as second:
        second_worker = second.wait_for("daemon.started")["worker"]
        remaining = status_files(folders)
        assert second.stop() == 0
    assert "is not running" in printed.stdout
    assert checked.returncode == 1 and "no running transcribed daemon" in checked.stdout
    assert remaining == [folders.state / "status" / f"{second_worker}.json"]
    assert not left.exists()


def test_check_is_unhealthy_while_the_model_loads_and_when_the_heartbeat_is_stale(tmp_path: Path) -> None:
    """A status file judged later: loading is not healthy yet; a heartbeat older than its limit
    is a stuck consumer."""
    stats, me = Stats(), WorkerId.of_this_process()
    status_file = StatusFile(tmp_path, me)
    stats.loading()
    status_file.write(stats.snapshot(stale_after=5))
    loading = judge(read_all(tmp_path)[0])
    stats.model_loaded("tiny.en", "cpu", 2.0, 4)
    stats.running()
    status_file.write(stats.snapshot(stale_after=5))
    [record] = read_all(tmp_path)
    fresh, stale = judge(record), judge(record, now=time.time() + 60)

    assert (loading.alive, loading.healthy) == (True, False) and "loading" in loading.reason
    assert fresh.healthy and fresh.alive
    assert not stale.healthy and "heartbeat" in stale.reason and "stuck" in stale.reason
    assert check([record]) == (True, [f"{me.name}: healthy; idle; 0 waiting; 0 done, 0 failed"])
    assert check([record], now=time.time() + 60)[0] is False
    status_file.remove()
    status_file.write(stats.snapshot(stale_after=5))  # a late heartbeat after the clean stop
    assert read_all(tmp_path) == []


def test_another_machines_file_is_shown_but_never_judged_alive_or_removed_early(tmp_path: Path) -> None:
    """Replicas on other nodes share the state folder: their files are read, not checked, and
    removed only after a day without an update."""
    other = WorkerId("node-b-" + socket.gethostname(), 4242, 1)
    StatusFile(tmp_path, other).write(Stats().snapshot(stale_after=120))
    [record] = read_all(tmp_path)
    assert judge(record).alive is None
    assert check([record])[0] is False  # nothing runs on *this* machine
    assert forget_dead(tmp_path) == []
    old = time.time() - 2 * 24 * 3600
    os.utime(record["file"], (old, old))
    assert forget_dead(tmp_path) == [other.name]


def test_an_unreadable_status_file_is_reported_not_fatal(folders: Folders) -> None:
    """A torn or foreign file in the status folder is listed with the reason, and status exits 0."""
    (folders.state / "status").mkdir(parents=True)
    (folders.state / "status" / "junk.json").write_text("{not json")
    printed = status(folders)
    assert printed.returncode == 0 and "unreadable status file" in printed.stdout


def test_this_containers_file_from_before_a_restart_is_forgotten_once_stale(tmp_path: Path) -> None:
    """Same host name, another pid namespace (a restarted container): removed once its file is
    older than its heartbeat limit, kept while it could still be a live neighbour's."""
    StatusFile(tmp_path, WorkerId(socket.gethostname(), 1, 123)).write(Stats().snapshot(stale_after=120))
    [record] = read_all(tmp_path)
    record["pid_namespace"] = "pid:[1]"  # as if written in another pid namespace
    Path(record["file"]).write_text(json.dumps(record))
    assert judge(read_all(tmp_path)[0]).alive is None
    assert forget_dead(tmp_path) == []
    old = time.time() - 121
    os.utime(record["file"], (old, old))
    assert forget_dead(tmp_path) == [record["worker"]]
