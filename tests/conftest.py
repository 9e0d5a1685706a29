"""Shared fixtures: temp folder sets, a rule that the slow tiers may not skip silently in CI, and
a rule that no test leaves a thread running."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.corpus import corpus_available
from tests.support.daemon import Folders
from tests.support.worker import close_workers

IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults and a bare root logger.

    A test that runs daemon code in-process configures logging onto pytest's captured stdout,
    which is closed after that test; without this reset, the next test would log into it.
    """
    _reset_logging()
    yield
    _reset_logging()


def _reset_logging() -> None:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.captureWarnings(False)


#: How long the threads a test started may take to end once it is over (a reader whose process
#: just exited, an executor told to shut down, an observer that was stopped): a thread still
#: alive after that was left running by the test.
THREAD_GRACE_SECONDS = 5.0

#: Threads a library keeps for the life of the process, started by the first test that needs
#: them and never stopped: (name prefix, why it may stay).
LIFELONG_THREADS: tuple[tuple[str, str], ...] = (
    ("OtelBatchSpanRecordProcessor",
     "pyannote.audio.telemetry starts an OpenTelemetry span exporter when it is imported, even with "
     "its metrics disabled, and never shuts it down (TracerProvider(shutdown_on_exit=False))"),
)


@pytest.fixture(autouse=True)
def no_thread_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a thread running (watchdog's test suite does the same).

    A thread that outlives its test keeps files open, writes into the next test's folders or
    logs, and hides a missing stop in the code or the test helper that started it. Threads that
    are ending get `THREAD_GRACE_SECONDS` to do so (joined with a deadline). Fixtures wider than
    a test (module, session) are set up before this one, so their threads are in `before`.
    """
    before = set(threading.enumerate())
    yield
    left = _threads_still_running(before, time.monotonic() + THREAD_GRACE_SECONDS)
    if left:
        names = ", ".join(f"{thread.name} ({_target_of(thread)})" for thread in left)
        pytest.fail(f"{request.node.nodeid} left {len(left)} thread(s) running: {names}", pytrace=False)


@pytest.fixture(autouse=True)
def close_test_workers(no_thread_left_running: None) -> Iterator[None]:
    """Workers made in-process by tests.support.worker.make_worker are closed after each test
    (their prefetch thread pool shut down), before the thread check looks."""
    yield
    close_workers()


def _threads_still_running(before: set[threading.Thread], deadline: float) -> list[threading.Thread]:
    """The threads started since `before` that are still alive at `deadline`."""
    left = []
    for thread in threading.enumerate():
        if thread in before or _lifelong(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    return left


def _lifelong(thread: threading.Thread) -> bool:
    return any(thread.name.startswith(prefix) for prefix, _why in LIFELONG_THREADS)


def _target_of(thread: threading.Thread) -> str:
    """What the thread runs (its target's qualified name), to find who started it."""
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__qualname__
    return getattr(target, "__qualname__", repr(target))


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    """A fresh inbox/outbox/done/failed/state set with a config file (fast test timings)."""
    result = Folders(tmp_path / "t")
    result.write_config()
    return result


@pytest.fixture(scope="session")
def corpus() -> None:
    """The real-speech corpus in ../shared/corpus; in CI its absence is a failure, not a skip."""
    if not corpus_available():
        if IN_CI:
            pytest.fail("the speech corpus (../shared/corpus) is missing in CI")
        pytest.skip("the speech corpus (../shared/corpus) is not here")
