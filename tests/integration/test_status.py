"""The status file and `transcribed status`: one JSON file per daemon, for hosts without Prometheus.

Daemons run as child processes (fake engine); `transcribed status` runs as its own process, as
an operator or Docker's HEALTHCHECK would run it. How a status file is judged (healthy,
loading, stuck, another machine's) is tests/unit/test_status.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav


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


def test_an_unreadable_status_file_is_reported_not_fatal(folders: Folders) -> None:
    """A torn or foreign file in the status folder is listed with the reason, and status exits 0."""
    (folders.state / "status").mkdir(parents=True)
    (folders.state / "status" / "junk.json").write_text("{not json")
    printed = status(folders)
    assert printed.returncode == 0 and "unreadable status file" in printed.stdout


