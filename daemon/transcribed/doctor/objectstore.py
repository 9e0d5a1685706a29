"""The doctor's checks of the object-store intake, when it is on: the bucket answers and its
conditional writes are safe for the commit (the start-up probe), and the queue answers, with
how many jobs wait in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import TranscribedError
from .report import FAIL, OK, WARN, Report

#: The doctor does not wait long for a queue server that is not there.
QUEUE_CONNECT_SECONDS = 3.0

if TYPE_CHECKING:
    from ..objectstore.queue import WorkQueue


def check_objectstore(report: Report, config: Config) -> None:
    """Two lines, `objectstore_store` and `objectstore_queue`; none when the intake is off."""
    section = config.objectstore
    if not section.enabled:
        return
    try:
        import botocore.exceptions

        from ..objectstore.start import open_queue
        from ..objectstore.store import PROBE_WRITERS, Store, StoreUnreachable, probe_conditional_writes
    except ImportError as exc:
        report.add("objectstore_store", "Object store", FAIL, f"cannot import its client: {exc}",
                   "install the object-store extra: pip install 'transcribed[objectstore]'")
        return
    where = f"s3://{section.bucket} at {section.endpoint or 'AWS'}"
    try:
        store = Store(section)
        store.head_bucket()
        won, errors = probe_conditional_writes(store, section.state_prefix)
    except (StoreUnreachable, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        report.add("objectstore_store", "Object store", FAIL, f"{where}: {exc}",
                   "check objectstore.endpoint, the bucket's name and the credentials "
                   "($AWS_ACCESS_KEY_ID..., ~/.aws, an instance role)")
    else:
        safe = won == 1
        report.add("objectstore_store", "Object store", OK if safe else FAIL,
                   f"{where}: {won} of {PROBE_WRITERS} concurrent conditional writes succeeded"
                   + ("" if not errors else f" ({len(errors)} errors: {errors[0]})"),
                   "" if safe else "this store does not honour If-None-Match: * under concurrency; "
                   "exactly-once commits need it (upgrade the store, or accept at-least-once with "
                   "objectstore.require_exactly_once: false)",
                   conditional_writes_won=won)
    _check_queue(report, config, open_queue)


def _check_queue(report: Report, config: Config, opener: Callable[[Config, str, float], WorkQueue]) -> None:
    section = config.objectstore
    where = (section.sqs_queue_url if section.queue == "sqs"
             else f"{section.nats_url}, stream {section.stream}")
    queue = opener(config, "doctor", QUEUE_CONNECT_SECONDS)
    try:
        queue.prepare()
        lag = queue.lag()
    except (TranscribedError, OSError) as exc:
        report.add("objectstore_queue", "Work queue", FAIL, f"{section.queue} at {where}: {exc}",
                   "check objectstore.nats_url (or sqs_queue_url) and that the server is up")
        return
    except Exception as exc:  # noqa: BLE001 - any client error is a failed check, said as it is
        report.add("objectstore_queue", "Work queue", FAIL, f"{section.queue} at {where}: "
                   f"{type(exc).__name__}: {exc}", "check the queue's name and permissions")
        return
    finally:
        queue.close()
    report.add("objectstore_queue", "Work queue", OK if lag is not None else WARN,
               f"{section.queue} at {where}: {lag if lag is not None else 'unknown'} jobs waiting", "",
               waiting=lag)
