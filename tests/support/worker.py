"""The consumer in-process, on real temp folders: a Worker, its config and files to feed it.

For tests that drive `Worker.next_job` / `Worker.process` step by step (with the FakeEngine or a
subclass of it), where a daemon child process would hide the order of events.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.support.media import write_tone_wav
from transcribed.config import Config, parse_config, resolve_paths
from transcribed.engine.base import Engine
from transcribed.spool import Spool
from transcribed.watcher import Arrivals
from transcribed.worker import Worker


def make_config(root: Path, **sections: dict[str, Any]) -> Config:
    """A config with every folder under `root`, files complete at once, and `sections` on top."""
    data: dict[str, Any] = {"folders": {name: name for name in ("inbox", "outbox", "done", "failed", "state")},
                            "watch": {"settle_seconds": 0.01}, "jobs": {"retry_delay_seconds": 0.01}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return resolve_paths(parse_config(data), root)


#: Every Worker made by `make_worker` in the running test, closed by `close_workers` after it.
_made: list[Worker] = []


def make_worker(config: Config, engine: Engine) -> Worker:
    """A Worker on `config`'s folders, as service.py builds it (without its threads). Its decode
    ahead (a thread pool when overlap is on) is shut down after the test by `close_workers`
    (tests/conftest.py), as `Worker.run` does when it ends, for tests that never call `run`."""
    spool = Spool(config)
    spool.prepare()
    worker = Worker(config, spool, engine, Arrivals(config.watch.settle_seconds), threading.Event())
    _made.append(worker)
    return worker


def close_workers() -> None:
    """Stop the decode ahead of every worker the test made (their files are the test's own)."""
    while _made:
        worker = _made.pop()
        if worker.prefetch is not None:
            worker.prefetch.close()


def drop(config: Config, name: str, seconds: float = 1.0) -> Path:
    """A user copies a (tone) recording into the inbox."""
    return write_tone_wav(config.folders.inbox / name, seconds)


def process_next(worker: Worker) -> None:
    """Let the worker take the next complete file and run it, as its loop does."""
    deadline = time.monotonic() + 10
    while (job := worker.next_job()) is None:
        assert time.monotonic() < deadline, "the worker found no complete file in the inbox"
        time.sleep(0.02)
    worker.process(job)
