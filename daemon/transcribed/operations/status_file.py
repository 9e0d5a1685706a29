"""The status file: what each daemon is doing, as JSON in the state folder, for hosts without Prometheus.

Several daemons may share one state folder (transcribed@ instances on one host, Kubernetes
replicas on many), so each writes its own `state/status/<worker>.json`, named like its work
folder (`<host>.<pid>.<start>`). The consumer's heartbeat rewrites it (atomically, at most every
few seconds), so its `heartbeat_at` is the consumer's own sign of life; a clean stop removes it.

`transcribed status` prints every file; `--check` (Docker's HEALTHCHECK) judges only the daemons
running on this machine: same host name and same pid namespace, so that "is its process still
alive" has an answer. Another machine's file can only be read, not checked.

A daemon waiting for storage is healthy, and says why it takes no file ("degraded"). A full
disk refuses a new file, so each status file is written padded to STATUS_FILE_BYTES and, when
the atomic replace is refused, written over in place (the same blocks: a full tmpfs, ext4 or
xfs takes that). A read-only filesystem takes nothing: a stale file of a running daemon there is
read as waiting for storage, not as a stuck consumer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import STORAGE_ERRNOS
from ..spool.storage import look
from ..spool.workers import WorkerId, is_running, pid_namespace
from .progress import describe_eta
from .status_line import describe, until_words

#: The status files' folder, under `folders.state`.
STATUS_FOLDER = "status"
#: A status file of a daemon on another machine is removed at start-up when it is this old: its
#: daemon died without cleaning up (kill -9, a lost node). This machine's dead ones go at once.
FORGET_AFTER_SECONDS = 24 * 3600.0
#: States of a daemon fit to work: running, or idle with its models unloaded (or loading them
#: again for the next file), which `model.idle_unload_seconds` asks for.
WORKING_STATES = ("running", "unloaded", "reloading")
#: Every status file is padded with spaces (JSON allows them) to this many bytes, so that it can
#: be written over in place on a full disk.
STATUS_FILE_BYTES = 16 * 1024


def status_dir(state: Path) -> Path:
    return state / STATUS_FOLDER


class StatusFile:
    """This daemon's status file; thread-safe, and silent once removed (a late heartbeat cannot
    bring it back)."""

    def __init__(self, state: Path, worker: WorkerId, **facts: Any) -> None:
        self.dir = status_dir(state)
        self.path = self.dir / f"{worker.name}.json"
        self.identity = {"worker": worker.name, "host": worker.host, "pid": worker.pid,
                         "pid_namespace": pid_namespace(), "version": __version__,
                         "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), **facts}
        self._lock = threading.Lock()
        self._removed = False

    def write(self, snapshot: dict[str, Any]) -> None:
        """Replace the file: readers see the old or the new content, never a mix.

        No fsync: the file describes the present, and a power cut makes it moot anyway.
        """
        record = {**self.identity, **snapshot, "updated_at": round(time.time(), 3)}
        text = json.dumps(record, indent=2, ensure_ascii=True) + "\n"  # file names may not be UTF-8
        text = text.ljust(STATUS_FILE_BYTES)
        with self._lock:
            if self._removed:
                return
            tmp = self.dir / f".{self.path.name}.tmp"
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):  # a read-only filesystem refuses even that
                    tmp.unlink(missing_ok=True)
                if exc.errno not in STORAGE_ERRNOS or not self._write_in_place(text):
                    raise

    def _write_in_place(self, text: str) -> bool:
        """Write `text` over the file's own bytes (a full disk refuses new blocks, not these);
        False when it is not as long (a file of an older version) or that is refused too."""
        data = text.encode("ascii")
        try:
            with open(self.path, "r+b") as file:
                if os.fstat(file.fileno()).st_size != len(data):
                    return False
                file.write(data)
        except OSError:
            return False
        return True

    def remove(self) -> None:
        with self._lock:
            self._removed = True
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Verdict:
    """What a reader can say about one status file now."""

    #: True/False: the daemon's process runs / is gone; None: it runs on another machine.
    alive: bool | None
    healthy: bool
    reason: str | None
    heartbeat_age: float | None

    def as_dict(self) -> dict[str, Any]:
        age = None if self.heartbeat_age is None else round(self.heartbeat_age, 1)
        return {"alive": self.alive, "healthy": self.healthy, "reason": self.reason,
                "heartbeat_age_s": age}


def is_local(record: dict[str, Any]) -> bool:
    """Was this file written by a daemon on this machine (same host name and pid namespace)?"""
    return record.get("host") == socket.gethostname() and record.get("pid_namespace") == pid_namespace()


def judge(record: dict[str, Any], now: float | None = None) -> Verdict:
    """Alive (where that can be known) and healthy: running, heartbeat younger than its limit."""
    now = time.time() if now is None else now
    alive = _process_alive(record) if is_local(record) else None
    heartbeat_at = record.get("heartbeat_at")
    age = now - heartbeat_at if isinstance(heartbeat_at, (int, float)) else None
    if "error" in record:
        return Verdict(alive, False, record["error"], age)
    if alive is False:
        return Verdict(False, False, f"the daemon (pid {record.get('pid')}) is not running", age)
    if record.get("state") not in WORKING_STATES:
        return Verdict(alive, False, record.get("reason") or str(record.get("state")), age)
    limit = float(record.get("stale_after_s") or 0)
    if age is None or age > limit:
        if alive and "file" in record and look(Path(record["file"]).parent).read_only:
            return Verdict(alive, True, "waiting for storage: the state folder's filesystem is "
                           "read-only, so the daemon cannot update this file", age)
        shown = "unknown" if age is None else f"{age:.0f} s"
        return Verdict(alive, False, f"consumer heartbeat is {shown} old (limit {limit:g} s): "
                       "the consumer loop is stuck", age)
    return Verdict(alive, True, record.get("degraded"), age)


def read_all(state: Path) -> list[dict[str, Any]]:
    """Every status file in the state folder, oldest daemon first; unreadable ones say why."""
    records = []
    folder = status_dir(state)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = _read_one(path)
        except FileNotFoundError:
            continue  # removed by its daemon's clean stop since the listing
        except (OSError, ValueError) as exc:
            record = {"worker": path.stem, "error": f"unreadable status file: {exc}"}
        record["file"] = str(path)
        records.append(record)
    return sorted(records, key=lambda r: (r.get("started_at") or 0, r.get("worker", "")))


def _read_one(path: Path) -> dict[str, Any]:
    """One status file; read a second time when the first read met it written over in place."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


def forget_dead(state: Path, now: float | None = None) -> list[str]:
    """Remove the files of dead daemons (run at start-up).

    This machine's: when the process is gone. Same host name in another pid namespace (this
    container before a restart, as a restarted pod or `docker restart` has it): when the file is
    older than its heartbeat limit; a live daemon there rewrites its file every few seconds, and
    one that is loading writes it again once loaded. Other machines': after a day untouched.
    """
    now = time.time() if now is None else now
    removed = []
    for record in read_all(state):
        path = Path(record["file"])
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if is_local(record):
            dead = not _process_alive(record)
        elif record.get("host") == socket.gethostname():
            dead = age > float(record.get("stale_after_s") or FORGET_AFTER_SECONDS)
        else:
            dead = age > FORGET_AFTER_SECONDS
        if dead:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                continue  # someone else's file we may not remove: it stays listed, harmlessly
            removed.append(record.get("worker", path.stem))
    return removed


def check(records: list[dict[str, Any]], now: float | None = None) -> tuple[bool, list[str]]:
    """Healthy when this machine runs at least one daemon and every one of them is healthy."""
    local = [(r, judge(r, now)) for r in records if is_local(r)]
    running = [(r, v) for r, v in local if v.alive]
    if not running:
        return False, [f"no running transcribed daemon on this machine ({socket.gethostname()}) "
                       "has a status file"]
    lines = [f"{r['worker']}: " + (f"unhealthy: {v.reason}" if not v.healthy else
                                   f"degraded: {v.reason}" if v.reason else "healthy; " + describe(r))
             for r, v in running]
    return all(v.healthy for _, v in running), lines


def render(records: list[dict[str, Any]], folder: Path, now: float | None = None) -> str:
    """The status files for a person: a few lines per daemon."""
    if not records:
        return f"no daemon has a status file in {folder} (none running, or none started yet)\n"
    out = [f"{len(records)} daemon{'s' if len(records) != 1 else ''} ({folder}):"]
    for record in records:
        verdict = judge(record, now)
        out.append("")
        out += _render_one(record, verdict)
    return "\n".join(out) + "\n"


def _render_one(record: dict[str, Any], verdict: Verdict) -> list[str]:
    where = f"{record.get('host', '?')}, pid {record.get('pid', '?')}"
    if record.get("cuda_visible_devices") not in (None, ""):
        where += f", GPU {record['cuda_visible_devices']}"
    if verdict.alive is None:
        where += ", another machine"
    health = f"UNHEALTHY: {verdict.reason}" if not verdict.healthy else \
        f"degraded: {verdict.reason}" if verdict.reason else "healthy"
    if verdict.heartbeat_age is not None and verdict.alive is not False:
        health += f" (heartbeat {verdict.heartbeat_age:.1f} s ago)"
    lines = [f"{record.get('worker', '?')} [{where}]", f"  {health}"]
    if "error" in record or "jobs" not in record:
        return lines
    lines.append(f"  {describe(record)}")
    if record.get("progress"):
        lines.append(_progress_line(record["progress"]))
    lines += _state_lines(record)
    model = f"  model {record['model'] or '?'} on {record['device'] or '?'}"
    if record.get("model_load_s") is not None:
        model += f" (loaded in {record['model_load_s']:.1f} s)"
    if record.get("batch_size"):
        model += f", batch size {record['batch_size']}"
    lines.append(model)
    speed = f"  audio {record['audio_s']:.0f} s in {record['processing_s']:.0f} s"
    if record.get("last_realtime_factor"):
        speed += f", last job {record['last_realtime_factor']:g}x realtime"
    speed += f", {record.get('oom_backoffs', 0)} OOM back-offs"
    lines.append(speed)
    if record.get("gpu_memory_used_bytes") is not None:
        used, total = record["gpu_memory_used_bytes"], record.get("gpu_memory_total_bytes") or 0
        lines.append(f"  GPU memory {used / 2**30:.1f} of {total / 2**30:.1f} GiB in use")
    return lines


def _state_lines(record: dict[str, Any]) -> list[str]:
    """What waits, whether the daemon is paused, which models it holds."""
    lines = []
    if record.get("queue_audio_s"):
        lines.append(f"  {record['queue_length']} waiting with {record['queue_audio_s']:.0f} s of audio "
                     "(where their headers tell it)")
    if record.get("library_waiting"):
        lines.append(f"  {record['library_waiting']} library files waiting for their subtitles")
    if record.get("inbox_ignored"):
        count = record["inbox_ignored"]
        lines.append(f"  {count} file{'s' if count != 1 else ''} in the inbox never taken "
                     "(inbox.ignored in the log says why)")
    if record.get("paused"):
        lines.append(_paused_line(record["paused"]))
    if record.get("unloaded_at"):
        lines.append(f"  models unloaded {ago(record['unloaded_at'])} (idle): "
                     "the next file loads them again")
    if record.get("models"):
        lines.append(_models_line(record["models"]))
    return lines


def _paused_line(paused: dict[str, Any]) -> str:
    """E.g. "  paused 12 min ago by ann@nas (a game night), until resumed: no new job starts"."""
    line = f"  paused {ago(paused['since'])}"
    if paused.get("asked_by"):
        line += f" by {paused['asked_by']}"
    if paused.get("reason"):
        line += f" ({paused['reason']})"
    line += f", {until_words(paused.get('until'))}: no new job starts"
    return line + ("; running jobs go back to the inbox" if paused.get("now") else "")


def _models_line(models: dict[str, Any]) -> str:
    """E.g. "  models loaded: tiny.en, large-v3 (1.7 of 6.0 GiB budget); 4 loaded for a job, the
    last in 2.1 s"."""
    line = (f"  models loaded: {', '.join(models['resident']) or 'none'} "
            f"({models['resident_bytes'] / 2**30:.1f} of {models['budget_bytes'] / 2**30:.1f} GiB budget)")
    if models.get("switches"):
        line += f"; {models['switches']} loaded for a job, the last in {models['last_switch_s']:.1f} s"
    return line


def _progress_line(progress: dict[str, Any]) -> str:
    """E.g. "  42 % of 7200 s of audio in 95 s, about 3 min left (from this job's rate)"."""
    line = f"  {progress['percent']:.0f} %"
    if progress.get("audio_total_s") is not None:
        line += f" of {progress['audio_total_s']:.0f} s of audio"
    line += f" in {progress['elapsed_s']:.0f} s"
    if progress.get("eta_s") is not None:
        basis = {"this job": "this job's rate", "recent jobs": "recent jobs' speed"}
        line += f", {describe_eta(progress['eta_s'])} (from {basis.get(progress['eta_from'], '?')})"
    return line


def ago(when: float, now: float | None = None) -> str:
    """A past moment (seconds since the epoch) for a person: "42 s ago", "14 min ago"."""
    seconds = max(0.0, (time.time() if now is None else now) - when)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _process_alive(record: dict[str, Any]) -> bool:
    """Does the daemon that wrote this (local) file still run? Where that cannot be told (a start
    time unknown, /proc hiding the process), it is taken to run: its heartbeat judges it then."""
    worker = WorkerId.parse(str(record.get("worker", "")))
    return worker is not None and is_running(worker) is not False
