"""The one line that says what a daemon is doing: systemd's STATUS= and `transcribed status`.

Worded from a `Stats` snapshot (stats.py), the same one the status file and /metrics read.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from .progress import describe_eta

#: What an idle daemon is doing, by state.
_IDLE = {"running": "idle", "loading": "loading the model", "unloaded": "idle, models unloaded",
         "reloading": "loading the models again for the next file"}


def describe(snapshot: dict[str, Any]) -> str:
    """One line a person reads in `systemctl status` and `transcribed status`, e.g.
    "transcribing talks/keynote.mp3: 42 %, about 3 min left; 3 waiting; 41 done, 2 failed"
    ("3 waiting, 1 ignored" when a file in the inbox will never be taken)."""
    jobs, state = snapshot["jobs"], snapshot["state"]
    storage = snapshot.get("storage") or {}
    if storage.get("waiting") and state != "stopping" and not snapshot["current_file"]:
        doing = storage_words(storage)
    elif snapshot["current_file"]:
        doing = f"transcribing {snapshot['current_file']}{_how_far(snapshot)}"
        doing = f"stopping, {doing}" if state == "stopping" else doing
    else:
        doing = _IDLE.get(state, state)
    if snapshot.get("paused") and state != "stopping":
        doing = pause_words(snapshot["paused"])
        if snapshot["current_file"]:
            doing += f", finishing {snapshot['current_file']}{_how_far(snapshot)}"
    waiting = f"{snapshot['queue_length']} waiting"
    if snapshot.get("library_waiting"):
        waiting += f" (and {snapshot['library_waiting']} library files)"
    if snapshot.get("inbox_ignored"):
        waiting += f", {snapshot['inbox_ignored']} ignored"
    return (f"{doing}; {waiting}; {jobs['done']} done, "
            f"{jobs['failed']} failed" + (f", {jobs['retried']} retried" if jobs.get("retried") else ""))


def storage_words(storage: dict[str, Any]) -> str:
    """Why the daemon waits for storage, e.g. "waiting for storage: /srv/share is full (4.0 MB
    free, floor 64 MB)" (spool/storage.py's snapshot)."""
    condition, folder = storage.get("condition"), storage.get("folder") or "the folders' filesystem"
    if condition == "read_only":
        what = f"{folder} is read-only"
    elif condition == "quota_exceeded":
        what = f"{folder} is over its quota"
    elif storage.get("reason") == "no_inodes":
        what = f"{folder} has no inodes left ({storage.get('free_inodes')} free)"
    else:
        what = f"{folder} is full"
        if storage.get("free_bytes") is not None:
            what += f" ({_size(storage['free_bytes'])} free, floor {_size(storage.get('floor_bytes') or 0)})"
    waiting = storage.get("jobs_waiting")
    return f"waiting for storage: {what}" + (f", {waiting} jobs kept" if waiting else "")


def _size(count: int) -> str:
    """Bytes for a person: "512 B", "4.0 kB", "64 MB", "1.2 GB" (decimal units)."""
    for unit, step in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= step:
            return f"{count / step:.1f} {unit}" if count < 10 * step else f"{count / step:.0f} {unit}"
    return f"{count} B"


def _how_far(snapshot: dict[str, Any]) -> str:
    """": 42 %, about 3 min left" (its parts where known), else how long it has run: " (12 s)"."""
    progress = snapshot.get("progress")
    parts = []
    if progress and progress["percent"] > 0:
        parts.append(f"{progress['percent']:.0f} %")
    if progress and progress["eta_s"] is not None:
        parts.append(describe_eta(progress["eta_s"]))
    if parts:
        return ": " + ", ".join(parts)
    return f" ({snapshot['current_for_s'] or 0:.0f} s)"


def pause_words(pause: dict[str, Any], now: float | None = None) -> str:
    """Why and until when no job starts, e.g. "paused until 18:00 (quiet hours)" or "paused until
    resumed (transcribed pause by ann@nas)" (consumer/gate.py's Paused, as a dict)."""
    why = "quiet hours" if pause.get("by") == "schedule" else "transcribed pause"
    if pause.get("by") != "schedule" and pause.get("asked_by"):
        why += f" by {pause['asked_by']}"
    return f"paused {until_words(pause.get('until'), now)} ({why})"


def until_words(until: float | None, now: float | None = None) -> str:
    """A moment a pause ends, for a person: "until resumed", "until 18:00" (today, local time),
    "until Mon 08:00" (this week), "until 2025-03-01 08:00"."""
    if until is None:
        return "until resumed"
    now = time.time() if now is None else now
    moment, today = datetime.fromtimestamp(until), datetime.fromtimestamp(now)
    if moment.date() == today.date():
        return f"until {moment:%H:%M}"
    if 0 < (moment.date() - today.date()).days < 7:
        return f"until {moment:%a %H:%M}"
    return f"until {moment:%Y-%m-%d %H:%M}"
