"""Whether a new job may start now: `transcribed pause` (the pause file every daemon on the state
folder reads: spool/pause.py) and quiet hours (`schedule.quiet`: config/schedule.py).

While paused the running job finishes (with `--now` it goes back to the inbox untouched at its
next beat instead), no file is claimed, files decoded ahead go back to the inbox, the sources are
still looked at so that what arrives is counted, and the models leave memory after
`model.idle_unload_seconds` (or PAUSED_UNLOAD_SECONDS when that is null: a paused daemon gives the
GPU back). Every report (STATUS=, the status file, /healthz, /metrics, the status page) says
paused, why and until when; the daemon stays healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .. import logs
from ..config import Config
from ..config.schedule import QuietHours
from ..operations.stats import Stats
from ..spool.pause import PauseWatch

#: How long a paused daemon keeps its models when `model.idle_unload_seconds` is null.
PAUSED_UNLOAD_SECONDS = 60.0

log = logs.get_logger()


class PausedNow(BaseException):
    """`transcribed pause --now`: the running jobs go back to the inbox untouched. A
    BaseException, so that no `except Exception` of a job's stages takes it for the job's
    failure (the consumer's loop gives the jobs back)."""


@dataclass(frozen=True)
class Paused:
    """Why no job starts: `pause` (the pause file) or `schedule` (quiet hours), since and until
    when (Unix time; until None: until resumed)."""

    by: str
    since: float
    until: float | None
    reason: str | None = None
    asked_by: str = ""
    now: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Gate:
    """The pause file and the quiet hours, as the consumer asks them; changes told to Stats and
    the log (`daemon.paused`, `daemon.resumed`)."""

    def __init__(self, config: Config, stats: Stats, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stats = stats
        self.clock = clock
        self.watch = PauseWatch(config.folders.state, clock=monotonic)
        self.quiet = QuietHours(config.schedule)
        self.windows = config.schedule.quiet
        #: Seconds of a pause after which the models leave memory.
        self.unload_after = config.model.idle_unload_seconds or PAUSED_UNLOAD_SECONDS
        self.state: Paused | None = None

    def closed(self, look_now: bool = True) -> Paused | None:
        """Why no new job may start now (None: one may). `look_now`: read the pause file now,
        else at most every second (from inside a job)."""
        now = self.clock()
        pause = self.watch.current(look_now)
        quiet_until = self.quiet.until(now)
        state: Paused | None = None
        if pause is not None and pause.holds(now):
            until = pause.until
            if until is not None and quiet_until is not None:
                until = max(until, quiet_until)
            state = Paused("pause", pause.since, until, pause.reason, pause.by, pause.now)
        elif quiet_until is not None:
            since = self.state.since if self.state is not None and self.state.by == "schedule" else now
            state = Paused("schedule", since, quiet_until, "quiet hours (schedule.quiet: "
                           f"{', '.join(self.windows)})")
        self._tell(state, now)
        return state

    def give_back_now(self) -> None:
        """From the running job's beat: raise PausedNow when a pause asks for its jobs now."""
        state = self.closed(look_now=False)
        if state is not None and state.now:
            raise PausedNow(state.reason or "transcribed pause --now")

    def seconds_left(self) -> float | None:
        """Seconds until the pause ends by itself (None: not paused, or until resumed)."""
        if self.state is None or self.state.until is None:
            return None
        return max(0.0, self.state.until - self.clock())

    def _tell(self, state: Paused | None, now: float) -> None:
        before, self.state = self.state, state
        if state == before:
            return
        self.stats.pause_changed(state.as_dict() if state is not None else None)
        if state is None and before is not None:
            log.info("daemon.resumed", paused_s=round(now - before.since, 1), was=before.by)
        elif state is not None:
            log.info("daemon.paused", by=state.by, until=_iso(state.until), reason=state.reason,
                     asked_by=state.asked_by or None, now=state.now,
                     action="the running job goes back to the inbox" if state.now
                     else "the running job finishes; no new job starts")


def _iso(moment: float | None) -> str | None:
    """A moment as local ISO time with its offset, for the log (None: until resumed)."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")
