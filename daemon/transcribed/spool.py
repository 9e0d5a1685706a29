"""The spool: a job's state is the folder its file is in.

```
inbox/<rel>                          waiting      users copy files here
state/work/<worker>/<job>/src/<name> running      claimed by one atomic rename (exactly once)
outbox/<rel-stem>.{json,txt,...}     done         results, moved in without overwriting
done/<rel>                           done         the source, once its results are in the outbox
failed/<rel> + <rel>.error.json      failed       bad input, or a poison file
```

A claim is `os.rename` out of the inbox into this worker's own folder, so among any number of
daemons on one inbox exactly one wins. Finishing a job is a recorded plan of moves (`plan.json`,
paths relative to the job and to the folder roots, so it still holds after the job folder is
adopted by another worker, or on a host that mounts the share elsewhere) carried out with
`move_no_clobber`; a crash anywhere is finished or redone by whoever adopts the job next. The
results move first and are fsynced (file and folder) before the source leaves the work folder.

Workers are named `<host>.<pid>.<start>` and keep a lease file fresh; a worker adopts another's
jobs only when that worker is gone (same machine: its process is dead; another machine, or one
whose pids we cannot check: its lease has not changed for `lease_seconds` of our own clock, so
clocks need not agree). A folder that refuses a move (full, read-only) never costs a file: the
finished job waits in the work folder, the move is retried with a doubling delay, and no new
file is claimed while a folder refuses.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import durable
from .config import Config
from .errors import ConfigError
from .inbox import Inbox
from .jobs import Claims, Job, read_job
from .logs import get_logger
from .workers import Lease, Liveness, WorkerId, forget_worker, machine_identity

#: Longest file name (bytes) of Linux filesystems and SMB; longer result names are shortened.
NAME_MAX = 255
#: A move that failed is retried after this many seconds, doubling up to the maximum.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
#: Errors that say a folder (not the file) is the problem: new claims wait until it is fixed.
FOLDER_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                           errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.ETIMEDOUT})
PLAN_VERSION = 2

log = get_logger()


@dataclass
class _Held:
    """A finished job whose moves a folder refused: retried later, its files stay in the job."""

    job_dir: Path
    #: The plan, while it is not yet on disk (writing it was refused too); else None.
    plan: dict[str, Any] | None
    report: dict[str, Any] | None
    error: str
    blocking: bool
    delay: float = RETRY_FIRST_SECONDS
    due: float = 0.0


class Spool:
    """The folders, and every move of a file between them."""

    def __init__(self, config: Config, worker: WorkerId | None = None) -> None:
        self.folders = config.folders
        self._inbox = Inbox(self.folders.inbox, config.watch.extensions)
        self.worker = worker or WorkerId.of_this_process()
        self.work = self.folders.state / "work"
        self.mine = self.work / self.worker.name
        self.machine = machine_identity()
        self._lease = Lease(self.mine, self.worker, self.machine)
        self._claims = Claims(self.mine, self.worker, config.jobs.max_attempts)
        self._liveness = Liveness(self.worker, self.machine, config.daemon.lease_seconds)
        #: Finished jobs waiting for a folder to take their files: job folder name -> state.
        self._held: dict[str, _Held] = {}

    # --- set-up ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the folders, refuse folders on different filesystems, and register this worker."""
        for path in (self.folders.inbox, self.folders.outbox, self.folders.done,
                     self.folders.failed, self.folders.state):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"folders: cannot create {path}: {exc.strerror}") from None
        self._refuse_split_filesystems()
        self.mine.mkdir(parents=True, exist_ok=True)
        self.renew_lease()

    def _refuse_split_filesystems(self) -> None:
        devices = {name: os.stat(getattr(self.folders, name)).st_dev
                   for name in ("inbox", "outbox", "done", "failed", "state")}
        if len(set(devices.values())) > 1:
            other = next(n for n, d in devices.items() if d != devices["inbox"])
            raise ConfigError(
                f"folders.{other}: is on a different filesystem from folders.inbox; all folders "
                "must share one filesystem, because moves between them must be atomic renames")

    def renew_lease(self) -> None:
        """Tell other daemons this worker is alive (called by a heartbeat thread)."""
        self._lease.renew()

    def retire(self) -> None:
        """On a clean stop, remove this worker's lease and folder, unless jobs wait in it: those
        stay (with their attempt counts) for the next daemon to adopt."""
        self._lease.retire()

    # --- the inbox -------------------------------------------------------------------------------

    def scan(self) -> list[Path]:
        """Every file in the inbox that looks like audio or video and is not a temporary name."""
        return self._inbox.scan()

    def stray_sidecars(self, older_than: float) -> list[Path]:
        """Sidecars in the inbox, untouched for `older_than` seconds, whose audio is not there."""
        return self._inbox.stray_sidecars(older_than)

    def wants(self, name: str) -> bool:
        """Is this a file name the daemon takes (once it is complete)?"""
        return self._inbox.wants(name)

    def relative(self, path: Path) -> PurePosixPath:
        """A path in the inbox, relative to it (kept in outbox/, done/ and failed/)."""
        return self._inbox.relative(path)

    def claim(self, path: Path) -> Job | None:
        """Take `path` out of the inbox for this worker; None if another worker (or a user) was
        faster, or while a folder refuses to take finished work."""
        self.retry_held()
        if self.paused:
            return None
        return self._claims.claim(path, self.relative(path))

    # --- running jobs ----------------------------------------------------------------------------

    def save(self, job: Job) -> None:
        """Write the job's record; a full or read-only disk is logged, and the job goes on."""
        self._claims.save(job)

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too."""
        self._claims.start_attempt(job)

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""
        self._claims.note_error(job, error)

    def exhausted(self, job: Job) -> bool:
        """Has this job been tried as often as it may be?"""
        return self._claims.exhausted(job)

    def load(self, job_dir: Path) -> Job | None:
        """Read a job back from its folder; a half-made claim is removed and a half-finished one
        is finished (None for both)."""
        if (job_dir / "plan.json").exists():
            self._resume(job_dir)
            return None
        return read_job(job_dir)

    # --- finishing -------------------------------------------------------------------------------

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """Move the results (suffix -> staged file) into the outbox, then the source to done/."""
        suffix = job.relpath.suffix
        sidecars = job.sidecars()
        stem = self._free_stem(job, [("outbox", s) for s in outputs] + [("done", suffix)]
                               + [("done", suffix + s) for s in sidecars])
        moves = [(path, "outbox", self._relative_target(job, stem, s)) for s, path in outputs.items()]
        moves += [(path, "done", self._relative_target(job, stem, suffix + s)) for s, path in sidecars.items()]
        moves.append((job.source, "done", self._relative_target(job, stem, suffix)))
        return self._finish(job, moves)

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path] | None = None,
             logs: dict[str, Path] | None = None) -> dict[str, Path]:
        """Move the source to failed/ beside `<name>.error.json` (and its log); results kept so
        far (a plain transcript when a later stage failed) go to the outbox."""
        outputs, logs = outputs or {}, {**job.sidecars(), **(logs or {})}
        suffix = job.relpath.suffix
        beside_source = [".error.json", *logs]
        stem = self._free_stem(job, [("outbox", s) for s in outputs]
                               + [("failed", suffix + s) for s in ["", *beside_source]])
        moves = [(path, "outbox", self._relative_target(job, stem, s)) for s, path in outputs.items()]
        for s, path in [(".error.json", job.dir / "error.json"), *logs.items()]:
            moves.append((path, "failed", self._relative_target(job, stem, suffix + s)))
        moves.append((job.source, "failed", self._relative_target(job, stem, suffix)))
        return self._finish(job, moves, report)

    def requeue(self, job: Job) -> Path:
        """Put the source back in the inbox untouched (shutdown, lost GPU) and forget the job."""
        suffix = job.relpath.suffix
        sidecars = job.sidecars()
        stem = self._free_stem(job, [("inbox", suffix)] + [("inbox", suffix + s) for s in sidecars])
        # The sidecars first: the audio's arrival in the inbox is what makes it a job again.
        moves = [(path, "inbox", self._relative_target(job, stem, suffix + s)) for s, path in sidecars.items()]
        moves.append((job.source, "inbox", self._relative_target(job, stem, suffix)))
        return self._finish(job, moves)[str(job.source)]

    def _finish(self, job: Job, moves: list[tuple[Path, str, PurePosixPath]],
                report: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write the plan, then carry it out; a folder that refuses holds the job for a retry."""
        plan = {"version": PLAN_VERSION, "moves": [
            {"from": _inside(job.dir, path), "to": [root, str(rel)]} for path, root, rel in moves]}
        self._write_plan(job.dir, plan, report)
        return {str(path): self._root(root) / rel for path, root, rel in moves}

    def _write_plan(self, job_dir: Path, plan: dict[str, Any], report: dict[str, Any] | None) -> bool:
        """Write the plan (and the error report it moves), then carry it out; False: held."""
        try:
            if report is not None:
                durable.write_json_atomic(job_dir / "error.json", report)
            durable.write_json_atomic(job_dir / "plan.json", plan)
        except OSError as exc:
            self._hold(job_dir, exc, plan, report)
            return False
        durable.failpoint("planned")
        return self._resume(job_dir)

    def _resume(self, job_dir: Path) -> bool:
        """Carry out the plan on disk; True when done, False when a folder refused (held)."""
        try:
            self._carry_out(job_dir)
        except OSError as exc:
            self._hold(job_dir, exc, None, None)
            return False
        return True

    def _carry_out(self, job_dir: Path) -> None:
        """Do the moves a plan lists (again, after a crash: each move is idempotent), then tidy up.

        The results go first, and their folders are fsynced before the source moves: a power cut
        can never leave the source in done/ without its results in the outbox.
        """
        moves = self._read_plan(job_dir)
        sources = job_dir / "src"
        self._move_all([(s, d) for s, d in moves if s.parent != sources])
        self._move_all([(s, d) for s, d in moves if s.parent == sources])
        left = [s.name for s, _ in moves if os.path.lexists(s)]
        if left:  # never remove a job folder that still holds a file
            raise OSError(errno.EEXIST, f"could not move {', '.join(left)} out of {job_dir}")
        shutil.rmtree(job_dir, ignore_errors=True)
        durable.fsync_dir(job_dir.parent)
        self._held.pop(job_dir.name, None)

    def _read_plan(self, job_dir: Path) -> list[tuple[Path, Path]]:
        """The plan's moves as (source, destination) paths, for this job folder where it is now."""
        plan = durable.read_json(job_dir / "plan.json")
        if "moves" in plan:
            return [(job_dir / m["from"], self._root(m["to"][0]) / m["to"][1]) for m in plan["moves"]]
        # Version 1 kept absolute paths, which break once the job folder is adopted: re-anchor them.
        moves = []
        for src, dst in plan.items():
            parts = Path(src).parts
            inside = parts[parts.index(job_dir.name) + 1:] if job_dir.name in parts else parts[-2:]
            moves.append((job_dir.joinpath(*inside), Path(dst)))
        return moves

    def _move_all(self, moves: list[tuple[Path, Path]]) -> None:
        touched: set[Path] = set()
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(src):
                durable.fsync_file(src)
            if not durable.move_no_clobber(src, dst) and os.path.lexists(src):
                # Someone put a file of that name there since we planned: keep both.
                durable.move_no_clobber(src, _beside(dst))
            touched.update((src.parent, dst.parent))
        for directory in touched:
            durable.fsync_dir(directory)

    def _root(self, name: str) -> Path:
        return {"outbox": self.folders.outbox, "done": self.folders.done,
                "failed": self.folders.failed, "inbox": self.folders.inbox}[name]

    def _relative_target(self, job: Job, stem: str, suffix: str) -> PurePosixPath:
        return job.relpath.parent / _fit_name(stem, suffix)

    def _free_stem(self, job: Job, places: list[tuple[str, str]]) -> str:
        """The file's stem, or stem.2, stem.3...: the first under which no destination exists."""
        base = job.stem
        for n in range(1, 100_000):
            stem = base if n == 1 else f"{base}.{n}"
            if not any(os.path.lexists(self._root(root) / self._relative_target(job, stem, suffix))
                       for root, suffix in places):
                return stem
        raise RuntimeError(f"no free name for {job.relpath}")

    # --- jobs a folder refused -------------------------------------------------------------------

    def _hold(self, job_dir: Path, exc: OSError, plan: dict[str, Any] | None,
              report: dict[str, Any] | None) -> None:
        held = self._held.get(job_dir.name)
        if held is None:
            held = self._held[job_dir.name] = _Held(job_dir, plan, report, str(exc),
                                                    exc.errno in FOLDER_ERRORS)
        else:
            held.delay = min(held.delay * 2, RETRY_MAX_SECONDS)
            held.plan, held.report = plan if plan is not None else held.plan, report or held.report
            held.error, held.blocking = str(exc), exc.errno in FOLDER_ERRORS
        held.due = time.monotonic() + held.delay
        log.error("job.move_refused", job_id=job_dir.name, error=str(exc), retry_in_s=held.delay,
                  claims_paused=held.blocking,
                  action="the files stay in the work folder; the moves are retried")

    def retry_held(self) -> None:
        """Try again the moves of finished jobs that a folder refused, those that are due."""
        now = time.monotonic()
        for name, held in list(self._held.items()):
            if not held.job_dir.is_dir():
                del self._held[name]  # finished by someone else (adopted after our restart)
                continue
            if held.due > now:
                continue
            if held.plan is not None:
                done = self._write_plan(held.job_dir, held.plan, held.report)
            else:
                done = self._resume(held.job_dir)
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

    # --- taking back jobs of workers that are gone -----------------------------------------------

    def adopt_orphans(self) -> list[Job]:
        """Move the jobs of dead workers into this worker's folder; returns those still to run."""
        self.retry_held()
        adopted: list[Job] = []
        if not self.work.is_dir():
            return adopted
        for worker_dir in sorted(self.work.iterdir()):
            if worker_dir == self.mine or not worker_dir.is_dir():
                continue
            reason = self._liveness.gone_because(worker_dir)
            if reason is None:
                continue
            log.warning("spool.worker_gone", worker=worker_dir.name, reason=reason)
            for job_dir in sorted(p for p in worker_dir.iterdir() if p.is_dir()):
                try:
                    os.rename(job_dir, self.mine / job_dir.name)  # exactly one adopter wins
                except OSError:
                    continue
                durable.fsync_dir(worker_dir)
                durable.fsync_dir(self.mine)
                job = self.load(self.mine / job_dir.name)
                if job is not None:
                    log.warning("job.adopted", job_id=job.id, file=str(job.relpath),
                                attempts=job.attempts, previous_worker=worker_dir.name)
                    adopted.append(job)
            forget_worker(worker_dir)
        return adopted



def _inside(job_dir: Path, path: Path) -> str:
    """`path` relative to the job folder (the plan must survive the folder being adopted)."""
    try:
        return path.relative_to(job_dir).as_posix()
    except ValueError:
        return str(path)


def _fit_name(stem: str, suffix: str) -> str:
    """`stem + suffix`, the stem shortened (with a hash, so names stay distinct) to fit NAME_MAX."""
    name = stem + suffix
    if len(os.fsencode(name)) <= NAME_MAX:
        return name
    tag = "~" + hashlib.sha1(os.fsencode(stem)).hexdigest()[:8]
    while stem and len(os.fsencode(stem + tag + suffix)) > NAME_MAX:
        stem = stem[:-1]
    return stem + tag + suffix


def _beside(path: Path) -> Path:
    """A free name next to `path`: `x.2.json` for `x.json` (the extension kept, so it opens)."""
    stem, dot, last = path.name.rpartition(".")
    for n in range(2, 100_000):
        name = f"{stem}.{n}.{last}" if dot and stem else f"{path.name}.{n}"
        candidate = path.with_name(name)
        if not os.path.lexists(candidate):
            return candidate
    raise RuntimeError(f"no free name beside {path}")
