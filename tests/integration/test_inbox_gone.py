"""An inbox that goes away under the running daemon and comes back (a share unmounted and mounted
again, or the folder removed and made anew): the daemon says so, and watches it again.

The observers end a watch whose folder is gone; without the re-watch the daemon would notice new
files only at its 5 s heartbeat's rescan. The same happens for real on sshfs in
test_share_sshfs.py; here it is the local disk, so it runs wherever the suite runs.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s

pytestmark = pytest.mark.usefixtures("corpus")


@pytest.mark.parametrize("polling", [True, False], ids=["polling", "inotify"])
def test_an_inbox_removed_and_made_again_is_reported_and_watched_again(
        folders: Folders, polling: bool) -> None:
    """inbox_gone when the folder goes, inbox_back when it returns; a file dropped then is
    noticed by the observer, long before the heartbeat's rescan."""
    folders.write_config(watch={"polling": polling, "poll_interval_seconds": 0.2, "settle_seconds": 0.3,
                                "rescan_seconds": 600})
    with DaemonProcess(folders.config, engine="fake") as daemon:
        daemon.wait_for("watcher.started")
        shutil.rmtree(folders.inbox)
        gone = daemon.wait_for("watcher.inbox_gone", timeout=10)
        folders.inbox.mkdir()
        daemon.wait_for("watcher.inbox_back", timeout=10)
        staging = folders.root / "staging"
        staging.mkdir()
        shutil.copy(corpus_dir() / SHORT, staging / "back.wav")
        os.rename(staging / "back.wav", folders.inbox / "back.wav")
        delivered = time.monotonic()
        wait_until((folders.done / "back.wav").exists, 30, "back.wav in done/")
        latency = time.monotonic() - delivered
        assert daemon.stop() == 0
    assert gone["inbox"] == str(folders.inbox) and gone["level"] == "warning"
    # Without a watch again the consumer would only look at its 5 s heartbeat.
    assert latency < 4.0, f"took {latency:.1f} s"
