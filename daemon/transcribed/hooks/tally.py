"""What the hook thread tells the reports after each pass: deliveries pending in this daemon's
folder, those failing with their last error (a text that holds no secret: notifications.py cuts
the URLs out), and how many were given up since the start. The status page reads it from Stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..operations.stats import Stats


@dataclass
class Tally:
    """The hook thread's counts; `stats` is set by the service (None: told to no one)."""

    mine: Path
    stats: Stats | None = None
    #: Job id -> the last error of a delivery still being tried.
    failing: dict[str, str] = field(default_factory=dict)
    gave_up: int = 0

    def tell(self) -> None:
        """Count the pending records and forget the errors of deliveries no longer pending."""
        if self.stats is None:
            return
        pending = {p.stem for p in self.mine.glob("*.json")} if self.mine.is_dir() else set()
        self.failing = {job: error for job, error in self.failing.items() if job in pending}
        self.stats.hooks_seen(len(pending), self.failing, self.gave_up)
