"""The inbox as a job source: complete files claimed oldest first, and each job's end in the folders.

A claim takes the complete files of the last look at the inbox (inbox.py scans, arrivals.py says
which are complete) and renames each into this worker's folder (spool/claim.py). A file the inbox
will never take (an extension not watched) is logged once, with why (`inbox.ignored`), and
counted for the reports; it is never claimed, so nothing retries it. A job's end is
a plan of moves (spool/finish.py): results to the outbox and the source to done/, or the source
and its report to failed/, or the source back into the inbox untouched.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import BadInput, StorageFault
from ..logs import get_logger
from ..operations.stats import Stats
from ..spool.claim import Claims
from ..spool.folder import WorkFolder
from ..spool.jobs import Job, read_job
from ..spool.seam import Preference
from .arrivals import Arrivals
from .backlog import BacklogAudio
from .inbox import Inbox

#: While files found earlier wait to be claimed, the inbox is looked at again after this long, or
#: after LOOKS_AT_MOST times what the last look took (so looks take at most a tenth of the time).
READY_REFRESH_SECONDS = 1.0
LOOKS_AT_MOST = 10
#: How many of the oldest complete files a preference is asked about per claim (a flood's
#: sidecars are not read on every claim).
PREFER_WINDOW = 64

log = get_logger()


class InboxSource:
    """The inbox folder's files, claimed in arrival order; their ends in outbox/, done/, failed/."""

    name = "inbox"

    def __init__(self, config: Config, spool: WorkFolder, arrivals: Arrivals, stats: Stats,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.spool = spool
        self.arrivals = arrivals
        self.stats = stats
        self.inbox = Inbox(config.folders.inbox, config.watch.extensions, config.watch.rescan_seconds)
        self._claims = Claims(spool.mine, self.name)
        self._backlog_audio = BacklogAudio()
        #: Complete files found by the last look at the inbox, not yet claimed (_ready_files).
        self._ready: deque[Path] = deque()
        self._ready_until = 0.0
        #: When each of them was first found complete (time.monotonic()), for `prefer`'s bound.
        self._ready_since: dict[Path, float] = {}
        #: Files the inbox will never take that were logged (inbox.ignored) while they stay there.
        self._ignored: set[Path] = set()

    def prepare(self) -> None:
        """Nothing of its own: the inbox is one of the folders the work folder sets up."""

    # --- claims -----------------------------------------------------------------------------------

    def claim(self, up_to: int, prefer: Preference | None = None) -> list[Job]:
        """Up to `up_to` complete files from the inbox, oldest arrival first (those `prefer` wants
        first, unless the oldest has waited `prefer.max_wait_seconds`); none more once storage
        refuses a job's record (the file stays in the inbox: storage.py says why)."""
        ready = self._ready_files()
        claimed: list[Job] = []
        while ready and len(claimed) < up_to:
            path = self._next(ready, prefer)
            try:
                job = self._claims.claim(path, self.inbox.relative(path))  # None: gone since
            except StorageFault as fault:
                ready.appendleft(path)
                self.spool.storage.report(fault)
                break
            if job is not None:
                log.info("job.claimed", job_id=job.id, file=str(job.relpath))
                claimed.append(job)
        return claimed

    def _ready_files(self) -> deque[Path]:
        """The complete files of the last look at the inbox, oldest arrival first. The inbox is
        looked at again (a scan, the settle rules) once they are all taken, or READY_REFRESH_SECONDS
        after the last look: a flood of 10 000 files is not scanned, nor each file's stat read,
        once per claim. A file that came since is later in arrival order than every queued one;
        one gone since is skipped by its claim, one left over is found by the next look. Links,
        FIFOs and the like have nothing to settle: they come first, and fail at once."""
        now = time.monotonic()
        if not self._ready or now >= self._ready_until:
            waiting = self.inbox.scan()
            self._count_waiting(waiting)
            self._report_ignored()
            fresh = [*self.inbox.not_regular(), *self.arrivals.ready(waiting)]
            self._ready = deque(dict.fromkeys(fresh))
            found = self.clock()
            self._ready_since = {path: self._ready_since.get(path, found) for path in self._ready}
            took = time.monotonic() - now  # a look at 10 000 files may take a good part of a second
            self._ready_until = now + max(READY_REFRESH_SECONDS, LOOKS_AT_MOST * took)
        return self._ready

    def _next(self, ready: deque[Path], prefer: Preference | None) -> Path:
        """The next file to claim (taken off `ready`, which stays in arrival order): the oldest,
        or with `prefer` the oldest it wants among the first PREFER_WINDOW, unless the oldest of
        all has waited `prefer.max_wait_seconds` since it was found complete: then it goes, so
        that no file waits for ever."""
        if prefer is None:
            return ready.popleft()
        now = self.clock()
        if now - self._ready_since.get(ready[0], now) < prefer.max_wait_seconds:
            for i, path in enumerate(ready):
                if i >= PREFER_WINDOW:
                    break
                if prefer.wants(self.inbox.relative(path), path):
                    del ready[i]
                    return path
        return ready.popleft()

    def _count_waiting(self, waiting: list[Path]) -> None:
        """For the reports: the files waiting, and the audio of those whose headers tell it (read
        once per file: backlog.py)."""
        names = {path: str(self.inbox.relative(path)) for path in waiting}
        durations = self._backlog_audio.durations(names)
        self.stats.waiting(len(names), {name: durations.get(path) for path, name in names.items()})

    def _report_ignored(self) -> None:
        """Each file the inbox will never take, logged once while it stays (a file renamed or
        brought back is new), and how many there are, for the reports."""
        ignored = self.inbox.ignored()
        for path in sorted(ignored.keys() - self._ignored):
            log.warning("inbox.ignored", file=str(self.inbox.relative(path)), reason=ignored[path])
        self._ignored = set(ignored)
        self.stats.ignored_in_inbox(len(ignored))

    def set_aside(self) -> list[tuple[Job, BadInput]]:
        """A sidecar left in the inbox without its audio is claimed, to go to failed/ with a
        report, so that nothing lies in the inbox for ever unexplained."""
        wait = self.config.watch.sidecar_wait_seconds
        strays = []
        for path in self.inbox.stray_sidecars(older_than=wait):
            try:
                job = self._claims.claim(path, self.inbox.relative(path))
            except StorageFault as fault:
                self.spool.storage.report(fault)
                break
            if job is None:
                continue
            audio = job.relpath.name[: -len(job.relpath.suffix)]
            strays.append((job, BadInput(
                "stray_sidecar", f"no audio file named {audio!r} came into the inbox within "
                f"{wait:g} s of this sidecar (watch.sidecar_wait_seconds). A sidecar that arrives "
                "after its audio was taken is not applied: deliver it before or with its audio")))
        return strays

    # --- a job's end ------------------------------------------------------------------------------

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """The results into the outbox, then the source (and its sidecars) to done/."""
        return self.spool.finisher.complete(job, outputs)

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path],
             logs: dict[str, Path]) -> dict[str, Path]:
        """The source to failed/ beside `<name>.error.json` and its log; results kept so far
        (a plain transcript when a later stage failed) to the outbox."""
        return self.spool.finisher.fail(job, report, outputs, logs)

    def release(self, job: Job) -> Path:
        """The source back into the inbox untouched, and the job forgotten."""
        return self.spool.finisher.requeue(job)

    def take_back(self, job_dir: Path) -> Job | None:
        """An inbox job found in the work folder: run again (a half-made claim is removed)."""
        return read_job(job_dir)
