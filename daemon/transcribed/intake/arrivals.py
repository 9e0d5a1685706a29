"""When a file in the inbox is complete, and the order files are taken in.

`Arrivals` decides: a writer closed it and it has not changed since, or its size and mtime have
not changed for `settle_seconds` (it settled). A file that is still growing is looked at again
later, never dropped. A file inotify saw being written waits for its close event, but not
forever: a close event can be lost (the kernel's event queue overflows), so once the file has not
changed for `max(STALE_WRITER_SECONDS, 10 x settle)` it is taken as complete anyway. Complete
files are offered by their ctime: when each came into the inbox.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..logs import get_logger

#: A file seen being written, unchanged this long with no close event seen, counts as closed.
STALE_WRITER_SECONDS = 60.0

#: A file an event named but no scan listed yet is remembered this long (the scan may predate it).
EVENT_GRACE_SECONDS = 10.0

log = get_logger()


@dataclass
class _Seen:
    signature: tuple[int, int, int]  # size, mtime_ns, inode
    first_seen: float
    changed_at: float
    #: The file's ctime when first seen, the order files are offered in: when it came into the
    #: inbox, by the clock of the filesystem that holds it (a share's server for every writer),
    #: whichever look or event saw it first; ties (a coarse clock) keep the order seen.
    arrived_ns: int = 0
    order: int = 0
    closed: bool = False
    #: inotify saw a write and no close yet: a writer has it open, whatever the settle time says.
    writing: bool = False


class Arrivals:
    """Which inbox files are complete, in order of arrival. Thread-safe: events come from the observer."""

    def __init__(self, settle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_seconds = settle_seconds
        self.stale_writer_seconds = max(STALE_WRITER_SECONDS, 10 * settle_seconds)
        self.clock = clock
        self._seen: dict[Path, _Seen] = {}
        self._count = 0
        self._lock = threading.Lock()

    def closed(self, path: Path) -> None:
        """A writer closed `path` (inotify IN_CLOSE_WRITE) or renamed it into place."""
        with self._lock:
            signature = _signature(path)
            if signature is None:
                return
            seen = self._update(path, signature)
            seen.closed, seen.writing = True, False

    def written(self, path: Path) -> None:
        """inotify saw a write to `path`: it is open for writing until a close event says otherwise."""
        with self._lock:
            signature = _signature(path)
            if signature is not None:
                self._update(path, signature).writing = True

    def ready(self, candidates: list[Path]) -> list[Path]:
        """The complete files among `candidates` (a fresh scan), oldest arrival first."""
        with self._lock:
            ready = []
            now = self.clock()
            for path in candidates:
                signature = _signature(path)
                if signature is None:
                    continue
                seen = self._update(path, signature, now)
                quiet = now - seen.changed_at
                settled = quiet >= self._quiet_needed(seen)
                if seen.closed or settled:
                    ready.append(path)
            for gone in set(self._seen) - set(candidates):
                # An event may name a file the scan was made too early to list: keep what the
                # event said (a writer has it open) for a while, unless the file is gone.
                if now - self._seen[gone].first_seen > EVENT_GRACE_SECONDS or not os.path.lexists(gone):
                    del self._seen[gone]
            return sorted(ready, key=lambda p: (self._seen[p].arrived_ns, self._seen[p].order))

    def next_check_in(self) -> float | None:
        """Seconds until a file still settling could become complete (None: nothing is settling)."""
        with self._lock:
            now = self.clock()
            waits = [seen.changed_at - now + self._quiet_needed(seen)
                     for seen in self._seen.values() if not seen.closed]
            return max(0.05, min(waits)) if waits else None

    def pending(self) -> int:
        """How many inbox files are known (complete or not)."""
        with self._lock:
            return len(self._seen)

    def _quiet_needed(self, seen: _Seen) -> float:
        """How long a file must stay unchanged to count as complete: longer while a writer has it open."""
        return self.stale_writer_seconds if seen.writing else self.settle_seconds

    def _update(self, path: Path, signature: tuple[int, int, int], now: float | None = None) -> _Seen:
        """Record what is known of `path`; `now`: one instant for every file of one scan."""
        now = self.clock() if now is None else now
        seen = self._seen.get(path)
        if seen is None:
            self._count += 1
            seen = self._seen[path] = _Seen(signature, now, now, _ctime_ns(path), self._count)
            log.info("file.detected", path=str(path), size=signature[0])
        elif seen.signature != signature:
            seen.signature, seen.changed_at, seen.closed = signature, now, False
        return seen


def _ctime_ns(path: Path) -> int:
    try:
        return path.stat().st_ctime_ns
    except OSError:
        return 0


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
