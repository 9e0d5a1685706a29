"""Finishing a job: a recorded plan of moves out of the work folder, carried out without overwriting.

A job ends done (results to `outbox/`, the source to `done/`), failed (the source to `failed/`
beside its `.error.json`) or back in the inbox (requeued, untouched). Each is a plan of moves,
`plan.json`, written first and then carried out with `durable.move_no_clobber`; a crash anywhere
is finished or redone by whoever loads the job next (this worker after a restart, or an adopter).
The plan's paths are relative to the job folder and to the folder roots, so it still holds after
the job folder is adopted, or on a host that mounts the share elsewhere; a version-1 plan kept
absolute paths and is re-anchored when read. The results move first and are fsynced (file and
folder) before the source leaves the work folder.

Names: results keep the source's relative path, with `stem.2`, `stem.3`... when a name is taken,
and a stem shortened (with a hash) where a name would pass the filesystem's 255 bytes.

A folder that refuses a move (full, read-only) never costs a file: the finished job is held, its
files wait in the work folder, the move is retried with a doubling delay, and no new file is
claimed while a folder refuses (`paused`). A full, over-quota or read-only filesystem is the
storage monitor's to tell (storage.py): such a hold is logged once, and retried as soon as
writes go through again instead of on a timer.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import durable
from ..config import Folders
from ..errors import storage_fault
from ..logs import get_logger
from .jobs import Job, JobState
from .storage import Storage

#: Longest file name (bytes) of Linux filesystems and SMB; longer result names are shortened.
NAME_MAX = 255
#: A move that failed is retried after this many seconds, doubling up to the maximum.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
#: Errors that say a folder (not the file) is the problem: new claims wait until it is fixed.
FOLDER_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                           errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.ETIMEDOUT})
PLAN_VERSION = 2
#: The plan in a job folder: once it is there, the job is finished, whatever happens next.
PLAN_FILE = "plan.json"
#: The folder (as the plan names it) that a job's source goes to in each final state.
SOURCE_FOLDER = {JobState.DONE: "done", JobState.FAILED: "failed", JobState.WAITING: "inbox"}

log = get_logger()

#: One planned move: the file, the folder root's name, and its path under that root.
Move = tuple[Path, str, PurePosixPath]
#: A step before a plan's moves: the job folder, and the plan's (source, destination) paths.
BeforeMoves = Callable[[Path, list[tuple[Path, Path]]], None]
#: A step before a plan is written (the job folder): what must be on disk before the plan is.
BeforePlan = Callable[[Path], None]


@dataclass
class HeldJob:
    """A finished job whose moves a folder refused: retried later, its files stay in the job."""

    job_dir: Path
    #: The plan, while it is not yet on disk (writing it was refused too); else None.
    plan: dict[str, Any] | None
    report: dict[str, Any] | None
    #: Does the refusal pause new claims (a folder-wide error, not one file's)?
    blocking: bool
    delay: float = RETRY_FIRST_SECONDS
    due: float = 0.0
    #: Refused by a full, over-quota or read-only filesystem: retried once writes go through.
    storage: bool = False


def has_plan(job_dir: Path) -> bool:
    """Was this job finished (its plan written), though perhaps not all of its moves made?"""
    return (job_dir / PLAN_FILE).exists()


class Finisher:
    """Every move of a finished job out of the work folder, and the jobs a folder refused."""

    def __init__(self, folders: Folders, before_moves: BeforeMoves | None = None,
                 before_plan: BeforePlan | None = None, storage: Storage | None = None) -> None:
        self.folders = folders
        #: A step run before a plan's first move, each time the plan is carried out (hooks/queue.py
        #: records a pending delivery there, so a crash after it cannot lose the delivery).
        self.before_moves = before_moves
        #: A step run before the plan is written, and held with it when refused (hooks/queue.py
        #: writes the job's hook note there: no plan is on disk without it).
        self.before_plan = before_plan
        #: Told of a full or read-only filesystem; holds for it wait for its recovery.
        self.storage = storage
        #: Finished jobs waiting for a folder to take their files: job folder name -> state.
        self._held: dict[str, HeldJob] = {}

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """Move the results (suffix -> staged file) into the outbox, then the source to done/."""
        return self._finish(job, JobState.DONE, outputs, job.sidecars())

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path] | None = None,
             logs: dict[str, Path] | None = None) -> dict[str, Path]:
        """Move the source to failed/ beside `<name>.error.json` (and its log); results kept so
        far (a plain transcript when a later stage failed) go to the outbox."""
        beside = {".error.json": job.dir / "error.json", **job.sidecars(), **(logs or {})}
        return self._finish(job, JobState.FAILED, outputs or {}, beside, report)

    def requeue(self, job: Job) -> Path:
        """Put the source back in the inbox untouched (shutdown, lost GPU) and forget the job.
        The sidecars go first: the audio's arrival in the inbox is what makes it a job again."""
        return self._finish(job, JobState.WAITING, {}, job.sidecars())[str(job.source)]

    def place_beside(self, job: Job, placements: list[tuple[Path, Path]],
                     report: dict[str, Any] | None = None) -> dict[str, Path]:
        """A library job's end (library/source.py): each (file of the job, absolute destination) pair,
        the destinations beside the media or in the state folder. The media is not in the plan:
        it stays where it is, untouched. The same plan, hold and resume as every other end."""
        plan = {"version": PLAN_VERSION, "moves": [
            {"from": _inside(job.dir, src), "to": [str(dst.parent), dst.name]} for src, dst in placements]}
        self._write_plan(job.dir, plan, report)
        return {str(src): dst for src, dst in placements}

    def resume(self, job_dir: Path) -> bool:
        """Carry out the plan on disk; True when done, False when a folder refused (held).

        A plan that cannot be carried out for any other reason (damaged, a name no folder
        takes) is held the same way: retried with a doubling delay and logged each time, never
        spun on, and never an error that ends the consumer (which would meet it again when the
        restarted daemon adopts the job)."""
        try:
            self._carry_out(job_dir)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            self._hold(job_dir, exc, None, None)
            return False
        return True

    def retry_held(self, now: float | None = None) -> None:
        """Try again the moves of finished jobs that a folder refused, those due by `now` (a
        `time.monotonic()` reading; the present by default)."""
        now = time.monotonic() if now is None else now
        for name, held in list(self._held.items()):
            if not durable.reachable(held.job_dir):
                if durable.reachable(held.job_dir.parent):
                    del self._held[name]  # finished by someone else (adopted after our restart)
                continue  # else the share is away: the job waits for it
            if held.due > now or (held.storage and self.storage is not None and self.storage.blocked):
                continue
            if held.plan is not None:
                done = self._write_plan(held.job_dir, held.plan, held.report)
            else:
                done = self.resume(held.job_dir)
            if done:
                self._held.pop(name, None)
                log.info("job.move_resumed", job_id=name)

    def is_held(self, job: Job) -> bool:
        """Did a folder refuse this job's moves (its files wait in the work folder for a retry)?"""
        return job.dir.name in self._held

    @property
    def paused(self) -> bool:
        """Is a folder refusing finished work (so no new file should be claimed)?"""
        return any(held.blocking for held in self._held.values())

    # --- the plan --------------------------------------------------------------------------------

    def _finish(self, job: Job, state: JobState, outputs: dict[str, Path], beside: dict[str, Path],
                report: dict[str, Any] | None = None) -> dict[str, Path]:
        """Plan the moves (results to the outbox; the files `beside` the source, then the source,
        to the folder of `state`), write the plan and carry it out; a refusal holds the job."""
        folder, suffix = SOURCE_FOLDER[state], job.relpath.suffix
        stem = self._free_stem(job, [("outbox", s) for s in outputs]
                               + [(folder, suffix + s) for s in ["", *beside]])
        moves: list[Move] = [(path, "outbox", _target(job, stem, s)) for s, path in outputs.items()]
        moves += [(path, folder, _target(job, stem, suffix + s)) for s, path in beside.items()]
        moves.append((job.source, folder, _target(job, stem, suffix)))
        plan = {"version": PLAN_VERSION, "moves": [
            {"from": _inside(job.dir, path), "to": [root, str(rel)]} for path, root, rel in moves]}
        self._write_plan(job.dir, plan, report)
        return {str(path): self._root(root) / rel for path, root, rel in moves}

    def _write_plan(self, job_dir: Path, plan: dict[str, Any], report: dict[str, Any] | None) -> bool:
        """Write the plan (and the error report it moves), then carry it out; False: held."""
        try:
            if report is not None:
                durable.write_json_atomic(job_dir / "error.json", report)
            if self.before_plan is not None:
                self.before_plan(job_dir)
            durable.write_json_atomic(job_dir / PLAN_FILE, plan)
        except OSError as exc:
            self._hold(job_dir, exc, plan, report)
            return False
        durable.failpoint("planned")
        return self.resume(job_dir)

    def _carry_out(self, job_dir: Path) -> None:
        """Do the moves a plan lists (again, after a crash: each move is idempotent), then tidy up.

        The results go first, and their folders are fsynced before the source moves: a power cut
        can never leave the source in done/ without its results in the outbox.
        """
        moves = read_plan(job_dir, self._root)
        if self.before_moves is not None:
            self.before_moves(job_dir, moves)
        sources = job_dir / "src"
        _move_all([(s, d) for s, d in moves if s.parent != sources])
        _move_all([(s, d) for s, d in moves if s.parent == sources])
        left = [s.name for s, _ in moves if os.path.lexists(s)]
        if left:  # never remove a job folder that still holds a file
            raise OSError(errno.EEXIST, f"could not move {', '.join(left)} out of {job_dir}")
        shutil.rmtree(job_dir, ignore_errors=True)
        durable.fsync_dir(job_dir.parent)
        self._held.pop(job_dir.name, None)

    def _root(self, name: str) -> Path:
        if name.startswith("/"):
            return Path(name)  # a library job's destination folder (place_beside)
        return {"outbox": self.folders.outbox, "done": self.folders.done,
                "failed": self.folders.failed, "inbox": self.folders.inbox}[name]

    def _free_stem(self, job: Job, places: list[tuple[str, str]]) -> str:
        """The file's stem, or stem.2, stem.3...: the first under which no destination exists."""
        base = job.stem
        for n in range(1, 100_000):
            stem = base if n == 1 else f"{base}.{n}"
            if not any(os.path.lexists(self._root(root) / _target(job, stem, suffix))
                       for root, suffix in places):
                return stem
        raise RuntimeError(f"no free name for {job.relpath}")

    # --- jobs a folder refused -------------------------------------------------------------------

    def _hold(self, job_dir: Path, exc: Exception, plan: dict[str, Any] | None,
              report: dict[str, Any] | None) -> None:
        held = self._held.get(job_dir.name)
        blocking = getattr(exc, "errno", None) in FOLDER_ERRORS
        fault = storage_fault(exc, _folder_of(exc, job_dir)) if self.storage is not None else None
        told = held is not None and held.storage and fault is not None  # said once already
        if held is None:
            held = self._held[job_dir.name] = HeldJob(job_dir, plan, report, blocking)
        else:
            held.delay = min(held.delay * 2, RETRY_MAX_SECONDS)
            held.plan, held.report = plan if plan is not None else held.plan, report or held.report
            held.blocking = blocking
        held.storage = fault is not None
        if fault is not None and self.storage is not None:
            self.storage.report(fault)
            held.delay, held.due = 0.0, 0.0  # retried once writes go through (storage.py)
        else:
            held.due = time.monotonic() + held.delay
        if not told:
            log.error("job.move_refused", job_id=job_dir.name, error=str(exc),
                      retry_in_s=None if held.storage else held.delay, claims_paused=held.blocking,
                      action="the files stay in the work folder; the moves are retried" +
                      (" once storage takes writes again" if held.storage else ""))


def read_plan(job_dir: Path, root: Callable[[str], Path]) -> list[tuple[Path, Path]]:
    """The plan's moves as (source, destination) paths, for this job folder where it is now;
    `root` gives a folder root's path by the name the plan records ("outbox", "done"...)."""
    plan = durable.read_json(job_dir / PLAN_FILE)
    if "moves" in plan:
        return [(job_dir / m["from"], root(m["to"][0]) / m["to"][1]) for m in plan["moves"]]
    # Version 1 kept absolute paths, which break once the job folder is adopted: re-anchor them.
    moves = []
    for src, dst in plan.items():
        parts = Path(src).parts
        inside = parts[parts.index(job_dir.name) + 1:] if job_dir.name in parts else parts[-2:]
        moves.append((job_dir.joinpath(*inside), Path(dst)))
    return moves


def free_name_beside(path: Path) -> Path:
    """A free name next to `path`: `x.2.json` for `x.json` (the extension kept, so it opens)."""
    stem, dot, last = path.name.rpartition(".")
    for n in range(2, 100_000):
        # Shortened (fit_name) where the `.2` would pass NAME_MAX.
        name = fit_name(stem, f".{n}.{last}") if dot and stem else fit_name(path.name, f".{n}")
        candidate = path.with_name(name)
        if not os.path.lexists(candidate):
            return candidate
    raise RuntimeError(f"no free name beside {path}")


def fit_name(stem: str, suffix: str) -> str:
    """`stem + suffix`, the stem shortened (with a hash, so names stay distinct) to fit NAME_MAX."""
    name = stem + suffix
    if len(os.fsencode(name)) <= NAME_MAX:
        return name
    tag = "~" + hashlib.sha1(os.fsencode(stem), usedforsecurity=False).hexdigest()[:8]
    while stem and len(os.fsencode(stem + tag + suffix)) > NAME_MAX:
        stem = stem[:-1]
    return stem + tag + suffix


def _folder_of(exc: Exception, job_dir: Path) -> Path:
    """The folder a refused write or move was aimed at (a move's destination), for the probe."""
    if isinstance(exc, OSError) and (exc.filename2 or exc.filename):
        return Path(os.fsdecode(exc.filename2 or exc.filename)).parent
    return job_dir


def _move_all(moves: list[tuple[Path, Path]]) -> None:
    touched: set[Path] = set()
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(src):
            durable.fsync_file(src)
        if not _move_or_copy(src, dst) and os.path.lexists(src):
            # Someone put a file of that name there since we planned: keep both.
            _move_or_copy(src, free_name_beside(dst))
        touched.update((src.parent, dst.parent))
    for directory in touched:
        durable.fsync_dir(directory)


def _move_or_copy(src: Path, dst: Path) -> bool:
    """A move that never overwrites; across filesystems (a library elsewhere than the state
    folder) a copy to a temporary name beside `dst`, then a link (durable.copy_no_clobber)."""
    try:
        return durable.move_no_clobber(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    return durable.copy_no_clobber(src, dst)


def _target(job: Job, stem: str, suffix: str) -> PurePosixPath:
    """Where a file of the job goes, under its folder root: the source's relative folder."""
    return job.relpath.parent / fit_name(stem, suffix)


def _inside(job_dir: Path, path: Path) -> str:
    """`path` relative to the job folder (the plan must survive the folder being adopted)."""
    try:
        return path.relative_to(job_dir).as_posix()
    except ValueError:
        return str(path)
