"""NATS JetStream as the work queue: one work-queue stream, one durable pull consumer shared by
every daemon.

The stream keeps each job until it is acknowledged (work-queue retention), at most
`stream_max_messages` of them (a publish past that is refused: back-pressure, and the
reconciler publishes it again later), and drops a second publish of the same job id within
`duplicate_window_seconds` (`Nats-Msg-Id`). The consumer hands each job to one daemon at a time
for `AckWait`; `in_progress` renews that lease; a job neither acked nor renewed is delivered
again, and one delivered `MaxDeliver` times is given up, which the server announces with an
advisory. A second stream (`<stream>_DEAD`) keeps those advisories, so a dead letter is never
lost while no daemon listens: every daemon reads them through a second durable consumer and
writes the job's failed record.

nats-py is asyncio; the daemon is threads. The client runs on an event loop in a thread of its
own, and each call here waits for its coroutine with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StreamConfig

from ..config import ObjectStore
from ..config.objectstore import deliveries_allowed
from ..logs import get_logger
from .queue import DeadLetter, Delivery, QueueFull, QueueUnavailable

#: Each call to the server waits at most this long.
CALL_SECONDS = 10.0
#: How long the first connection is tried before the daemon gives up (and is restarted).
CONNECT_SECONDS = 30.0
#: The advisory the server sends when a job reaches MaxDeliver.
MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
#: JetStream's error code for "maximum messages exceeded" (a full stream that discards new).
STREAM_FULL_CODE = 10077

T = TypeVar("T")
log = get_logger()


class _Loop:
    """An asyncio event loop in a thread of its own, for nats-py."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_SECONDS) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise QueueUnavailable(f"the NATS server did not answer within {timeout:g} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class JetStreamDelivery:
    """A message pulled from the work stream: its lease is AckWait, renewed by in_progress."""

    def __init__(self, msg: Msg, queue: JetStreamQueue) -> None:
        self._msg = msg
        self._queue = queue
        self.body: bytes = msg.data
        self.number: int = msg.metadata.num_delivered

    def ack(self) -> None:
        self._queue.call(self._msg.ack_sync(timeout=CALL_SECONDS))

    def nak(self, delay: float = 0.0) -> None:
        self._queue.call(self._msg.nak(delay=delay or None))

    def extend(self) -> None:
        self._queue.call(self._msg.in_progress())


class JetStreamQueue:
    """The work stream and its shared durable consumer, and the stream of dead letters."""

    def __init__(self, section: ObjectStore, max_attempts: int, name: str,
                 connect_seconds: float = CONNECT_SECONDS) -> None:
        self.section = section
        self.connect_seconds = connect_seconds
        self.max_deliver = deliveries_allowed(section, max_attempts)
        self.name = name
        self.dead_stream = f"{section.stream}_DEAD"
        self._loop = _Loop()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._work: JetStreamContext.PullSubscription | None = None
        self._dead: JetStreamContext.PullSubscription | None = None
        #: Advisories read and not yet handled, by the job's sequence in the work stream.
        self._pending_dead: dict[str, Msg] = {}

    # --- set-up ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Connect, and create the streams and consumers where they are missing (every daemon does
        it; the server keeps the first and the others find it there)."""
        self._loop.run(self._prepare(), timeout=self.connect_seconds + 4 * CALL_SECONDS)

    async def _prepare(self) -> None:
        self._nc = await self._connect()
        js = self._js = self._nc.jetstream(timeout=CALL_SECONDS)
        s = self.section
        await self._ensure_stream(js, StreamConfig(
            name=s.stream, subjects=[s.subject], retention=RetentionPolicy.WORK_QUEUE,
            max_msgs=s.stream_max_messages, discard=DiscardPolicy.NEW,
            duplicate_window=s.duplicate_window_seconds))
        advisory = f"{MAX_DELIVERIES}.{s.stream}.{s.consumer}"
        await self._ensure_stream(js, StreamConfig(
            name=self.dead_stream, subjects=[advisory], retention=RetentionPolicy.WORK_QUEUE))
        self._work = await js.pull_subscribe(
            s.subject, durable=s.consumer, stream=s.stream,
            config=ConsumerConfig(durable_name=s.consumer, ack_policy=AckPolicy.EXPLICIT,
                                  ack_wait=s.ack_wait_seconds, max_deliver=self.max_deliver,
                                  max_ack_pending=-1))
        self._dead = await js.pull_subscribe(
            advisory, durable=f"{s.consumer}_dead", stream=self.dead_stream,
            config=ConsumerConfig(durable_name=f"{s.consumer}_dead", ack_policy=AckPolicy.EXPLICIT,
                                  ack_wait=s.ack_wait_seconds))

    async def _connect(self) -> Client:
        """The first connection, tried for `connect_seconds`; later ones the client makes itself
        (for ever: a restarted server is found again, and jobs in flight go on)."""
        deadline = asyncio.get_running_loop().time() + self.connect_seconds
        while True:
            try:
                # nats-py applies max_reconnect_attempts to the first connection too, where -1
                # would never give up: one try here, and for ever once connected.
                client = await nats.connect(
                    self.section.nats_url, name=self.name, connect_timeout=5, reconnect_time_wait=1,
                    max_reconnect_attempts=1, allow_reconnect=True, error_cb=_log_error,
                    disconnected_cb=_disconnected, reconnected_cb=_reconnected)
                client.options["max_reconnect_attempts"] = -1
                return client
            except (OSError, nats.errors.Error) as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    raise QueueUnavailable(f"objectstore.nats_url: cannot reach {self.section.nats_url}: "
                                           f"{type(exc).__name__}: {exc}") from None
                log.warning("objectstore.queue_unavailable", url=self.section.nats_url, error=str(exc),
                            action="tried again in 1 s")
                await asyncio.sleep(1)

    @staticmethod
    async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
        assert config.name is not None  # noqa: S101 - always given above
        try:
            await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            log.info("objectstore.stream_created", stream=config.name, subjects=config.subjects)

    # --- the work stream -------------------------------------------------------------------------

    def publish(self, body: bytes, dedup_id: str) -> bool:
        return self.call(self._publish(body, dedup_id))

    async def _publish(self, body: bytes, dedup_id: str) -> bool:
        assert self._js is not None  # noqa: S101 - prepared first
        try:
            ack = await self._js.publish(self.section.subject, body, headers={"Nats-Msg-Id": dedup_id})
        except nats.js.errors.APIError as exc:
            if exc.err_code == STREAM_FULL_CODE:
                raise QueueFull(f"the stream {self.section.stream} holds "
                                f"objectstore.stream_max_messages jobs") from None
            raise
        return not ack.duplicate

    def pull(self, up_to: int, wait: float) -> list[Delivery]:
        if up_to < 1:
            return []
        msgs = self.call(self._fetch(up_to, wait), timeout=wait + CALL_SECONDS)
        return [JetStreamDelivery(msg, self) for msg in msgs]

    async def _fetch(self, up_to: int, wait: float) -> list[Msg]:
        assert self._work is not None  # noqa: S101 - prepared first
        try:
            return await self._work.fetch(up_to, timeout=max(wait, 0.05))
        except nats.errors.TimeoutError:
            return []

    def lag(self) -> int | None:
        try:
            info = self.call(self._consumer_info())
        except QueueUnavailable:
            return None
        return int(info.num_pending or 0)

    async def _consumer_info(self) -> Any:
        assert self._js is not None  # noqa: S101 - prepared first
        return await self._js.consumer_info(self.section.stream, self.section.consumer)

    # --- dead letters ----------------------------------------------------------------------------

    def dead_letters(self, up_to: int) -> list[DeadLetter]:
        return self.call(self._dead_letters(up_to))

    async def _dead_letters(self, up_to: int) -> list[DeadLetter]:
        """Each advisory names the job's sequence in the work stream, still there (a work-queue
        stream keeps what no consumer acked): its message is read back from it."""
        assert self._dead is not None and self._js is not None  # noqa: S101 - prepared first
        try:
            advisories = await self._dead.fetch(up_to, timeout=0.05)
        except nats.errors.TimeoutError:
            return []
        letters = []
        for advisory in advisories:
            data = json.loads(advisory.data)
            seq = int(data["stream_seq"])
            try:
                raw = await self._js.get_msg(self.section.stream, seq)
            except nats.js.errors.NotFoundError:
                await advisory.ack()  # handled already (its message removed by another daemon)
                continue
            self._pending_dead[f"{seq}"] = advisory
            letters.append(DeadLetter(body=raw.data or b"", deliveries=int(data.get("deliveries", 0)),
                                      token=f"{seq}"))
        return letters

    def forget_dead(self, letter: DeadLetter) -> None:
        self.call(self._forget_dead(letter))

    async def _forget_dead(self, letter: DeadLetter) -> None:
        assert self._js is not None  # noqa: S101 - prepared first
        with contextlib.suppress(nats.js.errors.NotFoundError):  # removed by another daemon
            await self._js.delete_msg(self.section.stream, int(letter.token))
        advisory = self._pending_dead.pop(letter.token, None)
        if advisory is not None:
            await advisory.ack()

    # --- the connection --------------------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_SECONDS) -> T:
        """Run one call on the client's loop. Any error of the client or the server (away, timed
        out, or refusing: an ack of a message it no longer holds) is QueueUnavailable: the
        caller waits and tries again, or lets the lease decide."""
        try:
            return self._loop.run(coro, timeout)
        except (nats.errors.Error, OSError) as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._nc is not None:
            nc = self._nc
            with contextlib.suppress(QueueUnavailable, nats.errors.Error, OSError):
                self._loop.run(nc.close(), timeout=5)
        self._loop.stop()


async def _log_error(exc: Exception) -> None:
    log.warning("objectstore.queue_error", error=f"{type(exc).__name__}: {exc}")


async def _disconnected() -> None:
    log.warning("objectstore.queue_disconnected", action="reconnecting; jobs in flight go on")


async def _reconnected() -> None:
    log.info("objectstore.queue_reconnected")
