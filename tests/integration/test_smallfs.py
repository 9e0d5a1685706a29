"""tests/support/smallfs.py's loop-mounted filesystems (mkfs runs as a child process): a full
ext4 refuses a mkdir too, ext4 with few inodes, and a btrfs quota that answers EDQUOT."""

from __future__ import annotations

import os

from tests.support.smallfs import MiB, btrfs_quota, errno_of, ext4_image, write


def test_ext4_full_refuses_a_mkdir_too() -> None:
    with ext4_image(16 * MiB) as fs:
        assert fs.fill() == 0
        assert errno_of(lambda: write(fs.root / "new", 100)) == "ENOSPC"
        assert errno_of(lambda: (fs.root / "d").mkdir()) == "ENOSPC"
        assert errno_of(lambda: (fs.root / "empty").touch()) == "ok"
        st = os.statvfs(fs.root)
        assert st.f_bfree > st.f_bavail == 0  # ext4's reserved clusters, even with -m 0
        fs.free()
        write(fs.root / "new", 100)
        (fs.root / "d").mkdir()
        fs.remount_readonly()
        assert errno_of(lambda: write(fs.root / "x", 1)) == "EROFS"
        fs.remount_readwrite()


def test_ext4_with_few_inodes() -> None:
    with ext4_image(16 * MiB, inodes=64) as fs:
        fs.exhaust_inodes()
        assert errno_of(lambda: (fs.root / "new").touch()) == "ENOSPC"
        fs.free()
        (fs.root / "new").touch()


def test_a_btrfs_quota_answers_edquot_and_lifting_it_is_immediate() -> None:
    with btrfs_quota() as fs:
        write(fs.root / "before", 1000)
        fs.limit_quota(leave_bytes=0)
        assert errno_of(lambda: write(fs.root / "big", 4 * MiB)) == "EDQUOT"
        assert errno_of(lambda: (fs.root / "d").mkdir()) == "EDQUOT"
        assert errno_of(lambda: os.rename(fs.root / "before", fs.root / "after")) in ("ok", "EDQUOT")
        assert fs.free_bytes > 32 * MiB  # statvfs does not see a quota (about 47 MiB of 128 free)
        fs.lift_quota()
        write(fs.root / "big", 4 * MiB)
