"""The storage monitor (spool/storage.py) as the consumer's loop asks it: on each turn and before
each claim, told to the reports with how many of this daemon's jobs wait for storage."""

from __future__ import annotations

import threading

from ..operations.stats import Stats
from ..spool.storage import CHECK_SECONDS, Storage
from .endings import Endings


class StorageWatch:
    """Whether storage lets the consumer claim (`check`) or do anything at all (`blocked`)."""

    def __init__(self, storage: Storage, stats: Stats, endings: Endings) -> None:
        self.storage = storage
        self.stats = stats
        self.endings = endings

    def check(self) -> bool:
        """Ask the storage monitor (a look at the filesystem at most every second), and tell the
        reports; True while it waits (no file is claimed)."""
        waiting = self.storage.check()
        jobs = len(self.endings.storage_waits) + len(self.endings.backlog) if waiting else 0
        self.stats.storage_seen(self.storage.snapshot(), jobs)
        return waiting

    def blocked(self) -> bool:
        """Does storage refuse writes now (so no job is started or carried on)?"""
        self.check()
        return self.storage.blocked

    def wait(self, wake: threading.Event, stop: threading.Event, beat_interval: float) -> None:
        """Beat, and look at the filesystem again in a second: nothing else until it takes writes."""
        wake.clear()  # files that arrive meanwhile are found by the scan after the wait
        if not stop.is_set():
            wake.wait(timeout=min(CHECK_SECONDS, beat_interval))
