"""Shared fixtures: temp folder sets, and a rule that the slow tiers may not skip silently in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.corpus import corpus_available
from tests.support.daemon import Folders

IN_CI = bool(os.environ.get("CI"))


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
