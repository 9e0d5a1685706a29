"""What the hook folders hold, for `transcribed status`: deliveries still pending (per daemon,
the oldest, the ones failing and why) and deliveries given up. Read-only: it never takes a
record, so it is safe beside running daemons on any machine that shares the state folder."""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import durable
from ..operations.status_file import ago
from ..spool.workers import WorkerId
from .notes import ended
from .queue import GAVE_UP, HOOKS_FOLDER


def summary(state: Path) -> dict[str, Any]:
    """{"pending", "by_worker", "oldest_recorded_at", "failing", "last_error", "gave_up",
    "gave_up_dir"}: counts and the oldest pending record's time (seconds since the epoch)."""
    root = state / HOOKS_FOLDER
    pending: dict[str, int] = {}
    oldest: float | None = None
    failing, last_error, last_error_at = 0, None, -1.0
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or WorkerId.parse(folder.name) is None:
            continue
        for path in sorted(folder.glob("*.json")):
            pending[folder.name] = pending.get(folder.name, 0) + 1
            record = _read(path)
            recorded = _epoch(record.get("recorded_at")) or _mtime(path)
            if recorded is not None:
                oldest = recorded if oldest is None else min(oldest, recorded)
            errors = [t for t in (record.get("targets") or {}).values()
                      if isinstance(t, dict) and t.get("error") and not ended(t)]
            if errors:
                failing += 1
                when = _mtime(path) or 0.0
                if when > last_error_at:
                    last_error, last_error_at = str(errors[-1]["error"]), when
    gave_up_dir = root / GAVE_UP
    return {"pending": sum(pending.values()), "by_worker": pending, "oldest_recorded_at": oldest,
            "failing": failing, "last_error": last_error,
            "gave_up": len(list(gave_up_dir.glob("*.json"))) if gave_up_dir.is_dir() else 0,
            "gave_up_dir": str(gave_up_dir)}


def describe(hooks: dict[str, Any], now: float | None = None) -> list[str]:
    """A few lines for a person; none when nothing is pending or given up."""
    lines = []
    if hooks["pending"]:
        line = f"hooks: {hooks['pending']} deliver{'y' if hooks['pending'] == 1 else 'ies'} pending"
        if hooks["oldest_recorded_at"] is not None:
            line += f", the oldest recorded {ago(hooks['oldest_recorded_at'], now)}"
        if hooks["failing"]:
            line += f"; {hooks['failing']} failing, last error: {hooks['last_error']}"
        lines.append(line)
    if hooks["gave_up"]:
        lines.append(f"hooks: {hooks['gave_up']} given up after their last attempt, kept in "
                     f"{hooks['gave_up_dir']}")
    return lines


def _read(path: Path) -> dict[str, Any]:
    """A record, or {} when it is being replaced or damaged (the daemon sets such a one aside)."""
    with contextlib.suppress(OSError, ValueError):
        record = durable.read_json(path)
        if isinstance(record, dict):
            return record
    return {}


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
