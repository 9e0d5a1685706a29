"""The object store as a job source: deliveries from the shared queue, objects staged in the work
folder, outcomes committed by one conditional write.

A claim pulls up to N deliveries (only when the consumer asks: back-pressure is pulling only
when the GPU is free), reads the object each one names, drops those already committed (a
duplicate, a redelivery after another's commit), and downloads the rest into a job folder of this
worker (`state/work/<worker>/<job>/src/<name>`), the job's attempts counted from the delivery
number. The consumer runs it like an inbox file. Its end is a commit (commit.py): results under
the attempt's prefix, then the manifest; the delivery is acked only after that, and the job
folder removed. A store that does not answer holds the job (its lease kept alive) and pauses new
claims until the commit goes through: jobs wait, they do not fail.

A job found in a work folder after a crash is not run again from there: its delivery died with
the process, and the queue delivers the job again once its lease runs out (the adoption).
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from .. import durable
from ..config import Config
from ..errors import BadInput
from ..logs import get_logger
from ..spool.folder import WorkFolder
from ..spool.jobs import RECORD_FILE, Job, new_job_id
from ..spool.seam import Preference
from ..spool.workers import timestamp
from .commit import Manifests
from .identity import NotAnObject, ObjectRef, inbox_path, objects_in, wanted
from .job import OBJECT_RECORD, ObjectJob
from .queue import Delivery, QueueFull, QueueUnavailable, WorkQueue
from .store import ObjectGone, Store, StoreUnreachable

#: How long a claim waits for the queue's first delivery when none is ready.
PULL_WAIT_SECONDS = 0.5
#: A delivery that cannot be used now (the queue is away at its end) comes back after this.
NAK_DELAY_SECONDS = 5.0

#: Told a committed job's folder and where its files went: `{"source", "results", ...}` as URIs.
Committer = Callable[[Path, dict[str, Any]], None]

log = get_logger()


@dataclass
class _Held:
    """A finished job whose commit the store refused (unreachable): retried at each claim."""

    job: Job
    outcome: str
    files: dict[str, Path]
    record: dict[str, Any]


class ObjectStoreSource:
    """Jobs from the shared queue; their objects in the bucket; their outcomes as manifests."""

    name = "objectstore"

    def __init__(self, config: Config, spool: WorkFolder, store: Store, queue: WorkQueue,
                 on_committed: Committer | None = None) -> None:
        self.config = config
        #: Told each winning commit's places (the completion hooks record their delivery).
        self.on_committed = on_committed
        self.section = config.objectstore
        self.spool = spool
        self.store = store
        self.queue = queue
        self.manifests = Manifests(store, self.section)
        self._lock = threading.Lock()
        #: Deliveries this worker holds (claimed, running, or held), by job id: their leases.
        self._deliveries: dict[str, Delivery] = {}
        self._objects: dict[str, ObjectJob] = {}
        self._held: dict[str, _Held] = {}
        #: Deliveries pulled while the store was away: downloaded when it answers again.
        self._waiting: list[Delivery] = []

    def prepare(self) -> None:
        self.queue.prepare()

    def deliveries(self) -> list[Delivery]:
        """Every delivery this worker holds now (for the lease renewals)."""
        with self._lock:
            return [*self._deliveries.values(), *self._waiting]

    # --- claims -----------------------------------------------------------------------------------

    def claim(self, up_to: int, prefer: Preference | None = None) -> list[Job]:
        """Up to `up_to` jobs: first those whose download waited for the store, then new
        deliveries, in the queue's order (`prefer` is not asked). None while a finished job waits
        for the store."""
        if up_to < 1 or not self._commit_held():
            return []
        claimed: list[Job] = []
        while self._waiting and len(claimed) < up_to:
            delivery = self._waiting[0]
            job = self._take(delivery)
            if job is _STORE_AWAY:
                return claimed
            with self._lock:
                self._waiting.pop(0)
            if isinstance(job, Job):
                claimed.append(job)
        try:
            pulled = self.queue.pull(up_to - len(claimed), PULL_WAIT_SECONDS) if len(claimed) < up_to else []
        except QueueUnavailable as exc:
            log.warning("objectstore.queue_unavailable", error=str(exc), action="tried again later")
            return claimed
        for index, delivery in enumerate(pulled):
            job = self._take(delivery)
            if job is _STORE_AWAY:
                with self._lock:
                    self._waiting += pulled[index:]
                break
            if isinstance(job, Job):
                claimed.append(job)
        return claimed

    def _take(self, delivery: Delivery) -> Job | object | None:
        """The job of one delivery; None when there is nothing to run (acked); _STORE_AWAY when
        the store did not answer (the delivery is kept, its lease renewed, and tried again)."""
        ref = self._object_of(delivery)
        if ref is None:
            return None
        try:
            if self.manifests.is_committed(ref):
                log.info("objectstore.already_committed", uri=ref.uri, delivery=delivery.number,
                         action="acknowledged; a duplicate or a redelivery after another's commit")
                self._ack(delivery, ref)
                return None
            return self._stage(delivery, ref)
        except StoreUnreachable as exc:
            log.warning("objectstore.store_unreachable", uri=ref.uri, error=str(exc),
                        action="the job waits (its lease renewed) until the store answers")
            return _STORE_AWAY
        except (OSError, botocore.exceptions.ClientError) as exc:
            # This worker's disk (full, read-only) or the store's refusal (access denied): not
            # the file's fault, and perhaps not another worker's problem: given back for later.
            log.error("objectstore.claim_failed", uri=ref.uri, error=f"{type(exc).__name__}: {exc}",
                      action=f"given back to the queue for {NAK_DELAY_SECONDS:g} s")
            self._nak(delivery, NAK_DELAY_SECONDS)
            return None

    def _object_of(self, delivery: Delivery) -> ObjectRef | None:
        """The one object a delivery names, in this daemon's inbox; anything else is acked, with a
        warning for what is not a job at all. A notification naming several objects is split into
        one task each (published again), so every job has its own lease and commit."""
        try:
            refs = objects_in(delivery.body)
        except NotAnObject as exc:
            log.warning("objectstore.message_refused", error=str(exc), body=delivery.body[:200].decode(
                "utf-8", "replace"), action="acknowledged: it names no object")
            self._ack(delivery, None)
            return None
        if len(refs) > 1:
            self._split(delivery, refs)
            return None
        for ref in refs:
            rel = inbox_path(ref.key, self.section.inbox_prefix)
            if (ref.bucket == self.section.bucket and rel is not None
                    and wanted(rel, self.config.watch.extensions)):
                return ref
            log.info("objectstore.ignored", uri=ref.uri, reason="not an audio or video file under "
                     f"s3://{self.section.bucket}/{self.section.inbox_prefix}")
        self._ack(delivery, None)
        return None

    def _split(self, delivery: Delivery, refs: list[ObjectRef]) -> None:
        try:
            for ref in refs:
                self.queue.publish(ref.task(), ref.job_key)
        except (QueueFull, QueueUnavailable) as exc:
            log.warning("objectstore.split_deferred", error=str(exc), objects=len(refs))
            self._nak(delivery, NAK_DELAY_SECONDS)
            return
        self._ack(delivery, None)

    def _stage(self, delivery: Delivery, ref: ObjectRef) -> Job | None:
        """A job folder for the object, and its copy downloaded into it."""
        rel = inbox_path(ref.key, self.section.inbox_prefix)
        assert rel is not None  # noqa: S101 - checked by _object_of
        job_id = new_job_id()
        job = Job(id=job_id, relpath=rel, dir=self.spool.mine / job_id, intake=self.name,
                  attempts=delivery.number - 1, claimed_at=timestamp())
        mine = ObjectJob(ref, delivery.number)
        started = time.monotonic()
        try:
            job.source.parent.mkdir(parents=True)
            durable.write_json_atomic(job.dir / RECORD_FILE, job.record())
            durable.write_json_atomic(job.dir / OBJECT_RECORD, mine.reference())
            size = self.store.download(ref, job.source)
        except ObjectGone as exc:
            shutil.rmtree(job.dir, ignore_errors=True)
            log.info("objectstore.object_gone", uri=ref.uri, reason=str(exc), action="acknowledged")
            self._ack(delivery, ref)
            return None
        except (OSError, StoreUnreachable):
            shutil.rmtree(job.dir, ignore_errors=True)
            raise
        with self._lock:
            self._deliveries[job.id] = delivery
            self._objects[job.id] = mine
        log.info("job.claimed", job_id=job.id, file=str(rel), intake=self.name, uri=ref.uri,
                 etag=ref.etag, delivery=delivery.number, bytes=size,
                 download_s=round(time.monotonic() - started, 4))
        return job

    def set_aside(self) -> list[tuple[Job, BadInput]]:
        """Nothing: what names no object is acknowledged at its claim, with a warning."""
        return []

    # --- a job's end ------------------------------------------------------------------------------

    def complete(self, job: Job, outputs: dict[str, Path]) -> dict[str, Path]:
        """Commit the results: uploaded under the attempt's prefix, then the manifest. The JSON
        transcript says where it came from (its `transcribed.origin`: the object and attempt)."""
        self._stamp_origin(job, outputs.get(".json"))
        return self._end(job, "done", dict(outputs), {})

    def _stamp_origin(self, job: Job, staged: Path | None) -> None:
        mine = self._objects.get(job.id)
        if staged is None or mine is None:
            return
        try:
            data = durable.read_json(staged)
            data.setdefault("transcribed", {})["origin"] = {**mine.reference(), "attempt": job.id}
            durable.write_json_atomic(staged, data)
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("objectstore.origin_not_recorded", job_id=job.id, error=str(exc))

    def fail(self, job: Job, report: dict[str, Any], outputs: dict[str, Path],
             logs: dict[str, Path]) -> dict[str, Path]:
        """Commit the failure: the report (`<stem>.error.json`), the log and any results kept."""
        report_path = job.dir / "error.json"
        durable.write_json_atomic(report_path, report)
        files = {**outputs, **logs, ".error.json": report_path}
        return self._end(job, "failed", files, {"report": report})

    def _end(self, job: Job, outcome: str, files: dict[str, Path], record: dict[str, Any]) -> dict[str, Path]:
        held = _Held(job, outcome, files, {**record, "job_id": job.id, "file": str(job.relpath),
                                           "attempts": job.attempts, "worker": self.spool.worker.name,
                                           "history": job.history})
        placed = self._commit(held)
        if placed is None:
            with self._lock:
                self._held[job.id] = held
            log.warning("objectstore.commit_waiting", job_id=job.id, outcome=outcome,
                        action="kept in the work folder, its lease renewed; committed when the store answers")
            return {str(path): path for path in [job.source, *files.values()]}
        return placed

    def _commit(self, held: _Held) -> dict[str, Path] | None:
        """Try the commit once: where the files went, or None while the store is away."""
        job = held.job
        mine = self._objects[job.id]
        started = time.monotonic()
        try:
            committed = self.manifests.commit(mine.ref, job.relpath, job.id, held.outcome,
                                              held.files, held.record)
        except StoreUnreachable as exc:
            log.warning("objectstore.store_unreachable", job_id=job.id, error=str(exc))
            return None
        except botocore.exceptions.ClientError as exc:
            log.error("objectstore.commit_refused", job_id=job.id, error=str(exc),
                      action="kept in the work folder; tried again")
            return None
        if committed.won:
            self._tell_hooks(job, mine.ref, committed.results)
        self._finish(job, mine.ref)
        log.info("objectstore.committed", job_id=job.id, outcome=held.outcome, won=committed.won,
                 manifest=committed.manifest, uri=mine.ref.uri,
                 commit_s=round(time.monotonic() - started, 4))
        placed = {str(job.source): Path(mine.ref.key)}
        placed |= {str(path): Path(committed.results.get(suffix, str(path)))
                   for suffix, path in held.files.items()}
        return placed

    def _tell_hooks(self, job: Job, ref: ObjectRef, results: dict[str, str]) -> None:
        """The hooks' delivery, recorded after the commit and before the job folder (holding the
        consumer's note) goes. A crash between the two costs that one delivery."""
        if self.on_committed is None:
            return
        place = functools.partial(_uri_place, ref.bucket)
        places = {"source": place(ref.key), "error_report": place(results.get(".error.json")),
                  "log": place(results.get(".log.jsonl")), "sidecars": [],
                  "results": [{"format": suffix.lstrip("."), **(place(key) or {})}
                              for suffix, key in results.items()
                              if suffix not in (".error.json", ".log.jsonl")]}
        try:
            self.on_committed(job.dir, places)
        except OSError as exc:
            log.error("hook.gave_up", job_id=job.id, reason=f"its delivery could not be recorded: {exc}")

    def _commit_held(self) -> bool:
        """Commit the jobs the store refused before; True once none waits."""
        with self._lock:
            waiting = list(self._held.values())
        for held in waiting:
            if self._commit(held) is None:
                return False
            with self._lock:
                self._held.pop(held.job.id, None)
        return True

    def _finish(self, job: Job, ref: ObjectRef) -> None:
        """After the commit: ack (late or lost acks are harmless: the manifest decides), forget."""
        with self._lock:
            delivery = self._deliveries.pop(job.id, None)
            self._objects.pop(job.id, None)
        if delivery is not None:
            self._ack(delivery, ref)
        shutil.rmtree(job.dir, ignore_errors=True)

    def release(self, job: Job) -> Path:
        """Give the job back: the delivery is nak'ed (delivered again at once, to any daemon)."""
        with self._lock:
            delivery = self._deliveries.pop(job.id, None)
            mine = self._objects.pop(job.id, None)
        if delivery is not None:
            self._nak(delivery, 0.0)
        shutil.rmtree(job.dir, ignore_errors=True)
        return Path(mine.ref.key) if mine is not None else job.source

    def take_back(self, job_dir: Path) -> Job | None:
        """A job left in a work folder by a crash: its delivery died with that process, and the
        queue delivers the job again after its lease, so the folder is only removed."""
        try:
            reference = json.loads((job_dir / OBJECT_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            reference = {}
        log.info("objectstore.job_dropped", job_id=job_dir.name, uri=reference.get("uri"),
                 reason="its delivery ended with the process; the queue delivers it again")
        shutil.rmtree(job_dir, ignore_errors=True)
        return None

    # --- acknowledgements -------------------------------------------------------------------------

    def _ack(self, delivery: Delivery, ref: ObjectRef | None) -> None:
        try:
            delivery.ack()
        except QueueUnavailable as exc:
            log.warning("objectstore.ack_failed", uri=ref.uri if ref else None, error=str(exc),
                        reason="delivered again later, and dropped then: its manifest is there")

    def _nak(self, delivery: Delivery, delay: float) -> None:
        try:
            delivery.nak(delay)
        except QueueUnavailable as exc:
            log.warning("objectstore.nak_failed", error=str(exc), reason="delivered again after its lease")


def _uri_place(bucket: str, key: str | None) -> dict[str, str] | None:
    """A hook place of an object: no folder root, its URI."""
    return {"root": "", "relative": f"s3://{bucket}/{key}"} if key else None


#: `_take`'s answer when the store did not answer.
_STORE_AWAY = object()
