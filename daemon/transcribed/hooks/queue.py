"""Completion hooks: a command run, a webhook called, and notifications sent (through Apprise,
notifications.py) when a job ends (docs/hooks.md, docs/notifications.md).

A hook chains something outside (a media server's refresh, a notification) to a finished job, so
a crash must neither lose the call nor, once it was made, repeat it after a restart:

1. The consumer notes the job's outcome in the job's folder (`hook.json`) before the finish plan
   is written (`Hooks.job_ended`), if the outcome is one of the events that fire.
2. The finisher, when it carries out a plan (the first time, after a restart, or in another
   daemon that adopted the job), calls `Hooks.before_moves` before the first move: the pending
   delivery, with the place the plan gives each file, is written durably to
   `state/hooks/<worker>/<job id>.json`.
3. The hook thread delivers it once the source is where the plan put it (its results moved
   first), retrying with a doubling delay up to `hooks.max_attempts`; the record then goes to
   `state/hooks/delivered/` (or `gave_up/`, whole, for an operator), which says "never again".

A full or read-only state folder loses no hook: a note it refuses is kept in memory and written
before the job's finish plan (`before_plan`: the finisher holds the plan until it is), a record
it refuses after a delivery is kept in memory (so the delivery is not repeated), and nothing is
delivered while storage refuses writes (spool/storage.py), which wakes the thread when it is back.

Records of a worker that is gone (its work folder removed, or `workers.Liveness` says so) are
taken over by rename, so exactly one daemon delivers each. Delivery is at least once: a crash
after the call and before the ledger repeats it, and the `Idempotency-Key` header (the job id)
lets a receiver tell. Nothing here touches a transcript or a source, and the consumer's share is
two small durable writes; the commands and requests (calls.py) run on the hook thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import durable
from ..config import Config
from ..errors import StorageFault
from ..logs import get_logger
from ..spool.jobs import Job
from ..spool.storage import CHECK_SECONDS, Storage
from ..spool.workers import Liveness, WorkerId, machine_identity, timestamp
from .calls import CommandRunner, environment, headers, post_json, read_secret
from .notes import NOTE_FILE, delivery_body, ended, job_note, places_of, wanted
from .notifications import TARGET_PREFIX, Notifications
from .takeover import Takeover, prune_ledger
from .tally import Tally

#: The hooks' folder under `folders.state`: a folder of pending records per daemon, and the ledger.
HOOKS_FOLDER = "hooks"
#: Ledger folders under state/hooks/: a job whose record is in one is never delivered again.
DELIVERED = "delivered"
GAVE_UP = "gave_up"
#: The places a hook can deliver to, in the order they are tried; then each Apprise URL
#: (`notify:<hash>`, notifications.py).
TARGETS = ("command", "url")
#: What a note or record damaged from outside raises when read (bad JSON, missing keys...).
DAMAGE = (ValueError, KeyError, TypeError, AttributeError, IndexError)
#: Longest pause between two tries of one delivery.
MAX_DELAY_SECONDS = 3600.0
#: How often the thread looks for records of workers that are gone.
SCAN_SECONDS = 5.0
#: How often a record whose job's files are still moving is looked at again.
READY_POLL_SECONDS = 0.25
#: Delivered records older than this leave the ledger (at start).
LEDGER_KEEP_SECONDS = 30 * 86400.0

log = get_logger()


class Hooks:
    """One daemon's completion hooks: the note and the pending record on the consumer's side,
    the deliveries on a thread of their own (`start`, `stop`)."""

    def __init__(self, config: Config, worker: WorkerId, storage: Storage | None = None) -> None:
        self.config = config
        #: Told of a full or read-only state folder; nothing is delivered while it refuses writes.
        self.storage = storage
        self.settings = config.hooks
        #: The Apprise services of `hooks.notify.urls_file` (none when it is not set).
        self.notifications = Notifications(self.settings)
        self.enabled = bool(self.settings.command or self.settings.url or self.notifications.targets)
        self.root = config.folders.state / HOOKS_FOLDER
        self.mine = self.root / worker.name
        self.work = config.folders.state / "work"
        self.secret = read_secret(self.settings.secret_file) \
            if self.enabled and self.settings.secret_file is not None else None
        self._roots = {"outbox": config.folders.outbox, "done": config.folders.done,
                       "failed": config.folders.failed, "inbox": config.folders.inbox}
        #: A library job's media and subtitles are placed under its library (docs/libraries.md).
        self._roots.update({f"libraries[{i}]": lib.path for i, lib in enumerate(config.libraries)
                            if lib.path is not None})
        self._takeover = Takeover(self.root, self.mine, self.work,
                                  Liveness(worker, machine_identity(), config.daemon.lease_seconds))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._command = CommandRunner()
        self._next_scan = 0.0
        #: What is pending and failing, told to Stats after each pass (the status page).
        self.tally = Tally(self.mine)
        #: Notes a full or read-only disk refused, by job folder name (written by `before_plan`),
        #: and pending records updated after a delivery but not yet written, by path.
        self._notes: dict[str, dict[str, Any]] = {}
        self._unsaved: dict[Path, dict[str, Any]] = {}
        if storage is not None:
            storage.on_recovered(self._storage_recovered)

    # --- the consumer's side ---------------------------------------------------------------------

    def job_ended(self, job: Job, outcome: str, files: Mapping[str, Path],
                  metadata: Mapping[str, Any] | None = None,
                  error: Mapping[str, Any] | None = None) -> None:
        """Note the job's outcome in its folder, before its finish plan, when it fires the hooks.
        `files`: suffix -> staged file, of the results and the job's log."""
        if not self.enabled or not wanted(self.config, job.relpath, outcome):
            return
        note = job_note(job, outcome, files, metadata or {}, error)
        try:
            durable.write_json_atomic(job.dir / NOTE_FILE, note)
        except StorageFault as fault:
            self._notes[job.dir.name] = note  # written before the plan is (`before_plan`)
            self._report(fault)
        except OSError as exc:
            log.error("hook.gave_up", job_id=job.id, file=str(job.relpath),
                      reason=f"the job's outcome could not be noted in its folder: {exc}")

    def before_plan(self, job_dir: Path) -> None:
        """The finisher's step before a plan is written: a note storage refused is written now;
        refused again, the OSError holds the plan with it, so no plan is on disk without its note."""
        note = self._notes.get(job_dir.name)
        if note is not None:
            durable.write_json_atomic(job_dir / NOTE_FILE, note)
            self._notes.pop(job_dir.name, None)

    def before_moves(self, job_dir: Path, moves: list[tuple[Path, Path]]) -> None:
        """The finisher's step before a plan's first move: record the pending delivery, durably,
        unless it is recorded or ended already. An OSError holds the job (its moves are retried,
        and this with them), so no job is finished without its hook recorded."""
        if not self.enabled:
            return
        try:
            record = self._pending_record(job_dir, moves)
        except DAMAGE as exc:  # a note damaged from outside costs its hook, never the job's moves
            log.error("hook.gave_up", job_id=job_dir.name, reason=f"its note is damaged: {exc!r}")
            return
        if record is None:
            return
        self._record(job_dir, record)

    def record_elsewhere(self, job_dir: Path, places: dict[str, Any]) -> None:
        """A job whose files went elsewhere than the folders (the object store, after its commit):
        record its pending delivery with `places` as given (each `{"root": "", "relative": URI}`)."""
        if not self.enabled or self._known(job_dir.name):
            return
        note = self._readjob_note(job_dir)
        if note is not None:
            self._record(job_dir, {"version": 1, "note": note, "places": places, "targets": {},
                                   "recorded_at": timestamp(), "recorded_by": self.mine.name})

    def _record(self, job_dir: Path, record: dict[str, Any]) -> None:
        self.mine.mkdir(parents=True, exist_ok=True)
        durable.write_json_atomic(self.mine / f"{job_dir.name}.json", record)
        note = record["note"]
        log.info("hook.pending", job_id=note["job_id"], file=note["file"], outcome=note["outcome"])
        durable.failpoint("hooked")
        self._wake.set()

    def _pending_record(self, job_dir: Path, moves: list[tuple[Path, Path]]) -> dict[str, Any] | None:
        """The record to write, or None: no note, a plan that is not the note's end, or a
        delivery already recorded or ended."""
        note = self._readjob_note(job_dir)
        if note is None or not self._plan_is_the_notes(note, job_dir, moves):
            return None
        if self._known(job_dir.name):
            return None
        return {"version": 1, "note": note, "places": places_of(note, job_dir, moves, self._place),
                "targets": {}, "recorded_at": timestamp(), "recorded_by": self.mine.name}

    def _readjob_note(self, job_dir: Path) -> dict[str, Any] | None:
        try:
            note = durable.read_json(job_dir / NOTE_FILE)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            log.error("hook.gave_up", job_id=job_dir.name, reason=f"its note is damaged: {exc}")
            return None
        return note if isinstance(note, dict) else None

    def _plan_is_the_notes(self, note: Mapping[str, Any], job_dir: Path,
                           moves: list[tuple[Path, Path]]) -> bool:
        """Is this plan the end the note speaks of (not a requeue after a note left by a crash)?"""
        if Path(note.get("source", "")).is_absolute():
            return True  # a library job's media stays in place: its only plan is its end
        source = job_dir / note.get("source", "")
        return any(src == source and self._place(dst)["root"] == note.get("outcome")
                   for src, dst in moves)

    def _place(self, path: Path) -> dict[str, str]:
        """A planned destination as the folder root's name and the path under it."""
        for name, root in sorted(self._roots.items(), key=lambda item: -len(str(item[1]))):
            with contextlib.suppress(ValueError):
                return {"root": name, "relative": path.relative_to(root).as_posix()}
        return {"root": "", "relative": str(path)}

    def _known(self, name: str) -> bool:
        """Is a delivery for this job pending with some worker, or ended (delivered, given up)?"""
        if not self.root.is_dir():
            return False
        return any((folder / f"{name}.json").exists() for folder in self.root.iterdir())

    # --- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start delivering (pending records of earlier runs too); nothing when no hook is set."""
        if not self.enabled:
            return
        prune_ledger(self.root / DELIVERED, LEDGER_KEEP_SECONDS)
        self._thread = threading.Thread(target=self._run, name="hooks", daemon=True)
        self._thread.start()
        log.info("hooks.started", command=self.settings.command is not None,
                 url=self.settings.url is not None, events=list(self.settings.events),
                 notify=[self.notifications.label(t) for t in self.notifications.targets])

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread: a running command is killed and its try not counted; pending records
        stay on disk for the next start (a request in flight may be repeated then)."""
        self._stop.set()
        self._wake.set()
        self._command.kill()
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.mine.rmdir()  # only when nothing waits in it

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait = self.deliver_due()
            except Exception as exc:  # the thread must outlive a broken record or a failing share
                log.exception("hook.error", error=f"{type(exc).__name__}: {exc}")
                wait = SCAN_SECONDS
            self._wake.wait(timeout=wait)

    def deliver_due(self) -> float:
        """One pass of the thread (tests drive it directly): take over the records of gone
        workers, try those due; returns the seconds until the next pass is wanted. Nothing while
        storage refuses writes: a delivery that could not be recorded would be made again."""
        if self.storage is not None and self.storage.blocked:
            return SCAN_SECONDS  # or sooner: storage's recovery wakes the thread
        now = time.monotonic()
        if now >= self._next_scan:
            self._takeover.take_over_orphans()
            self._next_scan = now + SCAN_SECONDS
        waits = [self._next_scan - now]
        for path in sorted(self.mine.glob("*.json")) if self.mine.is_dir() else []:
            if self._stop.is_set():
                break
            try:
                waits.append(self._deliver(path))
            except OSError as exc:  # the state folder's share hiccups: this record waits
                log.warning("hook.error", job_id=path.stem, error=str(exc), action="tried again later")
                waits.append(SCAN_SECONDS)
            except DAMAGE as exc:  # one damaged record must not hold up the others
                self._set_aside(path, f"its record is damaged: {exc!r}")
        self.tally.tell()
        return max(0.01, min(waits))

    # --- one delivery ----------------------------------------------------------------------------

    def _deliver(self, path: Path) -> float:
        """Try the targets of one record that are due; seconds until it wants another look."""
        record = self._unsaved.get(path) or durable.read_json(path)
        if not self._ready(path.stem, record):
            return READY_POLL_SECONDS
        body = delivery_body(record, self._roots)
        payload = durable.to_json(body).encode("utf-8")
        for target in self._targets():
            state = record["targets"].setdefault(target, {"attempts": 0, "due": 0.0})
            if ended(state) or self._stop.is_set() or state["due"] > time.time():
                continue
            if self._try(target, state, body, payload) and not self._saved(path, record):
                return CHECK_SECONDS
        states = [record["targets"][t] for t in self._targets() if t in record["targets"]]
        if len(states) == len(self._targets()) and all(ended(s) for s in states):
            gave_up = any(ended(s) == GAVE_UP for s in states)
            try:
                self._file_away(path, record, GAVE_UP if gave_up else DELIVERED)
            except StorageFault as fault:
                self._unsaved[path] = record
                self._report(fault)
                return CHECK_SECONDS
            self._unsaved.pop(path, None)
            return SCAN_SECONDS
        open_ = [s["due"] - time.time() for s in states if not ended(s)]
        return max(0.01, min(open_, default=SCAN_SECONDS))

    def _saved(self, path: Path, record: dict[str, Any]) -> bool:
        """Write a record after a try; refused by storage, it is kept for the next pass (False)."""
        try:
            durable.write_json_atomic(path, record)
        except StorageFault as fault:
            self._unsaved[path] = record
            self._report(fault)
            return False
        self._unsaved.pop(path, None)
        return True

    def _report(self, fault: StorageFault) -> None:
        if self.storage is not None:
            self.storage.report(fault)

    def _storage_recovered(self) -> None:
        """Writes go through again: no daemon could renew its lease meanwhile; deliveries resume."""
        self._takeover.liveness.forget_seen()
        self._wake.set()

    def _targets(self) -> list[str]:
        return [t for t in TARGETS if getattr(self.settings, t)] + self.notifications.targets

    def _try(self, target: str, state: dict[str, Any], body: Mapping[str, Any], payload: bytes) -> bool:
        """One try; updates `state` and logs the result. False: interrupted by the stop (not
        counted, nothing to save)."""
        attempt = state["attempts"] + 1
        started = time.monotonic()
        if target.startswith(TARGET_PREFIX):
            error = self.notifications.send(target, body)
        elif target == "command":
            env = {**os.environ, **environment(body), "TRANSCRIBED_ATTEMPT": str(attempt)}
            error = self._command.run(list(self.settings.command or ()), payload, env,
                                      self.settings.timeout_seconds)
        else:
            error = post_json(self.settings.url or "", payload, headers(body, payload, attempt, self.secret),
                              self.settings.timeout_seconds)
        if self._stop.is_set() and error is not None:
            return False
        state["attempts"] = attempt
        fields = {"job_id": body["job_id"], "file": body["file"], **self._target_fields(target),
                  "attempt": attempt, "seconds": round(time.monotonic() - started, 3)}
        if error is None:
            state["ended"] = DELIVERED
            log.info("hook.delivered", outcome=body["outcome"], **fields)
        elif attempt >= self.settings.max_attempts:
            self.tally.gave_up += 1
            state["ended"], state["error"] = GAVE_UP, error
            log.error("hook.gave_up", error=error, max_attempts=self.settings.max_attempts,
                      kept_in=str(self.root / GAVE_UP), **fields)
        else:
            delay = min(self.settings.retry_delay_seconds * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
            state["due"], state["error"] = time.time() + delay, error
            self.tally.failing[body["job_id"]] = error
            log.warning("hook.failed", error=error, retry_in_s=round(delay, 3),
                        max_attempts=self.settings.max_attempts, **fields)
        return True

    def _target_fields(self, target: str) -> dict[str, str]:
        """How a log line names a target: command, url, or notify with the service's kind and line
        (never its URL)."""
        if target.startswith(TARGET_PREFIX):
            return {"target": "notify", "service": self.notifications.label(target)}
        return {"target": target}

    def _ready(self, name: str, record: Mapping[str, Any]) -> bool:
        """Have the job's moves finished? Its source is where the plan put it (the results go
        first), or its job folder is in no worker's folder any more (a user took the file)."""
        source = record.get("places", {}).get("source")
        if source and (root := self._roots.get(source["root"])) is not None \
                and os.path.lexists(root / source["relative"]):
            return True
        workers = self.work.iterdir() if self.work.is_dir() else iter(())
        return not any(os.path.lexists(folder / name) for folder in workers)

    def _file_away(self, path: Path, record: Mapping[str, Any], ledger: str) -> None:
        """Into the ledger (the whole record for one given up), then out of the pending folder."""
        folder = self.root / ledger
        folder.mkdir(parents=True, exist_ok=True)
        kept = record if ledger == GAVE_UP else {
            "job_id": record["note"]["job_id"], "file": record["note"]["file"],
            "outcome": record["note"]["outcome"], "delivered_at": timestamp(),
            "targets": record["targets"]}
        durable.write_json_atomic(folder / path.name, kept)
        path.unlink(missing_ok=True)
        durable.fsync_dir(path.parent)

    def _set_aside(self, path: Path, reason: str) -> None:
        """A record that cannot be read goes, as it is, to gave_up/ for an operator."""
        folder = self.root / GAVE_UP
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, folder / path.name)
        log.error("hook.gave_up", job_id=path.stem, reason=reason, kept_in=str(folder))
