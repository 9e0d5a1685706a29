"""Opening the object-store intake at start: the store reached and probed, the queue chosen and
prepared, the source and its background threads made.

The probe runs before anything is claimed: N concurrent conditional PUTs of one new key must give
exactly one success, or the commit cannot be trusted and the daemon refuses to start (exit 1,
`objectstore.exactly_once_refused`), unless `objectstore.require_exactly_once` is false.
"""

from __future__ import annotations

import time

from ..config import Config
from ..errors import TranscribedError
from ..logs import get_logger
from ..operations.stats import Stats
from ..spool.folder import WorkFolder
from .background import Background
from .queue import WorkQueue
from .source import Committer, ObjectStoreSource
from .store import PROBE_WRITERS, Store, StoreUnreachable, probe_conditional_writes

#: How long the store is tried at start before the daemon gives up (and is restarted).
REACH_SECONDS = 30.0

log = get_logger()


def open_queue(config: Config, worker: str, connect_seconds: float = 30.0) -> WorkQueue:
    """The queue `objectstore.queue` names (JetStream's first connection tried this long)."""
    section = config.objectstore
    if section.queue == "sqs":
        from .sqs import SqsQueue

        return SqsQueue(section, config.jobs.max_attempts)
    from .jetstream import JetStreamQueue

    return JetStreamQueue(section, config.jobs.max_attempts, worker, connect_seconds)


def open_source(config: Config, spool: WorkFolder, stats: Stats,
                on_committed: Committer | None = None) -> ObjectStoreSource:
    """The object-store source, its store probed and its queue prepared, its background started;
    `on_committed` is told each winning commit (the completion hooks)."""
    section = config.objectstore
    store = Store(section)
    reach(store, section.endpoint or "AWS S3")
    check_exactly_once(store, config)
    source = ObjectStoreSource(config, spool, store, open_queue(config, spool.worker.name), on_committed)
    source.prepare()
    Background(config, source, stats, spool.worker.name).start()
    log.info("objectstore.ready", bucket=section.bucket, inbox=section.inbox_prefix,
             queue=section.queue, ack_wait_s=section.ack_wait_seconds)
    return source


def reach(store: Store, where: str) -> None:
    deadline = time.monotonic() + REACH_SECONDS
    while True:
        try:
            store.head_bucket()
            return
        except StoreUnreachable as exc:
            if time.monotonic() >= deadline:
                raise TranscribedError(f"objectstore.endpoint: {where} did not answer within "
                                       f"{REACH_SECONDS:g} s: {exc}") from None
            log.warning("objectstore.store_unreachable", endpoint=where, error=str(exc),
                        action="tried again in 1 s")
            time.sleep(1)


def check_exactly_once(store: Store, config: Config) -> None:
    """The start-up probe of concurrent conditional writes."""
    section = config.objectstore
    won, errors = probe_conditional_writes(store, section.state_prefix)
    if won == 1:
        log.info("objectstore.exactly_once", writers=PROBE_WRITERS, won=won)
        return
    message = (f"the store gave {won} successes to {PROBE_WRITERS} concurrent conditional writes "
               "(If-None-Match: *) of one new key; exactly-once commits need exactly one")
    if section.require_exactly_once:
        log.critical("objectstore.exactly_once_refused", writers=PROBE_WRITERS, won=won,
                     errors=errors[:3], action="not started; objectstore.require_exactly_once: "
                     "false runs at-least-once instead")
        raise TranscribedError(f"objectstore: {message}. Refusing to start in exactly-once mode")
    log.error("objectstore.at_least_once", writers=PROBE_WRITERS, won=won, errors=errors[:3],
              reason=message, action="running anyway (objectstore.require_exactly_once: false): "
              "a job may end twice")
