"""The `schedule` section: quiet hours, windows of local time in which no new job starts.

A window is `HH:MM-HH:MM`, optionally after the days it applies to: `08:00-18:00` (every day),
`Mon-Fri 08:00-18:00`, `Sat,Sun 09:00-12:00`, `22:00-06:00` (across midnight: it belongs to the
day it starts on, so `Fri 22:00-06:00` ends on Saturday morning), `00:00-24:00` (the whole day).
Windows that touch or overlap make one quiet spell: its end is when work starts again.

`QuietHours.until(now)` is a pure function of the time it is given (tests move a clock), in the
zone `schedule.timezone` names, else the system's local time (TZ).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError

#: Day names a window may start with, Monday first (datetime.weekday()'s order).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
#: A span is looked for in the week before (one that wraps into this one), this one and the next.
_WEEKS = (-MINUTES_PER_WEEK, 0, MINUTES_PER_WEEK)
_WINDOW = re.compile(r"^\s*(?:(?P<days>[A-Za-z ,\-]+?)\s+)?"
                     r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


@dataclass(frozen=True)
class Schedule:
    """When the daemon starts no new job (docs/configuration.md#pause-resume-and-quiet-hours)."""

    #: Windows of local time, e.g. ["08:00-18:00"] or ["Mon-Fri 08:00-18:00", "Sat,Sun 10:00-12:00"].
    #: A job running when one begins finishes; files keep arriving and are counted.
    quiet: tuple[str, ...] = ()
    #: The zone the windows are read in, e.g. Europe/Berlin; null: the system's local time (TZ).
    timezone: str | None = None


@dataclass(frozen=True)
class Span:
    """A quiet stretch of the week: [start, end) in minutes from Monday 00:00 (end may pass the
    week's end: it wraps)."""

    start: int
    end: int


class QuietHours:
    """The quiet windows of a schedule, asked with a moment in time."""

    def __init__(self, schedule: Schedule) -> None:
        self.spans = [span for i, text in enumerate(schedule.quiet)
                      for span in parse_window(text, f"schedule.quiet[{i}]")]
        self.zone = zone_of(schedule.timezone)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def until(self, now: float | None = None) -> float | None:
        """The end of the quiet spell `now` (Unix time) falls in, as Unix time; None: not quiet."""
        if not self.spans:
            return None
        now = time.time() if now is None else now
        local = datetime.fromtimestamp(now, self.zone or _system_zone(now))
        minute = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        end = self._spell_end(minute)
        if end is None:
            return None
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        monday = midnight - timedelta(days=local.weekday())
        wall = monday + timedelta(minutes=end)  # the wall clock then: a DST change counts as it should
        ends = wall.replace(tzinfo=self.zone).timestamp() if self.zone else _local_timestamp(wall)
        return max(now, ends)

    def _spell_end(self, minute: int) -> int | None:
        """The minute (from this week's Monday 00:00, maybe past the week) at which the quiet
        spell holding `minute` ends, following windows that touch or overlap; None: not quiet."""
        end: int | None = None
        probe = minute
        for _ in range(len(_WEEKS) * len(self.spans) + 1):
            covering = [s.end + week for s in self.spans for week in _WEEKS
                        if s.start + week <= probe < s.end + week]
            if not covering:
                return end
            end = probe = max(covering) if end is None else max(end, *covering)
        return end


def _system_zone(now: float) -> tzinfo | None:
    """The system's local zone at `now` (TZ; its offset then, DST included)."""
    return datetime.fromtimestamp(now).astimezone().tzinfo


def _local_timestamp(wall: datetime) -> float:
    """A naive local wall-clock time as Unix time (the system's zone, DST included)."""
    return time.mktime(wall.timetuple())


def zone_of(name: str | None) -> tzinfo | None:
    """The zone `schedule.timezone` names (None: the system's local time)."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"schedule.timezone: unknown time zone {name!r}: expected a name of the "
                          "tz database, e.g. Europe/Berlin or UTC, or null for the system's") from None


def parse_window(text: str, key: str) -> list[Span]:
    """One window as the spans of the week it covers (one per day it applies to)."""
    match = _WINDOW.match(text)
    if match is None:
        raise ConfigError(f'{key}: expected a window such as "08:00-18:00" or "Mon-Fri 22:00-06:00", '
                          f"got {text!r}")
    start, end = _minute(match["start"], key, text), _minute(match["end"], key, text)
    if start == MINUTES_PER_DAY:
        raise ConfigError(f"{key}: a window starts at 00:00 to 23:59, got {text!r}")
    if start == end:
        raise ConfigError(f'{key}: starts and ends at the same time ({text!r}); the whole day is '
                          '"00:00-24:00"')
    length = (end - start) % MINUTES_PER_DAY or MINUTES_PER_DAY
    days = _days(match["days"], key, text) if match["days"] else range(7)
    return [Span(day * MINUTES_PER_DAY + start, day * MINUTES_PER_DAY + start + length) for day in days]


def _minute(clock: str, key: str, text: str) -> int:
    hours, minutes = (int(part) for part in clock.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ConfigError(f"{key}: {clock} is no time of day (00:00 to 24:00) in {text!r}")
    return hours * 60 + minutes


def _days(text: str, key: str, window: str) -> list[int]:
    """`Mon-Fri`, `Sat,Sun`, `Fri-Mon` (wrapping) as weekday numbers, Monday 0."""
    days: list[int] = []
    for part in (p.strip().lower() for p in text.split(",")):
        first, _, last = (p.strip()[:3] for p in part.partition("-"))
        if first not in DAYS or (last and last not in DAYS):
            raise ConfigError(f"{key}: unknown day in {window!r}: expected Mon, Tue, Wed, Thu, Fri, "
                              "Sat, Sun, a range (Mon-Fri) or a list (Sat,Sun)")
        a = DAYS.index(first)
        b = DAYS.index(last) if last else a
        days += [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    return sorted(set(days))


def check_schedule(schedule: Schedule) -> None:
    """Windows that parse, a zone that exists, and some time left in the week to work."""
    hours = QuietHours(schedule)
    covered = sorted((s.start, s.end) for s in hours.spans)
    reach = max([end - MINUTES_PER_WEEK for _, end in covered] + [0])  # what wraps past Sunday night
    for start, end in covered:
        if start > reach:
            return
        reach = max(reach, end)
    if covered and reach >= MINUTES_PER_WEEK:
        raise ConfigError("schedule.quiet: the windows cover the whole week, so no job would ever "
                          "start; use `transcribed pause` to stop taking files for a while")
