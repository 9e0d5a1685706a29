"""The libraries as a job source: media claimed in place, subtitles written beside it (docs/libraries.md).

A library file becomes a job without leaving its folder. What is claimed is a marker, not the
media: the job folder (`state/work/<worker>/<job>/`, with `library.json` naming the media in
place) is made first, then `state/library/claims/<content id>.json` is created with O_EXCL, so
among any number of daemons on one library exactly one wins each file. The job then runs through
the same consumer, engine, attempts, adoption and finish plans as an inbox file; its plan puts the
subtitles beside the media (`spool.finish.Finisher.place_beside`) and the JSON transcript, log or
error report in `state/library/`. The ledger (ledger.py) is written before the plan, so a
finished file is never taken again, and the marker goes last.

A crash leaves the job folder: it is adopted like any other, and the adopter takes the marker
over when it names that job (or names a job no worker folder holds any more). A marker whose job
is held by a live worker means the file is someone else's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

from .. import durable, languages
from ..config import Config
from ..errors import BadInput, StorageFault
from ..intake.arrivals import Arrivals
from ..intake.backlog import BacklogAudio
from ..logs import get_logger
from ..operations.stats import Stats
from ..spool.folder import WorkFolder
from ..spool.jobs import RECORD_FILE, Job, new_job_id
from ..spool.seam import Preference
from ..spool.workers import timestamp
from .job import DEFAULT_FORMATS, LIBRARY_RECORD, LibraryJob, read_library_job
from .ledger import Ledger, content_id, file_key, library_state
from .markers import ClaimMarkers
from .scan import (
    Found,
    ScanCounts,
    embedded_subtitle_languages,
    media_stem,
    subtitle_languages,
    subtitle_name,
    walk,
)

#: At most this many candidates are watched settling at once (the rest wait their turn), so a
#: new library of 10 000 files does not log 10 000 `file.detected` lines at once.
SETTLE_WINDOW = 64

log = get_logger()


class LibrarySource:
    """Every library: their scans, the claims of their files, and the ends of their jobs."""

    name = "library"

    def __init__(self, config: Config, spool: WorkFolder, stats: Stats) -> None:
        self.config = config
        self.spool = spool
        self.stats = stats
        root = library_state(config.folders.state)
        self.claims, self.results, self.failed = root / "claims", root / "results", root / "failed"
        self.ledger = Ledger(config.folders.state, spool.worker.name)
        self.markers = ClaimMarkers(self.claims, spool.work, spool.worker.name)
        self.arrivals = Arrivals(config.watch.settle_seconds)
        self.extensions = frozenset(config.watch.extensions)
        self._pending: dict[Path, Found] = {}
        #: This source's jobs claimed or taken back and not yet ended, by job id.
        self._jobs: dict[str, LibraryJob] = {}
        self._next_scan = 0.0
        self._last_counts: dict[str, dict[str, int]] = {}
        #: The waiting media's declared durations, for the reports (read once per file).
        self._backlog_audio = BacklogAudio()

    def prepare(self) -> None:
        self._make_folders()
        self.spool.storage.on_recovered(self._make_folders)  # those a full disk refused at start
        for lib in self.config.libraries:
            if not os.path.isdir(str(lib.path)):
                log.warning("library.unavailable", library=str(lib.path),
                            action="scanned again every watch.rescan_seconds")

    def _make_folders(self) -> None:
        for folder in (self.claims, self.results, self.failed):
            try:
                with durable.own_write(folder.parent):
                    folder.mkdir(parents=True, exist_ok=True)
            except StorageFault as fault:
                self.spool.storage.report(fault)
                return

    # --- finding and claiming ----------------------------------------------------------------------

    def claim(self, up_to: int, prefer: Preference | None = None) -> list[Job]:
        """Up to `up_to` complete library files without subtitles, each claimed by its marker, in
        path order (`prefer` is not asked: a library's files share its model)."""
        if not self.config.libraries:
            return []
        self.scan_if_due()
        if up_to < 1:
            return []
        window = self.waiting()[:SETTLE_WINDOW]
        claimed: list[Job] = []
        for path in self.arrivals.ready(window):
            if len(claimed) >= up_to:
                break
            try:
                job = self._claim(self._pending[path])
            except StorageFault as fault:  # the file stays a candidate: storage.py says why
                self.spool.storage.report(fault)
                break
            del self._pending[path]
            if job is not None:
                log.info("job.claimed", job_id=job.id, file=str(job.relpath), library=str(job.library))
                claimed.append(job)
        self.stats.library_waits(len(self._pending))
        return claimed

    def waiting(self) -> list[Path]:
        """The files the last scan found missing a subtitle, not yet claimed, in path order."""
        return sorted(self._pending)

    def scan_if_due(self, now: float | None = None) -> None:
        """Walk every library (at start, then every `watch.rescan_seconds`): the files neither in
        the ledger nor with subtitles become candidates. A summary is logged when it changes."""
        now = time.monotonic() if now is None else now
        if now < self._next_scan:
            return
        self._next_scan = now + self.config.watch.rescan_seconds
        self.ledger.refresh()
        pending: dict[Path, Found] = {}
        for lib in self.config.libraries:
            started, counts = time.monotonic(), ScanCounts()
            known = 0
            extensions = frozenset(lib.extensions) if lib.extensions else self.extensions
            for found in walk(lib, extensions, counts):
                if self.ledger.final(found.path, found.key) is not None:
                    known += 1
                else:
                    pending[found.path] = found
            summary = {**dataclasses.asdict(counts), "in_ledger": known,
                       "waiting": sum(1 for f in pending.values() if f.library is lib)}
            if self._last_counts.get(str(lib.path)) != summary:
                log.info("library.scanned", library=str(lib.path),
                         seconds=round(time.monotonic() - started, 3), **summary)
            self._last_counts[str(lib.path)] = summary
        self._pending = pending
        durations = self._backlog_audio.durations(sorted(pending))
        self.stats.library_waits(len(pending), {str(path): durations.get(path) for path in sorted(pending)})

    def set_aside(self) -> list[tuple[Job, BadInput]]:
        """Nothing: a library's media is never claimed only to be failed."""
        return []

    def _claim(self, found: Found) -> LibraryJob | None:
        key = file_key(found.path)
        if key is None or self.ledger.final(found.path, key) is not None:
            return None
        try:
            cid = content_id(found.path, key)
        except OSError as exc:
            log.warning("library.unreadable", file=str(found.path), error=str(exc))
            return None
        missing = self._still_missing(found, cid, key)
        if not missing:
            return None
        job = self._new_job(found, cid, key, missing)
        if job is None:
            return None
        try:
            taken = self.markers.take(job) and not self._finished_meanwhile(job)
        except StorageFault:
            shutil.rmtree(job.dir, ignore_errors=True)
            raise
        if taken:
            self._jobs[job.id] = job
            return job
        shutil.rmtree(job.dir, ignore_errors=True)  # another daemon was faster
        return None

    def _finished_meanwhile(self, job: LibraryJob) -> bool:
        """With the marker won, the ledger is read again: another daemon may have finished the
        file since this one's scan (its ledger record is written before its marker goes)."""
        self.ledger.refresh()
        if self.ledger.of_id(job.content_id) is None:
            return False
        self.markers.drop(job)
        return True

    def _still_missing(self, found: Found, cid: str, key: tuple[int, int]) -> tuple[str, ...]:
        """The languages still wanted once the ledger (a renamed file keeps its id) and, opt-in,
        the container's own subtitle streams have had their say."""
        entry = self.ledger.of_id(cid)
        if entry is not None:
            self.ledger.record(cid, entry.outcome, found.path, key, moved_from=entry.path)
            log.info("library.known", file=str(found.path), outcome=entry.outcome, was=entry.path)
            return ()
        missing = found.missing
        if found.library.check_streams:
            inside = embedded_subtitle_languages(found.path)
            missing = tuple(lang for lang in missing if lang not in inside)
            if not missing:
                self.ledger.record(cid, "embedded", found.path, key, languages=sorted(inside))
                log.info("library.embedded_subtitles", file=str(found.path), languages=sorted(inside))
        return missing

    def _new_job(self, found: Found, cid: str, key: tuple[int, int],
                 missing: tuple[str, ...]) -> LibraryJob | None:
        job_id = new_job_id()
        lib = found.library
        job = LibraryJob(id=job_id, relpath=PurePosixPath(found.path), dir=self.spool.mine / job_id,
                         intake=self.name, claimed_at=timestamp(), origin=found.path,
                         library=Path(str(lib.path)), content_id=cid, key=key, languages=missing, tag=lib.tag,
                         formats=lib.formats or DEFAULT_FORMATS)
        try:
            with durable.own_write(self.spool.mine):
                job.staging.mkdir(parents=True)
            durable.write_json_atomic(job.dir / RECORD_FILE, job.record())
            durable.write_json_atomic(job.dir / LIBRARY_RECORD, job.reference())
        except OSError as exc:
            shutil.rmtree(job.dir, ignore_errors=True)
            if isinstance(exc, StorageFault):
                raise
            log.error("job.claim_failed", file=str(found.path), error=str(exc))
            return None
        return job

    # --- a job's end -------------------------------------------------------------------------------

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """The subtitles beside the media (never over one there), the JSON transcript and the
        log in `state/library/results/`; the ledger says done before any of it moves. A full or
        read-only state folder raises `StorageFault` before anything moved: asked again later."""
        placed = self._place_results(self._jobs[job.id], outputs)
        del self._jobs[job.id]
        return placed

    def _place_results(self, job: LibraryJob, outputs: dict[str, Path]) -> dict[str, Path]:
        language = _language_of(outputs, job)
        folder = job.origin.parent
        have = subtitle_languages(media_stem(job.origin.name), _names_in(folder))
        stem = media_stem(job.origin.name)
        placements: list[tuple[Path, Path]] = []
        kept: list[str] = []
        for suffix, staged in outputs.items():
            text_language, fmt = _language_and_format(suffix, language)
            beside = folder / subtitle_name(stem, text_language, job.tag, fmt)
            if fmt in job.formats and text_language not in have and not os.path.lexists(beside):
                placements.append((staged, beside))
            else:
                kept.append(fmt)
                placements.append((staged, self.results / f"{job.content_id}{suffix}"))
        written = [str(dst) for _, dst in placements if dst.parent == folder]
        if not written:
            log.warning("library.subtitle_exists", language=language, kept_in=str(self.results),
                        reason="a subtitle in this language is beside the media already; none is overwritten")
        self.ledger.record(job.content_id, "done", job.origin, job.key, language=language,
                           subtitles=written, job_id=job.id)
        return self._carry_out(job, placements, None)

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path],
             logs: dict[str, Path]) -> dict[str, Path]:
        """The report, log and any partial transcript in `state/library/failed/`; the media stays.
        Tried again when the file changes, or after `transcribed retry PATH`. A full or
        read-only state folder raises `StorageFault` before anything moved: asked again later."""
        placed = self._place_failure(self._jobs[job.id], report, {**outputs, **logs})
        del self._jobs[job.id]
        return placed

    def _place_failure(self, job: LibraryJob, report: dict[str, Any],
                       files: dict[str, Path]) -> dict[str, Path]:
        self.ledger.record(job.content_id, "failed", job.origin, job.key,
                           error_kind=report.get("error_kind"), job_id=job.id)
        placements = [(job.dir / "error.json", self.failed / f"{job.content_id}.error.json")]
        placements += [(path, self.failed / f"{job.content_id}{suffix}") for suffix, path in files.items()]
        return self._carry_out(job, placements, report)

    def _carry_out(self, job: LibraryJob, placements: list[tuple[Path, Path]],
                   report: dict[str, Any] | None) -> dict[str, Path]:
        placed = self.spool.finisher.place_beside(job, placements, report)
        if not self.spool.is_held(job):
            self.markers.drop(job)
        return {str(job.source): job.source, **placed}

    def release(self, job: Job) -> Path:
        """Give a library file back (the daemon stops, the GPU is lost): the marker goes first, so
        a crash between leaves a job folder to adopt, never a marker nobody holds."""
        mine = self._jobs.pop(job.id)
        self.markers.drop(mine)
        shutil.rmtree(mine.dir, ignore_errors=True)
        durable.fsync_dir(mine.dir.parent)
        return mine.source

    # --- after a restart -----------------------------------------------------------------------------

    def take_back(self, job_dir: Path) -> LibraryJob | None:
        """A library job found in a work folder (adopted, or this worker's after a restart): run
        again, unless its file is gone, finished meanwhile, or another daemon holds it."""
        try:
            job = read_library_job(job_dir)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("library.job_unreadable", job_id=job_dir.name, error=str(exc))
            shutil.rmtree(job_dir, ignore_errors=True)  # only the job's state: the media is elsewhere
            return None
        self.ledger.refresh()
        finished = self.ledger.of_id(job.content_id) is not None
        if finished or not os.path.lexists(job.origin) or not self.markers.take(job):
            reason = "finished already" if finished else "its file is gone or another daemon holds it"
            log.info("library.job_dropped", job_id=job.id, file=str(job.origin), reason=reason)
            shutil.rmtree(job_dir, ignore_errors=True)
            return None
        self._jobs[job.id] = job
        return job


def _language_of(outputs: dict[str, Path], job: LibraryJob) -> str:
    """The language of the transcript's text (English for a translation), from the staged JSON
    (Whisper's code), else the wanted one."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        result = durable.read_json(outputs[".json"])
        language = result.get("text_language") or result["language"]
        if isinstance(language, str) and language:
            return language
    return job.languages[0] if job.languages else "und"


def _language_and_format(suffix: str, language: str) -> tuple[str, str]:
    """A staged output's text language and format: `.srt` is the transcript's (`language`),
    `.en.srt` the English translation beside it (`also_english`)."""
    head, _, fmt = suffix.lstrip(".").rpartition(".")
    return (head, fmt) if head and languages.known(head) else (language, suffix.lstrip("."))


def _names_in(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []
