"""Running the real daemon as a child process in tests, with its folders in a temp directory."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def status_records(state: Path) -> list[dict[str, Any]]:
    """Every daemon's status file in the state folder `state` (state/status/<worker>.json),
    parsed, in name order; none when the folder is not there yet."""
    folder = state / "status"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


@dataclass
class Folders:
    """A daemon's folder set and config file under one temp directory."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "transcribed.yaml"

    def write_config(self, **sections: dict[str, Any]) -> Path:
        """Write the config file: these folders, fast test timings, plus `sections` merged in."""
        data: dict[str, Any] = {
            "folders": {"inbox": "inbox", "outbox": "outbox", "done": "done", "failed": "failed",
                        "state": "state"},
            "watch": {"settle_seconds": 0.5, "rescan_seconds": 5},
            "jobs": {"retry_delay_seconds": 0.2},
            "daemon": {"shutdown_grace_seconds": 10},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(data))
        return self.config

    def deliver(self, relpath: str, make: Callable[[Path], object]) -> Path:
        """A careful copier: `make` writes the file beside the inbox, then it is renamed in (complete
        at once, whatever the settle time)."""
        staging = self.root / "staging" / relpath
        staging.parent.mkdir(parents=True, exist_ok=True)
        make(staging)
        (self.inbox / relpath).parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, self.inbox / relpath)
        return self.inbox / relpath

    def files(self, folder: Path) -> list[str]:
        """Every file below `folder`, relative, sorted."""
        if not folder.exists():
            return []
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@dataclass
class DaemonProcess:
    """`python -m transcribed run` in a child process; its stdout lines parsed as JSON events."""

    config: Path
    engine: str = "whisperx"
    env: dict[str, str] = field(default_factory=dict)
    #: How Python runs the CLI: `-m transcribed`, or a `-c` script wrapping transcribed.cli.main.
    python_args: list[str] = field(default_factory=lambda: ["-m", "transcribed"])
    lines: list[str] = field(default_factory=list)
    err_lines: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    _queue: queue.Queue[str] = field(default_factory=queue.Queue)

    def start(self, ready_timeout: float = 120, wait: bool = True) -> DaemonProcess:
        """Start it; with `wait`, return once it logged daemon.started (failing if it exits first)."""
        command = [sys.executable, *self.python_args, "run", "--config", str(self.config)]
        if self.engine != "whisperx":
            command += ["--engine", self.engine]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}, cwd=self.config.parent)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if wait:
            self.wait_for("daemon.started", timeout=ready_timeout)
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.err_lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        """Every stdout line so far, parsed (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in list(self.lines) if line.strip()]

    def wait_for(self, event: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        """The first event named `event` (with these field values), waiting up to `timeout`."""
        def found() -> dict[str, Any] | None:
            for record in self.events():
                if record.get("event") == event and all(record.get(k) == v for k, v in fields.items()):
                    return record
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}) before {event}; "
                                     f"stderr: {self.stderr()[-2000:]}")
            return None
        return wait_until(found, timeout, f"log event {event} {fields or ''}")

    def count(self, event: str) -> int:
        return sum(1 for record in self.events() if record.get("event") == event)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stderr(self) -> str:
        return "".join(self.err_lines)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
