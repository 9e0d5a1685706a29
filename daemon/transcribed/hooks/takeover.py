"""The hook folders over time: pending records of gone workers taken over, the ledger pruned.

Each daemon keeps its pending deliveries in `state/hooks/<worker>/`. A daemon that is gone
(its work folder gone, or judged gone as adoption judges it: `spool.workers.Liveness`) leaves
them behind; the first live daemon to rename each record into its own folder delivers it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from .. import durable
from ..logs import get_logger
from ..spool.workers import Liveness, WorkerId

log = get_logger()


class Takeover:
    """Takes the pending records of gone workers (under `root`) into this worker's, `mine`."""

    def __init__(self, root: Path, mine: Path, work: Path, liveness: Liveness) -> None:
        self.root = root
        self.mine = mine
        self.work = work
        self.liveness = liveness

    def take_over_orphans(self) -> None:
        """Rename the pending records of gone workers into ours (exactly one daemon wins each)."""
        for folder in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if folder == self.mine or not folder.is_dir() or WorkerId.parse(folder.name) is None:
                continue
            reason = self._gone_because(folder.name)
            if reason is None:
                continue
            for record in sorted(folder.glob("*.json")):
                self.mine.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(record, self.mine / record.name)
                except OSError:
                    continue  # another daemon was faster
                log.info("hook.taken_over", job_id=record.stem, previous_worker=folder.name,
                         reason=reason)
            durable.fsync_dir(self.mine)
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _gone_because(self, name: str) -> str | None:
        work = self.work / name
        if not work.is_dir():
            return "its work folder is gone (it stopped, or its jobs were adopted)"
        return self.liveness.gone_because(work)


def prune_ledger(folder: Path, keep_seconds: float) -> None:
    """Delivered records older than `keep_seconds` leave the ledger `folder`."""
    cutoff = time.time() - keep_seconds
    for path in folder.glob("*.json") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
