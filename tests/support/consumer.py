"""The consumer in-process, on real temp folders: a Consumer, its config and files to feed it.

For tests that drive `Consumer.next_job` / `Consumer.process` step by step (with the FakeEngine or
a subclass of it), where a daemon child process would hide the order of events.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.support.media import write_tone_wav
from transcribed.config import Config, parse_config, resolve_paths
from transcribed.consumer.loop import Consumer
from transcribed.engine.base import Engine
from transcribed.intake.arrivals import Arrivals
from transcribed.intake.source import InboxSource
from transcribed.operations.stats import Stats
from transcribed.spool.folder import WorkFolder


def make_config(root: Path, **sections: dict[str, Any]) -> Config:
    """A config with every folder under `root`, files complete at once, and `sections` on top."""
    data: dict[str, Any] = {"folders": {name: name for name in ("inbox", "outbox", "done", "failed", "state")},
                            "watch": {"settle_seconds": 0.01}, "jobs": {"retry_delay_seconds": 0.01}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return resolve_paths(parse_config(data), root)


#: Every Consumer made by `make_consumer` in the running test, closed by `close_consumers` after it.
_made: list[Consumer] = []


def make_consumer(config: Config, engine: Engine) -> Consumer:
    """A Consumer of `config`'s inbox, as service.py builds it (without its threads). Its decode
    ahead (a thread pool when overlap is on) is shut down after the test by `close_consumers`
    (tests/conftest.py), as `Consumer.run` does when it ends, for tests that never call `run`."""
    spool = WorkFolder(config)
    spool.prepare()
    stats, arrivals = Stats(), Arrivals(config.watch.settle_seconds)
    inbox = InboxSource(config, spool, arrivals, stats)
    consumer = Consumer(config, spool, [inbox], engine, arrivals, threading.Event(), stats=stats)
    _made.append(consumer)
    return consumer


def close_consumers() -> None:
    """Stop the decode ahead of every consumer the test made (their files are the test's own)."""
    while _made:
        consumer = _made.pop()
        if consumer.prefetch is not None:
            consumer.prefetch.close()


def drop(config: Config, name: str, seconds: float = 1.0) -> Path:
    """A user copies a (tone) recording into the inbox."""
    return write_tone_wav(config.folders.inbox / name, seconds)


def process_next(consumer: Consumer) -> None:
    """Let the consumer take the next complete file and run it, as its loop does."""
    deadline = time.monotonic() + 10
    while (job := consumer.next_job()) is None:
        assert time.monotonic() < deadline, "the consumer found no complete file in the inbox"
        time.sleep(0.02)
    consumer.process(job)
