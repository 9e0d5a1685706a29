"""How new files are noticed: inotify on local disks, polling where inotify is blind (network
shares), chosen by `watch.polling` (auto, true, false), and said in the log."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from transcribed.watcher import choose_polling, filesystem_type

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s


def _mounts(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    table = tmp_path / "mounts"
    table.write_text("".join(f"src {point} {fstype} rw 0 0\n" for point, fstype in
                             [("/", "ext4"), *entries]))
    return table


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse.rclone",
                                    "fuse", "9p", "ceph", "glusterfs", "virtiofs"])
def test_auto_polls_when_the_inbox_is_on_a_network_filesystem_and_says_why(tmp_path: Path, fstype: str) -> None:
    """inotify sees nothing another machine writes there, so auto picks the polling observer."""
    mounts = _mounts(tmp_path, ("/mnt/share", fstype))
    polling, reason = choose_polling(Path("/mnt/share/inbox"), "auto", mounts)
    assert polling is True
    assert fstype in reason and "inotify misses" in reason


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay"])
def test_auto_uses_inotify_on_a_local_filesystem(tmp_path: Path, fstype: str) -> None:
    """Local disks (and a container's overlay) deliver inotify events."""
    mounts = _mounts(tmp_path, ("/data", fstype))
    assert choose_polling(Path("/data/inbox"), "auto", mounts) == (False, f"the inbox is on {fstype}")


def test_the_longest_mount_point_decides_even_with_escaped_spaces(tmp_path: Path) -> None:
    """/mnt/nas share (a space, written \\040 by the kernel) on nfs4 inside a local /mnt."""
    mounts = _mounts(tmp_path, ("/mnt", "ext4"), ("/mnt/nas\\040share", "nfs4"))
    assert filesystem_type(Path("/mnt/nas share/inbox"), mounts) == "nfs4"
    assert filesystem_type(Path("/mnt/nasshare/inbox"), mounts) == "ext4"


def test_true_and_false_override_auto(tmp_path: Path) -> None:
    """An explicit setting wins whatever the filesystem."""
    mounts = _mounts(tmp_path, ("/mnt/share", "nfs4"))
    assert choose_polling(Path("/mnt/share"), False, mounts) == (False, "watch.polling is false")
    assert choose_polling(Path("/data"), True, mounts) == (True, "watch.polling is true")


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
