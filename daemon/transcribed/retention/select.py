"""Which items go: a pure function of the items, the folder's policy, what is in use and the time.

An item older than `max_age_days` goes; then, while the folder's items together are larger than
`max_size`, the oldest go until they fit. An item in use (a job's moves under way, a hook still
to deliver) never goes, but its size counts. Nothing here touches a file (carry.py does), so
`transcribed retention --dry-run` and the daemon's passes choose alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Keep, parse_size
from .items import Item

#: Seconds in a day (`max_age_days`).
DAY = 86400.0


@dataclass(frozen=True)
class Verdict:
    """One item that goes, and why, in words and in figures (for the log)."""

    item: Item
    #: "age" or "size".
    rule: str
    reason: str
    age_days: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.item.as_dict(), "rule": self.rule, "reason": self.reason,
                "age_days": round(self.age_days, 2)}


def choose(items: Iterable[Item], keep: Keep, busy: set[Path], now: float, folder: str) -> list[Verdict]:
    """The items of one folder that go now, oldest first."""
    ordered = sorted(items, key=lambda item: (item.landed, item.name))
    gone: list[Verdict] = []
    kept: list[Item] = []
    for item in ordered:
        age = max(0.0, now - item.landed) / DAY
        old = keep.max_age_days is not None and (age > keep.max_age_days or keep.max_age_days == 0)
        if old and not _in_use(item, busy):
            reason = f"its job is done (retention.{folder}: delete)" if keep.max_age_days == 0 else \
                f"{age:.1f} days old (retention.{folder}.max_age_days: {keep.max_age_days:g})"
            gone.append(Verdict(item, "age", reason, age))
        else:
            kept.append(item)
    if keep.max_size is not None:
        most = parse_size(keep.max_size, f"retention.{folder}.max_size")
        total = sum(item.size for item in kept)
        for item in kept:
            if total <= most:
                break
            if _in_use(item, busy):
                continue
            total -= item.size
            age = max(0.0, now - item.landed) / DAY
            gone.append(Verdict(item, "size", f"the oldest while {folder} holds more than "
                                f"{keep.max_size} (retention.{folder}.max_size)", age))
    return sorted(gone, key=lambda verdict: (verdict.item.landed, verdict.item.name))


def _in_use(item: Item, busy: set[Path]) -> bool:
    return any(path in busy for path in item.files)
