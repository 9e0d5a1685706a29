"""The pause file: `transcribed pause` writes `<folders.state>/pause.json`, and every daemon that
shares the state folder (on this host, or on another over a shared share) reads it at each turn
of its loop: no new job starts while it holds. `transcribed resume` removes it.

It says since when, until when (null: until resumed), who asked, why, and whether the running
jobs go back to the inbox at once (`now`). It is written atomically (a reader sees the old file
or the new one), and a daemon started while it holds starts paused. A file that cannot be read
as a pause (damaged, half-copied by hand) still pauses, saying so: someone wanted a pause, and
`transcribed resume` removes it either way.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The pause file's name in the state folder.
PAUSE_FILE = "pause.json"
#: A daemon looks at the pause file at most this often from inside a job (and at every turn of
#: its loop, which is at most every few seconds while idle).
CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Pause:
    """A pause asked for: since and until when (Unix time; None: until resumed), by whom, why."""

    since: float
    until: float | None = None
    #: The running jobs go back to the inbox untouched (`transcribed pause --now`).
    now: bool = False
    by: str = ""
    reason: str | None = None

    def holds(self, at: float) -> bool:
        """Is it still in force at `at`?"""
        return self.until is None or at < self.until

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pause_path(state: Path) -> Path:
    return state / PAUSE_FILE


def who() -> str:
    """Who asks, for the file and the log: user@host."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def write_pause(state: Path, pause: Pause) -> Path:
    """Write the pause file atomically (fsynced: a pause must survive a power cut)."""
    path = pause_path(state)
    state.mkdir(parents=True, exist_ok=True)
    tmp = state / f".{PAUSE_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(pause.as_dict(), file, indent=2)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    return path


def remove_pause(state: Path) -> Pause | None:
    """Remove the pause file; the pause it held (None: there was none)."""
    path = pause_path(state)
    before = read_pause(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return before


def read_pause(path: Path) -> Pause | None:
    """The pause the file holds; None when there is no file. A file that is not a pause is read
    as a pause until resumed, saying why."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(path, str(exc))
    try:
        data = json.loads(text)
        return Pause(since=float(data["since"]),
                     until=None if data.get("until") is None else float(data["until"]),
                     now=bool(data.get("now", False)), by=str(data.get("by") or ""),
                     reason=None if data.get("reason") is None else str(data["reason"]))
    except (ValueError, TypeError, KeyError) as exc:
        return _unreadable(path, f"{type(exc).__name__}: {exc}")


def _unreadable(path: Path, why: str) -> Pause:
    with contextlib.suppress(OSError):
        return Pause(since=path.stat().st_mtime, reason=f"the pause file cannot be read ({why})")
    return Pause(since=time.time(), reason=f"the pause file cannot be read ({why})")


class PauseWatch:
    """A daemon's view of the pause file: read again when it changes (its size, mtime or inode),
    looked at no more often than `every` seconds unless asked to look now."""

    def __init__(self, state: Path, every: float = CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = pause_path(state)
        self.every = every
        self.clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._pause: Pause | None = None
        self._next_look = 0.0

    def current(self, look_now: bool = False) -> Pause | None:
        """The pause the file holds now (as of the last look)."""
        now = self.clock()
        if not look_now and now < self._next_look:
            return self._pause
        self._next_look = now + self.every
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._pause = None, None
            return None
        except OSError:
            return self._pause  # a share away for a moment: the last answer stands
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            self._stamp, self._pause = stamp, read_pause(self.path)
        return self._pause
