"""What the object-store source does beside the consumer: lease renewals, dead letters, reconciles.

**Leases.** Every third of `ack_wait_seconds`, each delivery this worker holds is renewed
(`in_progress`, `ChangeMessageVisibility`), but only while the consumer's own heartbeat is fresh
(younger than `metrics.stale_after_seconds`, the rule /healthz applies): a consumer stuck in a
job stops renewing, its lease runs out, and another daemon gets the job. A side thread that
renewed regardless would hide a hung GPU for ever.

**Dead letters.** A job the queue gave up on (past `MaxDeliver` or the redrive limit: it killed
every worker that took it) gets its failed record, a manifest written like any other commit.

**Reconciles.** Every `reconcile_seconds` one daemon (the one whose conditional write of the
interval's turn object succeeds) lists the inbox prefix and the manifests, and enqueues each
object that has no manifest, its job key as the deduplication id: notifications are hints, and a
lost one costs latency, never a file. A full queue stops the pass (back-pressure); the next pass
enqueues the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..config import Config
from ..logs import get_logger
from ..operations.stats import Stats
from .commit import Manifests
from .identity import NotAnObject, ObjectRef, inbox_path, objects_in, wanted
from .queue import QueueFull, QueueUnavailable, WorkQueue
from .source import ObjectStoreSource
from .store import Store, StoreUnreachable

#: Dead letters are looked for this often.
DEAD_LETTER_SECONDS = 5.0

log = get_logger()


class Background:
    """Two daemon threads: lease renewals, and dead letters plus reconciles."""

    def __init__(self, config: Config, source: ObjectStoreSource, stats: Stats, worker: str) -> None:
        self.config = config
        self.section = config.objectstore
        self.source = source
        self.stats = stats
        self.worker = worker
        self.reconciler = Reconciler(config, source.store, source.manifests, source.queue)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._every, args=(self.section.ack_wait_seconds / 3, self.renew),
                             name="objectstore-leases", daemon=True),
            threading.Thread(target=self._every, args=(DEAD_LETTER_SECONDS, self.tend_queue),
                             name="objectstore-reconciler", daemon=True),
        ]
        self._next_reconcile = 0.0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _every(self, seconds: float, work: Callable[[], None]) -> None:
        while not self._stop.wait(seconds):
            try:
                work()
            except (QueueUnavailable, StoreUnreachable) as exc:
                log.warning("objectstore.background_deferred", work=work.__name__, error=str(exc))
            except Exception as exc:  # a side thread must not die: logged, tried again
                log.exception("objectstore.background_failed", work=work.__name__,
                              error=f"{type(exc).__name__}: {exc}")

    def renew(self) -> None:
        """Renew the leases of the deliveries held, while the consumer beats."""
        age = time.monotonic() - self.stats.last_beat
        if age > self.config.metrics.stale_after_seconds:
            log.warning("objectstore.leases_not_renewed", heartbeat_age_s=round(age, 1),
                        reason="the consumer's heartbeat is stale; its jobs go to another daemon")
            return
        for delivery in self.source.deliveries():
            try:
                delivery.extend()
            except QueueUnavailable as exc:
                log.warning("objectstore.lease_renewal_failed", error=str(exc))

    def tend_queue(self) -> None:
        self.dead_letters()
        now = time.monotonic()
        if self.section.reconcile_seconds and now >= self._next_reconcile:
            self._next_reconcile = now + self.section.reconcile_seconds
            if self.reconciler.my_turn():
                self.reconciler.run()

    def dead_letters(self) -> None:
        """A failed record for each job the queue gave up on."""
        for letter in self.source.queue.dead_letters(16):
            try:
                refs = objects_in(letter.body)
            except NotAnObject:
                refs = []
            for ref in refs:
                won = self.source.manifests.commit_dead_letter(ref, letter.deliveries, self.worker)
                log.error("job.failed", file=ref.key, uri=ref.uri, error_kind="poison", stage="queue",
                          attempts=letter.deliveries, recorded=won,
                          error="the queue gave this job up after its last delivery (MaxDeliver)")
            self.source.queue.forget_dead(letter)


class Reconciler:
    """The inbox listed against the manifests; what has no manifest enqueued."""

    def __init__(self, config: Config, store: Store, manifests: Manifests, queue: WorkQueue) -> None:
        self.section = config.objectstore
        self.extensions = config.watch.extensions
        self.store = store
        self.manifests = manifests
        self.queue = queue

    def my_turn(self, now: float | None = None) -> bool:
        """Is this daemon the one that reconciles this interval? The first to write the interval's
        turn object (a conditional write, like the commit) is; the one before is removed."""
        interval = self.section.reconcile_seconds
        slot = int((time.time() if now is None else now) // interval)
        turns = f"{self.section.state_prefix}reconcile/"
        if not self.store.put_if_absent(f"{turns}{slot}", b"{}"):
            return False
        for key, _ in self.store.listing(turns):
            if key != f"{turns}{slot}":
                self.store.delete_prefix(key)
        return True

    def run(self) -> dict[str, int]:
        """One pass; returns its counts (also logged as `objectstore.reconciled`)."""
        started = time.monotonic()
        committed = self.manifests.committed_keys()
        counts = {"listed": 0, "committed": 0, "enqueued": 0, "duplicates": 0, "stopped_full": 0}
        for key, etag in self.store.listing(self.section.inbox_prefix):
            rel = inbox_path(key, self.section.inbox_prefix)
            if rel is None or not wanted(rel, self.extensions):
                continue
            counts["listed"] += 1
            ref = ObjectRef(self.section.bucket, key, etag)
            if ref.job_key in committed:
                counts["committed"] += 1
                continue
            try:
                fresh = self.queue.publish(ref.task(), ref.job_key)
            except QueueFull as exc:
                counts["stopped_full"] = 1
                log.warning("objectstore.queue_full", error=str(exc),
                            action="the rest is enqueued by the next reconcile")
                break
            counts["enqueued" if fresh else "duplicates"] += 1
        log.info("objectstore.reconciled", seconds=round(time.monotonic() - started, 3), **counts)
        return counts
