"""How new files are noticed, in a real daemon: the observer it chose is said in the log, and the
polling observer wakes it for a new file. The choice itself (by filesystem type, from a mounts
table) is tests/unit/test_watch_choice.py."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from transcribed.intake.watcher import filesystem_type

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s


@pytest.mark.usefixtures("corpus")
def test_auto_on_this_local_disk_uses_inotify_and_logs_its_choice(folders: Folders) -> None:
    """The daemon's log names the observer and the reason for it."""
    with DaemonProcess(folders.config, engine="fake") as daemon:
        event = daemon.wait_for("watcher.started")
        assert daemon.stop() == 0
    assert event["observer"] == "InotifyObserver" and event["polling"] is False
    assert event["reason"] == f"the inbox is on {filesystem_type(folders.inbox)}"


@pytest.mark.usefixtures("corpus")
def test_the_polling_observer_wakes_the_daemon_for_a_new_file_without_a_rescan(folders: Folders) -> None:
    """watch.polling true: a file renamed in is noticed by polling, long before any rescan."""
    folders.write_config(watch={"polling": True, "poll_interval_seconds": 0.2, "settle_seconds": 0.3,
                                "rescan_seconds": 600})
    with DaemonProcess(folders.config, engine="fake") as daemon:
        event = daemon.wait_for("watcher.started")
        assert event["observer"] == "PollingObserver" and event["reason"] == "watch.polling is true"
        staging = folders.root / "staging"
        staging.mkdir()
        shutil.copy(corpus_dir() / SHORT, staging / "polled.wav")
        os.rename(staging / "polled.wav", folders.inbox / "polled.wav")
        delivered = time.monotonic()
        wait_until((folders.done / "polled.wav").exists, 30, "polled.wav in done/")
        latency = time.monotonic() - delivered
        assert daemon.stop() == 0
    # Without the observer the consumer would only look again at its 5 s heartbeat.
    assert latency < 4.0, f"took {latency:.1f} s"
    result = json.loads((folders.outbox / "polled.json").read_text())
    assert result["transcribed"]["source"] == "polled.wav"
