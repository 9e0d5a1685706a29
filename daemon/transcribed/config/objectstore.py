"""The `objectstore` section: a second intake, media and results in S3-compatible object storage
and a work queue shared by every daemon (NATS JetStream, or SQS on AWS). Off by default: the
shared folder stays the zero-dependency way to share work (docs/scale.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from ..errors import ConfigError

#: S3 bucket names are 3 to 63 characters (the rule every S3-compatible store applies).
BUCKET_NAME_LENGTH = (3, 63)


@dataclass(frozen=True)
class ObjectStore:
    """Where object-store jobs come from (a bucket's inbox prefix, a queue) and where they end."""

    enabled: bool = False
    #: The S3 endpoint (`http://127.0.0.1:8333` for SeaweedFS, MinIO, RustFS, Ceph RGW); null: AWS.
    #: Credentials come from boto3's usual chain ($AWS_ACCESS_KEY_ID..., ~/.aws, an instance role).
    endpoint: str | None = None
    region: str = "us-east-1"
    #: `path` (bucket in the URL path) suits self-hosted stores; `virtual` suits AWS.
    addressing: Literal["auto", "path", "virtual"] = "auto"
    bucket: str = "media"
    #: Objects under this prefix are the inbox (with `watch.extensions`); the rest is the route path.
    inbox_prefix: str = "inbox/"
    #: Results: `<outbox_prefix><path-stem>/<attempt>/<stem>.<format>`, named by the job's manifest.
    outbox_prefix: str = "outbox/"
    #: Manifests (one per job: its commit point), at `<state_prefix>manifests/<job>.json`.
    state_prefix: str = "transcribed/"
    queue: Literal["jetstream", "sqs"] = "jetstream"
    #: JetStream: the server, the work-queue stream, its subject and the shared durable consumer.
    nats_url: str = "nats://127.0.0.1:4222"
    stream: str = "TRANSCRIBED"
    subject: str = "transcribed.jobs"
    consumer: str = "transcribed"
    #: The lease: a job not acknowledged (nor its lease renewed) within this time is delivered
    #: again (JetStream `AckWait`, the SQS visibility timeout). Renewed every third of it while
    #: the consumer's heartbeat is fresh.
    ack_wait_seconds: float = 60.0
    #: Deliveries of one job before the queue gives it up (`MaxDeliver`, the redrive policy's
    #: maxReceiveCount), at least `jobs.max_attempts`; null: `jobs.max_attempts` + 2, so the
    #: daemon's own poison rule (its failed report) normally comes first, and the queue's dead
    #: letter (a failed record written by whichever daemon reads it) is the backstop.
    max_deliver: int | None = None
    #: The stream keeps at most this many waiting jobs; past it, a publish is refused and retried
    #: by the next reconcile (back-pressure, nothing dropped).
    stream_max_messages: int = 1_000_000
    #: A job published twice within this window (its id is the deduplication id) is kept once.
    duplicate_window_seconds: float = 900.0
    #: SQS: the queue fed by the bucket's notifications (or the reconciler), and its dead-letter
    #: queue (the redrive policy's target), read for failed records.
    sqs_queue_url: str | None = None
    sqs_dead_letter_url: str | None = None
    #: Every this many seconds the inbox prefix is listed and each object without a manifest is
    #: enqueued: a lost notification costs latency, never a file. 0: only notifications.
    reconcile_seconds: float = 300.0
    #: At start, N concurrent conditional PUTs must give exactly one success, or the daemon refuses
    #: to start (the commit relies on it). false: start anyway, at-least-once, logged as an error.
    require_exactly_once: bool = True


def check_objectstore(section: ObjectStore, max_attempts: int) -> None:
    """Reject values that cannot work, naming the key."""
    if not section.enabled:
        return
    _check_places(section)
    _check_queue(section, max_attempts)


def _check_places(section: ObjectStore) -> None:
    where = "objectstore"
    low, high = BUCKET_NAME_LENGTH
    if not low <= len(section.bucket) <= high:
        raise ConfigError(f"{where}.bucket: expected a bucket name of {low} to {high} characters, "
                          f"got {section.bucket!r}")
    if section.endpoint is not None and urlparse(section.endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"{where}.endpoint: expected an http:// or https:// URL, got {section.endpoint!r}")
    for key in ("inbox_prefix", "outbox_prefix", "state_prefix"):
        value = getattr(section, key)
        if value and not value.endswith("/"):
            raise ConfigError(f"{where}.{key}: expected a prefix ending in '/', got {value!r}")
    prefixes = [section.inbox_prefix, section.outbox_prefix, section.state_prefix]
    for i, a in enumerate(prefixes):
        for b in prefixes[i + 1:]:
            if a.startswith(b) or b.startswith(a):
                raise ConfigError(f"{where}: inbox_prefix, outbox_prefix and state_prefix must not "
                                  f"contain one another ({a!r}, {b!r})")


def _check_queue(section: ObjectStore, max_attempts: int) -> None:
    where = "objectstore"
    for key in ("ack_wait_seconds", "duplicate_window_seconds"):
        if getattr(section, key) <= 0:
            raise ConfigError(f"{where}.{key}: expected a number above 0, got {getattr(section, key)}")
    if section.reconcile_seconds < 0:
        raise ConfigError(f"{where}.reconcile_seconds: expected 0 (off) or more, "
                          f"got {section.reconcile_seconds}")
    if section.stream_max_messages < 1:
        raise ConfigError(f"{where}.stream_max_messages: expected a positive integer")
    deliveries = deliveries_allowed(section, max_attempts)
    if deliveries < max_attempts:
        raise ConfigError(f"{where}.max_deliver: expected at least jobs.max_attempts ({max_attempts}), "
                          f"or the queue gives jobs up before their attempts are spent, got {deliveries}")
    if section.queue == "jetstream" and urlparse(section.nats_url).scheme not in ("nats", "tls"):
        raise ConfigError(f"{where}.nats_url: expected a nats:// or tls:// URL, got {section.nats_url!r}")
    if section.queue == "sqs" and not section.sqs_queue_url:
        raise ConfigError(f"{where}.sqs_queue_url: required with objectstore.queue: sqs")


def deliveries_allowed(section: ObjectStore, max_attempts: int) -> int:
    """How many times the queue delivers one job before it dead-letters it."""
    return section.max_deliver if section.max_deliver is not None else max_attempts + 2
