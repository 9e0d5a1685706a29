"""Waiting for storage: a full, over-quota or read-only filesystem stops new work, never a job.

`Storage` says whether the daemon may take new work. It waits while the folders' filesystem is
read-only, has less free space than the floor (`folders.min_free_bytes`) or no inodes left, or
since a write of the daemon's own was refused (an `errors.StorageFault`: the only way to see a
quota, which `statvfs` does not show) until a probe write into that folder goes through. Jobs in
flight keep their place and their work meanwhile (consumer/endings.py); what could not be written
is written by the actions run at recovery (`on_recovered`), within a second or two of the space
coming back, with no restart.

It has no thread: the consumer calls `check` on each turn of its loop and before each claim (a
`statvfs` at most every CHECK_SECONDS), the other threads read `waiting` or `report` a fault. The
condition is logged once when it starts, then every REMIND_SECONDS while it lasts, and its end
once; a condition that comes back soon after it ended (a quota that lets a probe through but not
a job's results) is not logged again before REMIND_SECONDS.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StorageFault
from ..logs import get_logger

#: The filesystem is looked at (statvfs, a probe) at most this often while the daemon runs.
CHECK_SECONDS = 1.0
#: While a condition lasts, it is logged again this often.
REMIND_SECONDS = 600.0
#: A job makes about 15 names (folders, records, results): below this many free inodes, no claim.
MIN_FREE_INODES = 256
#: Written (and removed) to tell that a filesystem that refused a write takes one again.
PROBE_BYTES = 64 * 1024
#: The floor's least value when `auto`, and the results one second of audio may write (all five
#: formats with word timestamps and speakers measured 776 B/s), counted twice: the job's records,
#: its log and a second job in flight need room too.
MIN_AUTO_FLOOR_BYTES = 64 * 1024 * 1024
RESULT_BYTES_PER_AUDIO_SECOND = 1024
#: Leaving a floor condition needs this much more than the floor (a tenth), so that a disk
#: hovering at the floor does not flap.
FLOOR_MARGIN = 0.1
#: The log event of each condition.
EVENTS = {"full": "storage.full", "quota_exceeded": "storage.quota_exceeded",
          "read_only": "storage.read_only"}

log = get_logger()


def floor_bytes(setting: int | str, max_audio_seconds: float | None) -> tuple[int, str]:
    """`folders.min_free_bytes` as bytes, and where the figure came from (said at start)."""
    if isinstance(setting, int):
        return setting, "folders.min_free_bytes"
    if max_audio_seconds is None:
        return MIN_AUTO_FLOOR_BYTES, "auto: the least floor"
    results = int(2 * RESULT_BYTES_PER_AUDIO_SECOND * max_audio_seconds)
    if results <= MIN_AUTO_FLOOR_BYTES:
        return MIN_AUTO_FLOOR_BYTES, "auto: the least floor"
    return results, (f"auto: twice the results of {max_audio_seconds:.0f} s of audio "
                     f"(input.max_audio_seconds) at {RESULT_BYTES_PER_AUDIO_SECOND} B/s")


@dataclass(frozen=True)
class Condition:
    """Why the daemon waits for storage."""

    #: "full", "quota_exceeded" or "read_only".
    kind: str
    #: "below_floor", "no_inodes", "read_only" (seen by statvfs) or "write_refused" (a fault).
    reason: str
    #: The folder whose filesystem it is.
    folder: Path
    #: The refused write's error, for "write_refused".
    error: str | None = None


@dataclass(frozen=True)
class Space:
    """What statvfs said of a filesystem (None where it reports no figure)."""

    free_bytes: int | None
    free_inodes: int | None
    read_only: bool


class Storage:
    """Whether the folders' filesystem takes the daemon's writes; what waits for it to again.

    Two degrees: `waiting` (no new file is claimed) while any condition lasts, the floor
    included; `blocked` (nothing is written: jobs that wait for storage stay waiting, hooks are
    not delivered) while writes are refused: a write refused since the last probe, a read-only
    filesystem, no inodes. Below the floor alone, jobs already claimed still run and finish."""

    def __init__(self, root: Path, floor: int, clock: Callable[[], float] = time.monotonic) -> None:
        #: A folder on the folders' filesystem (the state folder): the one statvfs watches.
        self.root = root
        self.floor = floor
        self.clock = clock
        self._lock = threading.Lock()
        #: What the last check found (None: nothing), and a write refused since the last probe
        #: that went through (reported by any thread at any time).
        self._shown: Condition | None = None
        self._fault: Condition | None = None
        self._since: float | None = None
        self._since_wall: float | None = None
        #: When each kind of condition was last logged (a flapping one is logged once per
        #: REMIND_SECONDS), when the current one was, and whether its start was.
        self._announced: dict[str, float] = {}
        self._reminded = 0.0
        self._logged = False
        self._next_check = 0.0
        self._space = Space(None, None, read_only=False)
        self._actions: list[Callable[[], None]] = []

    # --- read by every thread --------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Is a condition on (so no new file is claimed)?"""
        with self._lock:
            return self._shown is not None or self._fault is not None

    @property
    def blocked(self) -> bool:
        """Are writes refused (so nothing waiting for storage is tried, no hook delivered)?"""
        with self._lock:
            return _blocks(self._shown) or self._fault is not None

    def snapshot(self) -> dict[str, Any]:
        """For the reports (stats.py): waiting or not, why, the free space and the floor."""
        with self._lock:
            shown = self._shown or self._fault
            return {
                "waiting": shown is not None,
                "condition": shown.kind if shown else None,
                "reason": shown.reason if shown else None,
                "folder": str(shown.folder) if shown else None,
                "error": shown.error if shown else None,
                "since": round(self._since_wall, 3) if shown and self._since_wall else None,
                "free_bytes": self._space.free_bytes, "free_inodes": self._space.free_inodes,
                "floor_bytes": self.floor,
            }

    def on_recovered(self, action: Callable[[], None]) -> None:
        """Run `action` (on the consumer's thread) each time writes go through again."""
        self._actions.append(action)

    def report(self, fault: StorageFault) -> None:
        """A write of ours was refused: wait from now on, until a probe into that folder goes
        through. Any thread may call it; the consumer's next check logs it."""
        with self._lock:
            if self._fault is None or self._fault.kind != fault.condition:
                error = f"{fault.strerror}: {fault.filename}" if fault.filename else str(fault.strerror)
                self._fault = Condition(fault.condition, "write_refused", fault.folder, error)
                self._next_check = 0.0

    # --- the consumer's ------------------------------------------------------------------------

    def check(self) -> bool:
        """Look at the filesystem when due; log a change, and run the recovery actions when
        writes go through again. True while the daemon waits (claims nothing)."""
        now = self.clock()
        with self._lock:
            if now < self._next_check:
                return self._shown is not None or self._fault is not None
            self._next_check = now + CHECK_SECONDS
            fault, before = self._fault, self._shown
            was_blocked = _blocks(before) or fault is not None
        space = look(self.root)
        seen = self._judge(space, before)
        cleared = fault is not None and not _blocks(seen) and probe(fault.folder)
        with self._lock:
            self._space = space
            if cleared and self._fault is fault:
                self._fault = None
            shown = self._shown = seen if _blocks(seen) else (self._fault or seen)
            blocked = _blocks(shown)
        self._tell(before, shown, now)
        if was_blocked and not blocked:
            for action in self._actions:
                action()
        return shown is not None

    def _judge(self, space: Space, before: Condition | None) -> Condition | None:
        """The condition statvfs shows: read-only, fewer free inodes than a job needs, or less
        free space than the floor (a margin more, once waiting for it: FLOOR_MARGIN)."""
        if space.read_only:
            return Condition("read_only", "read_only", self.root)
        if space.free_inodes is not None and space.free_inodes < MIN_FREE_INODES:
            return Condition("full", "no_inodes", self.root)
        floor = self.floor * (1 + FLOOR_MARGIN) if before is not None else self.floor
        if space.free_bytes is not None and space.free_bytes < floor:
            return Condition("full", "below_floor", self.root)
        return None

    def _tell(self, before: Condition | None, shown: Condition | None, now: float) -> None:
        """Log a condition's start (once per REMIND_SECONDS of its kind), every REMIND_SECONDS
        while it lasts, and its end (when its start was logged)."""
        if shown is not None and (before is None or before.kind != shown.kind):
            if before is None:
                self._since, self._since_wall = now, time.time()
            self._reminded = now
            last = self._announced.get(shown.kind)
            self._logged = last is None or now - last >= REMIND_SECONDS
            if self._logged:
                self._announced[shown.kind] = now
                self._log_condition(shown, for_s=None)
        elif shown is not None and now - self._reminded >= REMIND_SECONDS:
            self._reminded = self._announced[shown.kind] = now
            self._logged = True
            self._log_condition(shown, for_s=round(now - (self._since or now), 1))
        elif shown is None and before is not None:
            if self._logged:
                log.info("storage.recovered", folder=str(before.folder),
                         waited_s=round(now - (self._since or now), 1),
                         free_bytes=self._space.free_bytes, floor_bytes=self.floor,
                         action="new files are taken again; what waited is written now")
            self._since = self._since_wall = None

    def _log_condition(self, condition: Condition, for_s: float | None) -> None:
        log.error(EVENTS[condition.kind], folder=str(condition.folder), reason=condition.reason,
                  error=condition.error, free_bytes=self._space.free_bytes,
                  free_inodes=self._space.free_inodes, floor_bytes=self.floor, for_s=for_s,
                  action="no new file is taken and nothing fails; jobs keep their place and "
                         "their work, and go on by themselves once the filesystem takes writes")


def _blocks(condition: Condition | None) -> bool:
    """Does this condition refuse writes (not only new claims, as the floor does)?"""
    return condition is not None and condition.reason != "below_floor"


def look(folder: Path) -> Space:
    """statvfs of `folder`'s filesystem; a filesystem that reports no size (some FUSE mounts
    say 0 blocks) has no free-space figure, so no floor applies to it. One that cannot be asked
    (a share away) says nothing here: that is the unreachable share's case, not storage."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return Space(None, None, read_only=False)
    free = st.f_bavail * st.f_frsize if st.f_blocks > 0 else None
    inodes = st.f_favail if st.f_files > 0 else None  # btrfs and others: no inode limit
    return Space(free, inodes, read_only=bool(st.f_flag & os.ST_RDONLY))


def probe(folder: Path) -> bool:
    """Does the filesystem of `folder` (or of its nearest existing parent) take a write of
    PROBE_BYTES again? The probe file is removed at once."""
    where = folder
    while not where.is_dir() and where.parent != where:
        where = where.parent
    path = where / f".transcribed-probe-{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        written = os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    except OSError:
        return False
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
    return written == PROBE_BYTES
