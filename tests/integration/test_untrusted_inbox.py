"""Whoever can write to the inbox is untrusted (issue 13): symlinks, FIFOs, sockets, swapped
files, floods, deep trees, long names, oversized sidecars and audio. Each test runs the real
daemon (fake engine, real decoding) on real special files, and checks that it says what it
refused and keeps taking the next good file within seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s

pytestmark = pytest.mark.usefixtures("corpus")

#: How long the next good file may take once a hostile one was dropped.
NEXT_FILE_SECONDS = 15


def _deliver(folders: Folders, name: str, make: Callable[[Path], object]) -> Path:
    """Make the entry beside the inbox, then rename it in (complete at once)."""
    staging = folders.root / "staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    make(staging / "f")
    target = folders.inbox / name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging / "f", target)
    return target


def _copy_of(relpath: str) -> Callable[[Path], object]:
    return lambda path: shutil.copy(corpus_dir() / relpath, path)


def _report(folders: Folders, name: str, timeout: float = 30) -> dict:
    """The error report, once the source (or the link, FIFO, socket) lies beside it."""
    path = folders.failed / f"{name}.error.json"
    wait_until(lambda: path.exists() and os.path.lexists(folders.failed / name), timeout,
               f"{name} and its report in failed/")
    return json.loads(path.read_text())


def _still_serving(folders: Folders) -> None:
    """The next good file is transcribed within seconds."""
    name = f"next-{uuid.uuid4().hex[:8]}.wav"
    _deliver(folders, name, _copy_of(SHORT))
    wait_until((folders.done / name).exists, NEXT_FILE_SECONDS, f"the next good file {name} in done/")


@pytest.fixture
def daemon(folders: Folders) -> Iterator[DaemonProcess]:
    with DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": "{}"}) as running:
        yield running


# --- special files -----------------------------------------------------------------------------

def test_a_fifo_goes_to_failed_as_not_a_regular_file_and_blocks_nothing(
        folders: Folders, daemon: DaemonProcess) -> None:
    """`mkfifo inbox/pipe.wav` once stopped the daemon for good (opened for reading, a FIFO
    waits for a writer): now it is moved to failed/ as it is, still a FIFO, and the daemon stops
    on SIGTERM at once."""
    _deliver(folders, "pipe.wav", os.mkfifo)
    report = _report(folders, "pipe.wav")
    assert report["error_kind"] == "not_a_regular_file" and "FIFO" in report["error"]
    assert stat.S_ISFIFO(os.lstat(folders.failed / "pipe.wav").st_mode)
    _still_serving(folders)
    assert daemon.stop(timeout=15) == 0
