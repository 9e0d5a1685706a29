"""systemd's notify protocol, spoken to a real AF_UNIX datagram socket as systemd would hear it.

The daemon is a child process (`python -m transcribed run --engine fake`) with NOTIFY_SOCKET
(and WATCHDOG_USEC) in its environment, exactly what a `Type=notify` unit gives it. Its stdout
goes to a file, so "READY=1 came after model.loaded" can be checked at the instant READY arrives:
the log line was written before the datagram was sent. The client's pacing and its abstract
socket names are unit tests (tests/unit/test_notify.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import Folders
from tests.support.media import write_tone_wav
from tests.support.notify import NotifySocket


@dataclass
class Child:
    """The daemon under test: its process and the file its stdout goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[str]:
        return [json.loads(line)["event"] for line in self.log.read_text().splitlines() if line.strip()]

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@pytest.fixture
def start_daemon(folders: Folders, notify_socket: NotifySocket) -> Iterator:
    """Start `transcribed run --engine fake` under a pretend systemd; always killed at the end."""
    children: list[Child] = []

    def start(watchdog_usec: int | None = None, fake: dict | None = None) -> Child:
        env = {**os.environ, "NOTIFY_SOCKET": notify_socket.path, "PYTHONUNBUFFERED": "1",
               "TRANSCRIBED_FAKE": json.dumps(fake or {})}
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        log = folders.root / f"stdout-{len(children)}.jsonl"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "transcribed", "run", "--engine", "fake",
                 "--config", str(folders.config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folders.root)
        children.append(Child(process, log))
        return children[-1]

    yield start
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait(timeout=30)


def test_ready_comes_after_the_model_loads_and_stopping_on_sigterm(start_daemon, notify_socket):
    """READY=1 (with MAINPID and a STATUS) only once the model is loaded and the watcher runs;
    SIGTERM brings STOPPING=1, then exit 0."""
    child = start_daemon()
    ready = notify_socket.wait_for("READY", timeout=60)
    # Written to the log file before the datagram was sent, so it must be there now.
    events_at_ready = child.events()
    assert "model.loaded" in events_at_ready and "watcher.started" in events_at_ready
    assert not any("READY" in m for m in notify_socket.messages()[:-1]), "READY sent twice"
    assert ready["MAINPID"] == str(child.process.pid)
    assert ready["STATUS"].startswith("idle; 0 waiting; 0 done, 0 failed"), ready["STATUS"]

    assert child.terminate() == 0
    stopping = notify_socket.wait_for("STOPPING", timeout=5)
    assert stopping["STATUS"].startswith("stopping")
    assert "WATCHDOG" not in notify_socket.messages()[-1]


def test_watchdog_pings_at_half_the_interval_while_idle_and_busy(start_daemon, notify_socket, folders):
    """With WATCHDOG_USEC=2 s, WATCHDOG=1 comes about every second, idle and during a job."""
    child = start_daemon(watchdog_usec=2_000_000, fake={"delay": 2.5})
    notify_socket.wait_for("READY", timeout=60)
    idle = _ping_times(notify_socket, seconds=3.5)
    write_tone_wav(folders.root / "a.wav", 1.0)
    shutil.copy(folders.root / "a.wav", folders.inbox / "a.wav")
    _status_with(notify_socket, "transcribing a.wav", timeout=30)
    busy = _ping_times(notify_socket, seconds=2.2)
    assert child.terminate() == 0

    for name, pings in (("idle", idle), ("busy", busy)):
        assert len(pings) >= 2, f"{name}: pings at {pings}"
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # At least WATCHDOG_USEC/2 apart (paced), and always well inside WATCHDOG_USEC.
        assert all(0.9 <= gap <= 1.8 for gap in gaps), f"{name}: gaps {gaps}"


def test_watchdog_pings_stop_while_the_consumer_is_stuck(start_daemon, notify_socket, folders):
    """The pings come from the consumer's heartbeat, not from a timer: an engine call that never
    returns silences them, so systemd's WatchdogSec= restarts a stuck daemon."""
    child = start_daemon(watchdog_usec=2_000_000, fake={"hang_on": ["stuck.wav"]})
    notify_socket.wait_for("READY", timeout=60)
    assert len(_ping_times(notify_socket, seconds=2.5)) >= 2
    write_tone_wav(folders.root / "stuck.wav", 1.0)
    shutil.copy(folders.root / "stuck.wav", folders.inbox / "stuck.wav")
    _status_with(notify_socket, "transcribing stuck.wav", timeout=30)
    notify_socket.next(time.monotonic() + 1.5)  # a ping already on its way may still arrive
    assert _ping_times(notify_socket, seconds=4.0) == []
    child.process.kill()


def test_status_lines_tell_what_the_daemon_does(start_daemon, notify_socket, folders):
    """STATUS= names the file being transcribed, then counts it as done."""
    child = start_daemon(fake={"delay": 1.0})
    notify_socket.wait_for("READY", timeout=60)
    write_tone_wav(folders.root / "talk.wav", 1.0)
    shutil.copy(folders.root / "talk.wav", folders.inbox / "talk.wav")
    busy = _status_with(notify_socket, "transcribing talk.wav", timeout=30)
    assert "; 0 done, 0 failed" in busy
    done = _status_with(notify_socket, "1 done", timeout=30)
    assert done.startswith("idle; 0 waiting; 1 done, 0 failed"), done
    assert child.terminate() == 0


def _ping_times(notify_socket: NotifySocket, seconds: float) -> list[float]:
    deadline = time.monotonic() + seconds
    times = []
    while (message := notify_socket.next(deadline)) is not None:
        if message.get("WATCHDOG") == "1":
            times.append(notify_socket.received[-1][0])
    return times


def _status_with(notify_socket: NotifySocket, text: str, timeout: float) -> str:
    """The next STATUS= line containing `text`, waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (message := notify_socket.next(deadline)) is not None:
        if text in message.get("STATUS", ""):
            return message["STATUS"]
    raise AssertionError(f"no STATUS with {text!r} within {timeout} s; got {notify_socket.messages()}")
