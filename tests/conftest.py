"""Shared fixtures: temp folder sets, a rule that the slow tiers may not skip silently in CI, and
a rule that no test leaves a thread running."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.consumer import close_consumers
from tests.support.corpus import clip, corpus_available
from tests.support.daemon import Folders
from tests.support.media_forms import FORMS, SPEECH_CLIP, Matrix, build_matrix
from tests.support.threads import THREAD_GRACE_SECONDS, describe, threads_left_running

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


@pytest.fixture(autouse=True)
def no_thread_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a thread running (watchdog's test suite does the same).

    A thread that outlives its test keeps files open, writes into the next test's folders or
    logs, and hides a missing stop in the code or the test helper that started it. Threads that
    are ending get `THREAD_GRACE_SECONDS` to do so (joined with a deadline); the few a library
    keeps for the process's life are listed in tests/support/threads.py. Fixtures wider than a
    test (module, session) are set up before this one, so their threads are in `before`.
    """
    before = set(threading.enumerate())
    yield
    left = threads_left_running(before, THREAD_GRACE_SECONDS)
    if left:
        pytest.fail(f"{request.node.nodeid} left {len(left)} thread(s) running: {describe(left)}",
                    pytrace=False)


@pytest.fixture(autouse=True)
def close_test_consumers(no_thread_left_running: None) -> Iterator[None]:
    """Workers made in-process by tests.support.consumer.make_consumer are closed after each test
    (their prefetch thread pool shut down), before the thread check looks."""
    yield
    close_consumers()


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


@pytest.fixture(scope="session")
def media_matrix(corpus: None, tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """Every form of the conformance matrix (tests/support/media_forms.py) this machine can make,
    built once per session from one corpus clip. Without ffmpeg: a failure in CI, else a skip."""
    if shutil.which("ffmpeg") is None:
        if IN_CI:
            pytest.fail("ffmpeg is needed to make the media forms")
        pytest.skip("ffmpeg is not installed")
    return build_matrix(clip(SPEECH_CLIP).path, tmp_path_factory.mktemp("media-forms"), FORMS)
