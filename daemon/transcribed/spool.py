"""The spool: a job's state is the folder its file is in.

```
inbox/<rel>                          waiting      users copy files here
state/work/<worker>/<job>/src/<name> running      claimed by one atomic rename (exactly once)
outbox/<rel-stem>.{json,txt,...}     done         results, moved in without overwriting
done/<rel>                           done         the source, once its results are in the outbox
failed/<rel> + <rel>.error.json      failed       bad input, or a poison file
```

A claim is `os.rename` out of the inbox into this worker's own folder, so among any number of
daemons on one inbox exactly one wins. Finishing a job is a recorded plan of moves (`plan.json`)
carried out with `move_no_clobber`; a crash anywhere is finished or redone by whoever adopts the
job next. Workers are named `<host>.<pid>.<start>` and keep a lease file fresh; a worker adopts
another's jobs only when that worker is gone (same host: its process is dead; another host: its
lease has not changed for `lease_seconds` of our own clock, so clocks need not agree).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from . import durable
from .config import Config
from .errors import ConfigError
from .logs import get_logger

#: Names a copying program gives a file it has not finished (ignored until renamed).
TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart",
                      ".swp", "~")

log = get_logger()


@dataclass(frozen=True)
class WorkerId:
    """Who holds a claim: host, process id and the process's start time (pids get reused)."""

    host: str
    pid: int
    started: int

    @property
    def name(self) -> str:
        return f"{self.host}.{self.pid}.{self.started}"

    @classmethod
    def parse(cls, name: str) -> WorkerId | None:
        host, _, rest = name.rpartition(".")
        host, _, pid = host.rpartition(".")
        if not (host and pid.isdigit() and rest.isdigit()):
            return None
        return cls(host, int(pid), int(rest))

    @classmethod
    def of_this_process(cls) -> WorkerId:
        return cls(socket.gethostname(), os.getpid(), process_start_time(os.getpid()) or 0)


@dataclass
class Job:
    """A file being transcribed: its folder in the work area, and what we know about it."""

    id: str
    relpath: PurePosixPath
    dir: Path
    attempts: int = 0
    claimed_at: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source(self) -> Path:
        return self.dir / "src" / self.relpath.name

    @property
    def staging(self) -> Path:
        """Where results are written before they move to the outbox."""
        return self.dir / "out"

    @property
    def log_path(self) -> Path:
        return self.dir / "log.jsonl"

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "relpath": str(self.relpath), "attempts": self.attempts,
                "claimed_at": self.claimed_at, "history": self.history}


class Spool:
    """The folders, and every move of a file between them."""

    def __init__(self, config: Config, worker: WorkerId | None = None) -> None:
        self.folders = config.folders
        self.extensions = frozenset(config.watch.extensions)
        self.max_attempts = config.jobs.max_attempts
        self.lease_seconds = config.daemon.lease_seconds
        self.worker = worker or WorkerId.of_this_process()
        self.work = self.folders.state / "work"
        self.mine = self.work / self.worker.name
        #: Other hosts' leases as we last saw them: name -> (lease mtime, when we saw it change).
        self._leases_seen: dict[str, tuple[int, float]] = {}

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
        lease = self.mine / "worker.json"
        durable.write_json_atomic(lease, {
            "host": self.worker.host, "pid": self.worker.pid, "started": self.worker.started,
            "renewed_at": _now(),
        })

    def retire(self) -> None:
        """On a clean stop, remove this worker's lease and folder, unless jobs wait in it: those
        stay (with their attempt counts) for the next daemon to adopt."""
        (self.mine / "worker.json").unlink(missing_ok=True)
        try:
            self.mine.rmdir()
        except OSError:
            self.renew_lease()  # jobs left: keep the lease so the folder is recognised as ours

    # --- the inbox -------------------------------------------------------------------------------

    def scan(self) -> list[Path]:
        """Every file in the inbox that looks like audio or video and is not a temporary name."""
        found = []
        for root, dirs, files in os.walk(self.folders.inbox):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(root, name) for name in sorted(files) if self.wants(name))
        return found

    def wants(self, name: str) -> bool:
        """Is this a file name the daemon takes (once it is complete)?"""
        if name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES):
            return False
        return name.rpartition(".")[2].lower() in self.extensions and "." in name

    def relative(self, path: Path) -> PurePosixPath:
        """A path in the inbox, relative to it (kept in outbox/, done/ and failed/)."""
        return PurePosixPath(path.relative_to(self.folders.inbox).as_posix())

    def claim(self, path: Path) -> Job | None:
        """Take `path` out of the inbox for this worker; None if another worker (or a user) was faster."""
        job_id = _new_job_id()
        job = Job(id=job_id, relpath=self.relative(path), dir=self.mine / job_id, claimed_at=_now())
        job.source.parent.mkdir(parents=True)
        self.save(job)
        try:
            os.rename(path, job.source)  # rename, not copy: the claim must be atomic
        except FileNotFoundError:
            shutil.rmtree(job.dir, ignore_errors=True)
            return None
        except OSError as exc:
            shutil.rmtree(job.dir, ignore_errors=True)
            log.error("job.claim_failed", file=str(job.relpath), error=str(exc))
            return None
        durable.fsync_dir(path.parent)
        durable.fsync_dir(job.source.parent)
        return job

    # --- running jobs ----------------------------------------------------------------------------

    def save(self, job: Job) -> None:
        durable.write_json_atomic(job.dir / "job.json", job.record())

    def start_attempt(self, job: Job) -> None:
        """Count a run of this job before it starts, so a crash during it is counted too."""
        job.attempts += 1
        job.history.append({"attempt": job.attempts, "worker": self.worker.name, "started_at": _now()})
        shutil.rmtree(job.staging, ignore_errors=True)
        job.staging.mkdir()
        self.save(job)

    def note_error(self, job: Job, error: str) -> None:
        """Remember why an attempt failed (shown in the final error report)."""
        if job.history:
            job.history[-1]["error"] = error
        self.save(job)

    def exhausted(self, job: Job) -> bool:
        """Has this job been tried as often as it may be?"""
        return job.attempts >= self.max_attempts

    def my_jobs(self) -> list[Job]:
        """Jobs in this worker's folder (retries, adoptions), oldest first."""
        jobs = []
        for job_dir in sorted(p for p in self.mine.iterdir() if p.is_dir()):
            job = self.load(job_dir)
            if job is not None:
                jobs.append(job)
        return jobs

    def load(self, job_dir: Path) -> Job | None:
        """Read a job back from its folder; a half-made or half-finished one is tidied up."""
        try:
            record = durable.read_json(job_dir / "job.json")
        except (OSError, ValueError):
            record = None
        if (job_dir / "plan.json").exists():
            self._carry_out(job_dir)
            return None
        if record is None or not (job_dir / "src").is_dir() or not any((job_dir / "src").iterdir()):
            shutil.rmtree(job_dir, ignore_errors=True)  # claimed nothing: a crash mid-claim
            return None
        return Job(id=record["id"], relpath=PurePosixPath(record["relpath"]), dir=job_dir,
                   attempts=record.get("attempts", 0), claimed_at=record.get("claimed_at", ""),
                   history=record.get("history", []))

    # --- finishing -------------------------------------------------------------------------------

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """Move the results (suffix -> staged file) into the outbox, then the source to done/."""
        suffix = job.relpath.suffix
        stem = self._free_stem(job, [(self.folders.outbox, s) for s in outputs]
                               + [(self.folders.done, suffix)])
        moves = {str(path): self._target(self.folders.outbox, job, stem, s) for s, path in outputs.items()}
        moves[str(job.source)] = self._target(self.folders.done, job, stem, suffix)
        return self._finish(job, moves)

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path] | None = None,
             logs: dict[str, Path] | None = None) -> dict[str, Path]:
        """Move the source to failed/ beside `<name>.error.json` (and its log); results kept so
        far (a plain transcript when a later stage failed) go to the outbox."""
        outputs, logs = outputs or {}, logs or {}
        suffix = job.relpath.suffix
        beside_source = [".error.json", *logs]
        stem = self._free_stem(job, [(self.folders.outbox, s) for s in outputs]
                               + [(self.folders.failed, suffix + s) for s in ["", *beside_source]])
        report_path = job.dir / "error.json"
        durable.write_json_atomic(report_path, report)
        moves = {str(path): self._target(self.folders.outbox, job, stem, s) for s, path in outputs.items()}
        for s, path in [(".error.json", report_path), *logs.items()]:
            moves[str(path)] = self._target(self.folders.failed, job, stem, suffix + s)
        moves[str(job.source)] = self._target(self.folders.failed, job, stem, suffix)
        return self._finish(job, moves)

    def requeue(self, job: Job) -> Path:
        """Put the source back in the inbox untouched (shutdown, lost GPU) and forget the job."""
        target = self.folders.inbox / job.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        stem = self._free_stem(job, [(self.folders.inbox, job.relpath.suffix)])
        moves = {str(job.source): self._target(self.folders.inbox, job, stem, job.relpath.suffix)}
        return self._finish(job, moves)[str(job.source)]

    def _finish(self, job: Job, moves: dict[str, Path]) -> dict[str, Path]:
        durable.write_json_atomic(job.dir / "plan.json", {k: str(v) for k, v in moves.items()})
        self._carry_out(job.dir)
        return moves

    def _carry_out(self, job_dir: Path) -> None:
        """Do the moves a plan lists (again, after a crash: each move is idempotent), then tidy up."""
        plan = durable.read_json(job_dir / "plan.json")
        touched = set()
        for src, dst in plan.items():
            src_path, dst_path = Path(src), Path(dst)
            dst_path.parent.mkdir(parents=True, exist_ok=True)
            if src_path.exists():
                durable.fsync_file(src_path)
            if not durable.move_no_clobber(src_path, dst_path) and src_path.exists():
                # Someone put a file of that name there since we planned: keep both.
                durable.move_no_clobber(src_path, _beside(dst_path))
            touched.add(dst_path.parent)
        for directory in touched:
            durable.fsync_dir(directory)
        shutil.rmtree(job_dir, ignore_errors=True)
        durable.fsync_dir(job_dir.parent)

    def _target(self, root: Path, job: Job, stem: str, suffix: str) -> Path:
        return root / job.relpath.parent / f"{stem}{suffix}"

    def _free_stem(self, job: Job, places: list[tuple[Path, str]]) -> str:
        """The file's stem, or stem.2, stem.3...: the first under which no destination exists."""
        base = _stem_of(job)
        for n in range(1, 100_000):
            stem = base if n == 1 else f"{base}.{n}"
            if not any((root / job.relpath.parent / f"{stem}{suffix}").exists() for root, suffix in places):
                return stem
        raise RuntimeError(f"no free name for {job.relpath}")

    # --- taking back jobs of workers that are gone -----------------------------------------------

    def adopt_orphans(self) -> list[Job]:
        """Move the jobs of dead workers into this worker's folder; returns those still to run."""
        adopted = []
        if not self.work.is_dir():
            return adopted
        for worker_dir in sorted(self.work.iterdir()):
            if worker_dir == self.mine or not worker_dir.is_dir() or not self._is_gone(worker_dir):
                continue
            log.warning("spool.worker_gone", worker=worker_dir.name)
            for job_dir in sorted(p for p in worker_dir.iterdir() if p.is_dir()):
                try:
                    os.rename(job_dir, self.mine / job_dir.name)  # exactly one adopter wins
                except OSError:
                    continue
                job = self.load(self.mine / job_dir.name)
                if job is not None:
                    log.warning("job.adopted", job_id=job.id, file=str(job.relpath),
                                attempts=job.attempts, previous_worker=worker_dir.name)
                    adopted.append(job)
            shutil.rmtree(worker_dir, ignore_errors=True)
        return adopted

    def _is_gone(self, worker_dir: Path) -> bool:
        owner = WorkerId.parse(worker_dir.name)
        if owner is None:
            return False  # not a worker folder of ours: leave it alone
        if owner.host == self.worker.host:
            return process_start_time(owner.pid) != owner.started
        return self._lease_expired(worker_dir)

    def _lease_expired(self, worker_dir: Path) -> bool:
        lease = worker_dir / "worker.json"
        try:
            mtime = (lease if lease.exists() else worker_dir).stat().st_mtime_ns
        except FileNotFoundError:
            return False
        now = time.monotonic()
        seen = self._leases_seen.get(worker_dir.name)
        if seen is None or seen[0] != mtime:
            self._leases_seen[worker_dir.name] = (mtime, now)
            return False
        return now - seen[1] >= self.lease_seconds


def process_start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _start_time_without_proc(pid)
    return int(stat.rpartition(")")[2].split()[19])


def _start_time_without_proc(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


def _stem_of(job: Job) -> str:
    name = job.relpath.name
    return name[: -len(job.relpath.suffix)] if job.relpath.suffix else name


def _beside(path: Path) -> Path:
    for n in range(2, 100_000):
        candidate = path.with_name(f"{path.name}.{n}")
        if not candidate.exists():
            return candidate
    raise RuntimeError(f"no free name beside {path}")


def _new_job_id() -> str:
    """Sortable by claim time, unique across workers."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
