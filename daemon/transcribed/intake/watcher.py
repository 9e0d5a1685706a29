"""Noticing new files: the watchdog observer on the inbox, and the consumer woken by it.

The observer's events are only hints that wake the consumer; the truth is a scan of the inbox,
made at start, on every wake and every `watch.rescan_seconds`. A missed event costs latency,
never a file. Close and rename events tell `Arrivals` (arrivals.py) that a file is complete.
Inotify where it sees every writer, polling on network filesystems (`choose_polling`), and the
inbox watched again when it comes back after it went away.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from ..config import Watch
from ..logs import get_logger
from .arrivals import Arrivals

#: Filesystems on which inotify does not see what other machines write.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs",
                       "9p", "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "davfs", "sshfs",
                       "virtiofs", "vboxsf", "vmhgfs", "prl_fs")

#: Where the kernel lists this process's mounts (and their filesystem types).
MOUNTS = Path("/proc/self/mounts")

log = get_logger()


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
