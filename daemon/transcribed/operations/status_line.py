"""The one line that says what a daemon is doing: systemd's STATUS= and `transcribed status`.

Worded from a `Stats` snapshot (stats.py), the same one the status file and /metrics read.
"""

from __future__ import annotations

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
    if snapshot["current_file"]:
        doing = f"transcribing {snapshot['current_file']}{_how_far(snapshot)}"
        doing = f"stopping, {doing}" if state == "stopping" else doing
    else:
        doing = _IDLE.get(state, state)
    waiting = f"{snapshot['queue_length']} waiting"
    if snapshot.get("library_waiting"):
        waiting += f" (and {snapshot['library_waiting']} library files)"
    if snapshot.get("inbox_ignored"):
        waiting += f", {snapshot['inbox_ignored']} ignored"
    return (f"{doing}; {waiting}; {jobs['done']} done, "
            f"{jobs['failed']} failed" + (f", {jobs['retried']} retried" if jobs.get("retried") else ""))


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
