"""Noticing new files, and deciding when each is complete.

The watchdog observer's events are only hints that wake the consumer; the truth is a scan of the
inbox, made at start, on every wake and every `watch.rescan_seconds`. A missed event costs
latency, never a file. `Arrivals` decides when a file is complete: a writer closed it and it has
not changed since, or its size and mtime have not changed for `settle_seconds`. A file that is
still growing is looked at again later, never dropped. A file inotify saw being written waits
for its close event, but not forever: a close event can be lost (the kernel's event queue
overflows), so once the file has not changed for `max(STALE_WRITER_SECONDS, 10 x settle)` it is
taken as complete anyway.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from .config import Watch
from .logs import get_logger

#: Filesystems on which inotify does not see what other machines write.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs",
                       "9p", "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "davfs", "sshfs",
                       "virtiofs", "vboxsf", "vmhgfs", "prl_fs")

#: A file seen being written, unchanged this long with no close event seen, counts as closed.
STALE_WRITER_SECONDS = 60.0

#: A file an event named but no scan listed yet is remembered this long (the scan may predate it).
EVENT_GRACE_SECONDS = 10.0

#: Where the kernel lists this process's mounts (and their filesystem types).
MOUNTS = Path("/proc/self/mounts")

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


class _WakeOnChange(FileSystemEventHandler):
    """Turns observer events into wake-ups of the consumer (and close events into 'complete')."""

    def __init__(self, arrivals: Arrivals, wake: threading.Event, sees_writers: bool,
                 on_inbox_gone: Callable[[], None] = lambda: None, inbox: str = "") -> None:
        self.arrivals = arrivals
        self.wake = wake
        #: inotify reports writes and closes; a polling observer only sees changed stat data.
        self.sees_writers = sees_writers
        self.on_inbox_gone = on_inbox_gone
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.event_type == "deleted" and os.fsdecode(event.src_path) == self.inbox:
            self.on_inbox_gone()  # the observer has stopped watching it
        elif event.event_type == "closed" and not event.is_directory:
            self.arrivals.closed(Path(os.fsdecode(event.src_path)))
        elif event.event_type == "moved" and not event.is_directory and event.dest_path:
            self.arrivals.closed(Path(os.fsdecode(event.dest_path)))  # renamed into place: complete
        elif event.event_type == "modified" and not event.is_directory and self.sees_writers:
            self.arrivals.written(Path(os.fsdecode(event.src_path)))
        self.wake.set()


def start_observer(inbox: Path, watch: Watch, arrivals: Arrivals, wake: threading.Event) -> BaseObserver:
    """Watch the inbox recursively, with inotify or polling (`watch.polling`), and start it."""
    polling, reason = choose_polling(inbox, watch.polling)
    # Full events: a file renamed in from outside the inbox (the atomic way to deliver one) is
    # reported as moved there, so complete at once, not as created and left to settle.
    observer: BaseObserver = (PollingObserver(timeout=watch.poll_interval_seconds) if polling
                              else InotifyObserver(generate_full_events=True))
    keeper = _InboxKeeper(observer, inbox, watch.poll_interval_seconds, wake)
    keeper.watch_with(_WakeOnChange(arrivals, wake, sees_writers=not polling,
                                    on_inbox_gone=keeper.inbox_gone, inbox=str(inbox)))
    observer.start()
    log.info("watcher.started", inbox=str(inbox), observer=type(observer).__name__,
             polling=polling, reason=reason)
    return observer


class _InboxKeeper:
    """Watches the inbox again when it comes back after it went away.

    An observer stops watching a folder that is gone (watchdog reports it deleted and ends that
    watch): a share unmounted under the daemon, or the inbox removed and made again. New files
    are still found by the consumer's rescans meanwhile; this says what happened and brings the
    events back once the folder is there again.
    """

    def __init__(self, observer: BaseObserver, inbox: Path, interval: float, wake: threading.Event) -> None:
        self.observer = observer
        self.inbox = inbox
        self.interval = interval
        self.wake = wake
        self.handler: FileSystemEventHandler | None = None
        self.watch: ObservedWatch | None = None
        self._waiting = threading.Lock()

    def watch_with(self, handler: FileSystemEventHandler) -> None:
        self.handler = handler
        self.watch = self.observer.schedule(handler, str(self.inbox), recursive=True)

    def inbox_gone(self) -> None:
        """Called from the observer's thread: wait for the inbox in a thread of our own."""
        if not self._waiting.acquire(blocking=False):
            return  # already waiting for it
        log.warning("watcher.inbox_gone", inbox=str(self.inbox),
                    action="new files are found by rescans until it is back; then it is watched again")
        threading.Thread(target=self._watch_when_back, name="watcher-inbox", daemon=True).start()

    def _watch_when_back(self) -> None:
        try:
            while not self.observer.stopped_event.wait(self.interval):
                if os.path.isdir(self.inbox):  # False on any error: an unreachable share too
                    if self.watch is not None and self.handler is not None:
                        self.observer.unschedule(self.watch)
                        self.watch_with(self.handler)
                    log.info("watcher.inbox_back", inbox=str(self.inbox))
                    self.wake.set()
                    return
        finally:
            self._waiting.release()


def choose_polling(inbox: Path, setting: bool | str,
                   mounts: Path = MOUNTS) -> tuple[bool, str]:
    """Poll or use inotify? `auto` polls on network filesystems, where inotify is blind."""
    if setting is True:
        return True, "watch.polling is true"
    if setting is False:
        return False, "watch.polling is false"
    fstype = filesystem_type(inbox, mounts)
    if fstype is None:
        return False, "filesystem type unknown; inotify"
    if fstype.startswith("fuse") or fstype in NETWORK_FILESYSTEMS:
        return True, f"the inbox is on {fstype}, where inotify misses other machines' writes"
    return False, f"the inbox is on {fstype}"


def filesystem_type(path: Path, mounts: Path = MOUNTS) -> str | None:
    """The type of the filesystem holding `path`, from /proc/self/mounts (longest mount point)."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = _unescape(parts[1])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, parts[2]
    return best_type


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount points as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
