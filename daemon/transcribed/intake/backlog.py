"""The backlog's audio: the declared duration of each waiting file, from its header.

Read on every inbox scan for `transcribed_queue_audio_seconds` (an ETA for the whole queue), so
each header is read once per (path, size, mtime): a big inbox is not probed again on every scan,
and a file that changes (still being copied, or replaced) is read again. Reading is bounded per
scan (PROBES_PER_SCAN headers, a few ms each), so a thousand files dropped at once delay the next
job by a fraction of a second, not by a thousand header reads; the rest are read on the
following scans. A count, not a time budget: on a busy machine a time budget would leave files
out at random.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import BadInput
from ..transcription.audio import declared_seconds

#: New headers read per scan at most (the rest wait for the next scan).
PROBES_PER_SCAN = 100

Key = tuple[str, int, int]


def read_declared_seconds(path: Path) -> float | None:
    """The duration the header declares, None when it declares none or the file is unreadable
    (the job itself reports why, in its turn)."""
    try:
        seconds = declared_seconds(path)
    except (BadInput, OSError):
        return None
    return seconds if seconds is not None and seconds > 0 else None


class BacklogAudio:
    """Declared durations of waiting files, cached by (path, size, mtime)."""

    def __init__(self, probe: Callable[[Path], float | None] = read_declared_seconds,
                 probes_per_scan: int = PROBES_PER_SCAN) -> None:
        self.probe = probe
        self.probes_per_scan = probes_per_scan
        self._known: dict[Key, float | None] = {}
        #: How many headers were read (each at most once per size and mtime).
        self.probes = 0

    def durations(self, paths: Iterable[Path]) -> dict[Path, float]:
        """Each waiting file whose header tells its duration: path -> seconds. Entries of files
        no longer waiting are forgotten."""
        left = self.probes_per_scan
        seen: dict[Key, float | None] = {}
        found: dict[Path, float] = {}
        for path in paths:
            key = _key(path)
            if key is None:
                continue
            if key in self._known:
                seconds = self._known[key]
            elif left > 0:
                seconds = self.probe(path)
                self.probes, left = self.probes + 1, left - 1
            else:
                continue  # over this scan's share: read at a later scan
            seen[key] = seconds
            if seconds is not None:
                found[path] = seconds
        self._known = seen
        return found


def _key(path: Path) -> Key | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None  # gone since the scan (claimed by another daemon, or removed)
    return str(path), stat.st_size, stat.st_mtime_ns
