"""`transcribed pause` and `transcribed resume`: the pause file written or removed in the state
folder (spool/pause.py), then what the daemons sharing that folder said, from their status
files: the command says what it did ("paused 2 daemons on /srv/state until resumed").

It waits (`--wait`, 15 s by default) until every running daemon's status file says so: an idle
daemon looks at the pause file within a few seconds, one in a job at its next beat. A daemon that
has not said so by then is named, with why it may not have (its heartbeat's age).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..spool.pause import Pause, pause_path, read_pause, remove_pause, who, write_pause
from .status_file import judge, read_all
from .status_line import until_words

#: `--for` durations: 90m, 2h, 1h30m, 45s, 1d.
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
#: How often the status files are read while waiting for the daemons to say so.
POLL_SECONDS = 0.25


def parse_until(until: str | None, duration: str | None, now: float | None = None) -> float | None:
    """When a pause ends: `--until 18:00` (the next such time, local), `--until 2025-03-01T08:00`,
    or `--for 90m`; None: until resumed. ConfigError names the option."""
    now = time.time() if now is None else now
    if duration is not None:
        match = _DURATION.match(duration.strip())
        if not duration.strip() or match is None:
            raise ConfigError(f"--for: expected a duration such as 90m, 2h, 1h30m or 45s, got {duration!r}")
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return now + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    if until is None:
        return None
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", until.strip()):
            hours, minutes = (int(p) for p in until.strip().split(":"))
            today = datetime.fromtimestamp(now).replace(hour=hours, minute=minutes, second=0, microsecond=0)
            moment = today if today.timestamp() > now else today + timedelta(days=1)
        else:
            moment = datetime.fromisoformat(until.strip())
    except ValueError:
        raise ConfigError(f"--until: expected a time of day (18:00) or a date and time "
                          f"(2025-03-01T08:00), got {until!r}") from None
    ends = moment.timestamp()
    if ends <= now:
        raise ConfigError(f"--until: {until} has passed already")
    return ends


def pause(state: Path, until: float | None, now: bool, reason: str | None, wait: float) -> list[str]:
    """Write the pause file; what the daemons on `state` said, as lines for a person."""
    asked = Pause(since=time.time(), until=until, now=now, by=who(), reason=reason)
    path = write_pause(state, asked)
    daemons = _running(state)
    after = "running jobs go back to the inbox untouched" if now else "running jobs finish first"
    if not daemons:
        return [f"paused {until_words(until)}: no daemon runs on {state} now; one that starts there "
                f"stays paused ({path})"]
    lines = [f"paused {_count(daemons)} on {state} {until_words(until)}: {after}, no new job starts "
             f"({path})"]
    said = _wait_for(state, daemons, wait, lambda record: _paused_by_file(record, asked.since))
    return lines + [_line(record, said) for record in daemons]


def resume(state: Path, wait: float) -> list[str]:
    """Remove the pause file; what the daemons on `state` said."""
    before = remove_pause(state)
    daemons = _running(state)
    if before is None:
        return [f"nothing to resume: no pause file in {state} (quiet hours are the config's: "
                "schedule.quiet)"]
    since = f"paused since {datetime.fromtimestamp(before.since):%Y-%m-%d %H:%M}"
    if before.by:
        since += f" by {before.by}"
    if not daemons:
        return [f"resumed: no daemon runs on {state} now ({since})"]
    lines = [f"resumed {_count(daemons)} on {state} ({since})"]
    said = _wait_for(state, daemons, wait, lambda record: not _paused_by_file(record, 0.0))
    return lines + [_line(record, said) for record in daemons]


def pause_file_of(state: Path) -> Pause | None:
    """The pause the state folder holds now (for `transcribed status`)."""
    return read_pause(pause_path(state))


def describe_pause(pause: Pause) -> str:
    """The pause file for a person: "paused since 2025-03-01 14:02 by ann@nas (games), until resumed"."""
    line = f"paused since {datetime.fromtimestamp(pause.since):%Y-%m-%d %H:%M}"
    line += f" by {pause.by}" if pause.by else ""
    line += f" ({pause.reason})" if pause.reason else ""
    line += f", {until_words(pause.until)}" + (" (expired)" if not pause.holds(time.time()) else "")
    return line + (", running jobs given back" if pause.now else "")


def _running(state: Path) -> list[dict[str, Any]]:
    """The daemons on `state` that run: alive where that can be told, heartbeat fresh."""
    running = []
    for record in read_all(state):
        verdict, limit = judge(record), float(record.get("stale_after_s") or 0)
        fresh = verdict.heartbeat_age is not None and verdict.heartbeat_age <= limit
        if verdict.alive is not False and fresh:
            running.append(record)
    return running


def _paused_by_file(record: dict[str, Any], since: float) -> bool:
    """Does the record say it is paused by the pause file (one written at `since` or later)?"""
    paused = record.get("paused")
    if not isinstance(paused, dict):
        return False
    return paused.get("by") == "pause" and float(paused.get("since") or 0) >= since - 1


def _wait_for(state: Path, daemons: list[dict[str, Any]], wait: float,
              said_so: Callable[[dict[str, Any]], bool]) -> dict[str, dict[str, Any]]:
    """Each daemon's latest record once it says so (or when `wait` runs out): worker -> record."""
    deadline = time.monotonic() + wait
    wanted = {record["worker"] for record in daemons}
    latest: dict[str, dict[str, Any]] = {}
    while True:
        for record in read_all(state):
            if record.get("worker") in wanted:
                latest[record["worker"]] = record
        done = {worker for worker, record in latest.items() if said_so(record)}
        if done >= wanted or time.monotonic() >= deadline:
            return {worker: {**record, "_said": worker in done} for worker, record in latest.items()}
        time.sleep(POLL_SECONDS)


def _line(record: dict[str, Any], said: dict[str, dict[str, Any]]) -> str:
    from .status_line import describe

    latest = said.get(record["worker"], record)
    where = f"{latest.get('host', '?')}, pid {latest.get('pid', '?')}"
    if not latest.get("_said"):
        age = judge(latest).heartbeat_age
        shown = "unknown" if age is None else f"{age:.0f} s"
        return (f"  {latest['worker']} [{where}]: has not said so yet (heartbeat {shown} old); it "
                "will at its next look at the state folder")
    return f"  {latest['worker']} [{where}]: {describe(latest)}"


def _count(daemons: list[dict[str, Any]]) -> str:
    return f"{len(daemons)} daemon{'s' if len(daemons) != 1 else ''}"
