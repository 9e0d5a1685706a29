"""tests/support/smallfs.py's loop-mounted filesystems (mkfs runs as a child process): a full
ext4 refuses a mkdir too, ext4 with few inodes, and a btrfs quota that answers EDQUOT."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from tests.support.smallfs import btrfs_quota, ext4_image

MiB = 1 << 20


def errno_of(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"


def write(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        file.write(b"x" * size)
        file.flush()
        os.fsync(file.fileno())


def atomic_write(path: Path, size: int) -> None:
    """The daemon's durable.write_file_atomic: a temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp, size)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
