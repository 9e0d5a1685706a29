"""The work queue's seam: what the object-store source needs of JetStream or SQS, and nothing more.

A claim is a delivery; its lease is the queue's `AckWait` (SQS: the visibility timeout), renewed
by `extend`; a worker that dies lets the lease run out and the queue delivers the job again (the
adoption); `MaxDeliver` (SQS: the redrive policy's maxReceiveCount) is the poison limit, and what
passes it comes back through `dead_letters`. Every queue here delivers at least once: the
exactly-once outcome is the manifest's conditional write (commit.py), never the ack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import TranscribedError


class QueueUnavailable(TranscribedError):
    """The queue's server did not answer: the daemon waits and tries again, nothing is lost."""


class QueueFull(TranscribedError):
    """The queue refused a new job (its limit is reached): published again by the next reconcile."""


class Delivery(Protocol):
    """One job handed to this worker: its message and its lease."""

    #: The message, as published (a task or a bucket notification).
    body: bytes
    #: 1 on the first delivery, 2 on the second (a redelivery: the worker died, or gave it back)...
    number: int

    def ack(self) -> None:
        """The job is over (committed, by this worker or another): never deliver it again."""

    def nak(self, delay: float = 0.0) -> None:
        """Give the job back, to be delivered again after `delay` seconds (to any worker)."""

    def extend(self) -> None:
        """Renew the lease: the worker is alive and still on this job."""


@dataclass(frozen=True)
class DeadLetter:
    """A job the queue gave up on (delivered too often): its message, and how often it went."""

    body: bytes
    deliveries: int
    #: Says the dead letter is handled (its failed record written): the queue forgets it.
    token: str


class WorkQueue(Protocol):
    """One queue shared by every daemon."""

    def prepare(self) -> None:
        """Create what the queue needs (a stream and its consumer) where it is missing."""

    def publish(self, body: bytes, dedup_id: str) -> bool:
        """Enqueue a job; False when it was a duplicate within the window. Raises QueueFull."""

    def pull(self, up_to: int, wait: float) -> list[Delivery]:
        """Up to `up_to` deliveries, waiting at most `wait` seconds for the first."""

    def dead_letters(self, up_to: int) -> list[DeadLetter]:
        """Jobs delivered too often (past MaxDeliver or the redrive limit), not yet handled."""

    def forget_dead(self, letter: DeadLetter) -> None:
        """The dead letter is handled: its failed record is written."""

    def lag(self) -> int | None:
        """Jobs waiting to be delivered (for the doctor and autoscalers), None when unknown."""

    def close(self) -> None:
        """Let go of the server (deliveries not acked come back after their lease)."""
