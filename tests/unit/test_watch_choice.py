"""Which observer watches the inbox: inotify on local disks, polling where inotify is blind
(network shares), chosen by `watch.polling` (auto, true, false) from a mounts table. Moved from
tests/integration/test_watcher.py (pure: no daemon, no observer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribed.intake.watcher import choose_polling, filesystem_type


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
