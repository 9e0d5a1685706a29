"""Shared fixtures: temp folder sets, and a rule that the slow tiers may not skip silently in CI."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.corpus import corpus_available
from tests.support.daemon import Folders

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
