"""Workers: who holds a claim, whether its process still runs, and the lease that says so.

A worker is named `<host>.<pid>.<start>`: pids get reused, so the process's start time (clock
ticks since boot) is part of the name. Each worker keeps a lease, `worker.json` in its work
folder, fresh. Another worker is gone when its process has ended (same machine: same boot and
pid namespace, so its pid means something here), or else (another machine, or one whose pids we
cannot check) when its lease has not changed for `lease_seconds` of our own clock, so clocks
need not agree. The status file's reader asks the same "is that process running" question.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import durable
from ..logs import get_logger

#: The lease file in a worker's folder.
LEASE_FILE = "worker.json"

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
        """The worker a folder or file is named after; None for a name that is not a worker's."""
        host, _, rest = name.rpartition(".")
        host, _, pid = host.rpartition(".")
        if not (host and pid.isdigit() and rest.isdigit()):
            return None
        return cls(host, int(pid), int(rest))

    @classmethod
    def of_this_process(cls) -> WorkerId:
        return cls(socket.gethostname(), os.getpid(), process_start_time(os.getpid()) or 0)


def timestamp() -> str:
    """Now, as the leases and job records write it (ISO 8601, UTC, milliseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --- is a process running? -------------------------------------------------------------------------

def pid_namespace() -> str | None:
    """This process's pid namespace ("pid:[4026531836]"): pids mean something only within one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def machine_identity() -> dict[str, str]:
    """What makes two processes' pids comparable: the same boot and the same pid namespace."""
    identity = {}
    with contextlib.suppress(OSError):
        identity["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    namespace = pid_namespace()
    if namespace is not None:
        identity["pid_namespace"] = namespace
    return identity


def process_start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if there is no such process;
    0 when it exists but its start time cannot be read (no /proc)."""
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


def is_running(worker: WorkerId) -> bool | None:
    """Is the worker's process (on this machine) still running? None: we cannot tell, because
    /proc hides it (hidepid) though it exists, or one of the start times is unknown."""
    started = process_start_time(worker.pid)
    if started is None:
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return None  # /proc hides it but it exists: ask its lease
        return None
    if started == 0 or worker.started == 0:
        return None
    return started == worker.started


# --- leases ----------------------------------------------------------------------------------------

def read_lease(worker_dir: Path) -> dict[str, Any] | None:
    """The lease in a worker's folder; None when there is none or it cannot be read."""
    try:
        lease = durable.read_json(worker_dir / LEASE_FILE)
    except (OSError, ValueError):
        return None
    return lease if isinstance(lease, dict) else None


class Lease:
    """This worker's own lease: renewed by a heartbeat thread, removed on a clean stop."""

    def __init__(self, folder: Path, worker: WorkerId, machine: dict[str, str]) -> None:
        self.folder = folder
        self.worker = worker
        self.machine = machine
        self._lock = threading.Lock()
        self._beats = 0
        self._retired = False

    def renew(self) -> None:
        """Tell other daemons this worker is alive."""
        with self._lock:
            if not self._retired:
                self._write()

    def retire(self) -> None:
        """Remove the lease and the folder, unless jobs wait in it: those stay (with their
        attempt counts) for the next daemon to adopt, and the lease with them."""
        with self._lock:
            self._retired = True  # a late heartbeat must not bring the lease back
            try:
                (self.folder / LEASE_FILE).unlink(missing_ok=True)
            except OSError as exc:  # the share is away: the lease expires by itself
                log.warning("spool.retire_failed", error=str(exc),
                            reason="the lease could not be removed; other daemons see it expire")
                return
            try:
                self.folder.rmdir()
            except OSError:
                with contextlib.suppress(OSError):
                    self._write()  # jobs left: keep the lease so the folder is recognised

    def _write(self) -> None:
        self._beats += 1
        # Our folder may have been removed by a daemon that took us for gone: make it again, but
        # never its parents, which would be a local copy of the share's tree under a bare mount point.
        self.folder.mkdir(exist_ok=True)
        durable.write_json_atomic(self.folder / LEASE_FILE, {
            "host": self.worker.host, "pid": self.worker.pid, "started": self.worker.started,
            **self.machine, "beat": self._beats, "renewed_at": timestamp(),
        })


def forget_worker(worker_dir: Path) -> None:
    """Remove a gone worker's lease and folder, if nothing else is in it. Never rmtree: a worker
    wrongly taken for gone (a lease lost on a hung share) may have just claimed a file there."""
    for name in os.listdir(worker_dir) if worker_dir.is_dir() else []:
        if name == LEASE_FILE or (name.startswith(f".{LEASE_FILE}.") and name.endswith(".tmp")):
            (worker_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        worker_dir.rmdir()


class Liveness:
    """Judges whether other workers are gone: by their process where its pid can be checked
    here, else by their lease standing still for `lease_seconds` of our own clock."""

    def __init__(self, me: WorkerId, machine: dict[str, str], lease_seconds: float) -> None:
        self.me = me
        self.machine = machine
        self.lease_seconds = lease_seconds
        #: Other workers' leases as we last saw them: name -> (lease content, when it changed).
        self._leases_seen: dict[str, tuple[Any, float]] = {}

    def forget_seen(self) -> None:
        """Start every lease's clock again: after a spell when storage took no writes, no worker
        could renew its lease, and none of them is gone for that."""
        self._leases_seen.clear()

    def gone_because(self, worker_dir: Path) -> str | None:
        """Why the worker of `worker_dir` is gone, or None while it may be alive."""
        owner = WorkerId.parse(worker_dir.name)
        if owner is None:
            return None  # not a worker folder of ours: leave it alone
        lease = read_lease(worker_dir)
        if self._on_this_machine(owner, lease):
            running = is_running(owner)
            if running is False:
                return f"process {owner.pid} (started at tick {owner.started}) has ended"
            if running is True:
                return None
        if self._lease_expired(worker_dir, lease):
            return f"its lease has not been renewed for {self.lease_seconds:g} s"
        return None

    def _on_this_machine(self, owner: WorkerId, lease: dict[str, Any] | None) -> bool:
        """Same host name, and (as far as its lease says) the same boot and pid namespace."""
        return owner.host == self.me.host and all(
            lease is None or lease.get(key) in (None, value) for key, value in self.machine.items())

    def _lease_expired(self, worker_dir: Path, lease: dict[str, Any] | None) -> bool:
        """Has the lease stayed the same for `lease_seconds` of our clock? (Its content is read,
        not its mtime: opening a file revalidates it on NFS, a stat may answer from a cache.)"""
        if lease is not None:
            seen_as: Any = (lease.get("beat"), lease.get("renewed_at"))
        else:
            try:
                seen_as = worker_dir.stat().st_mtime_ns
            except FileNotFoundError:
                return False
        now = time.monotonic()
        seen = self._leases_seen.get(worker_dir.name)
        if seen is None or seen[0] != seen_as:
            self._leases_seen[worker_dir.name] = (seen_as, now)
            return False
        return now - seen[1] >= self.lease_seconds
