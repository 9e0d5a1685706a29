"""tests/support/smallfs.py's own tests, for its tmpfs (mounted in this process, no process
started): fill, free, inodes, read-only and back, the over-mount, and nothing left mounted. The
loop-mounted ext4 and btrfs run mkfs: tests/integration/test_smallfs.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import smallfs
from tests.support.smallfs import MiB, atomic_write, errno_of, tmpfs, write


def test_a_full_tmpfs_refuses_data_but_takes_names_and_comes_back_at_once() -> None:
    with tmpfs(8 * MiB) as fs:
        (fs.root / "state").mkdir()
        atomic_write(fs.root / "state" / "job.json", 2000)
        assert fs.fill() == 0
        assert errno_of(lambda: atomic_write(fs.root / "state" / "job.json", 2000)) == "ENOSPC"
        assert (fs.root / "state" / "job.json").stat().st_size == 2000  # the old record stands
        assert errno_of(lambda: (fs.root / "state" / "empty").touch()) == "ok"
        assert errno_of(lambda: (fs.root / "state" / "d").mkdir()) == "ok"
        assert errno_of(lambda: os.rename(fs.root / "state" / "empty", fs.root / "e2")) == "ok"
        fs.free()
        assert fs.free_bytes > 7 * MiB
        assert errno_of(lambda: atomic_write(fs.root / "state" / "job.json", 2000)) == "ok"


def test_fill_leaves_what_it_is_asked_to_leave() -> None:
    with tmpfs(8 * MiB) as fs:
        left = fs.fill(leave_bytes=100_000)
        assert 100_000 <= left < 100_000 + fs.block_size
        write(fs.root / "fits", 90_000)
        assert errno_of(lambda: write(fs.root / "does_not_fit", 64_000)) == "ENOSPC"
        fs.free()
        assert fs.fill(leave_bytes=0) == 0  # again, after a free
        fs.free()


def test_no_inodes_refuse_every_new_name_while_blocks_remain() -> None:
    with tmpfs(8 * MiB, inodes=64) as fs:
        write(fs.root / "existing", 10)
        made = fs.exhaust_inodes()
        assert 0 < made < 64 and fs.free_bytes > 7 * MiB and fs.free_inodes == 0
        assert errno_of(lambda: (fs.root / "new").touch()) == "ENOSPC"
        assert errno_of(lambda: (fs.root / "dir").mkdir()) == "ENOSPC"
        with open(fs.root / "existing", "ab") as file:
            file.write(b"more")  # into an inode it has
        fs.free()
        assert errno_of(lambda: (fs.root / "new").touch()) == "ok"


def test_read_only_and_back() -> None:
    with tmpfs(4 * MiB) as fs:
        write(fs.root / "a", 10)
        fs.remount_readonly()
        assert fs.read_only
        assert errno_of(lambda: write(fs.root / "b", 10)) == "EROFS"
        assert errno_of(lambda: os.rename(fs.root / "a", fs.root / "c")) == "EROFS"
        assert (fs.root / "a").read_bytes() == b"x" * 10  # still readable
        fs.remount_readwrite()
        assert not fs.read_only
        write(fs.root / "b", 10)


def test_a_writer_holding_a_file_blocks_a_remount_but_not_an_overmount() -> None:
    with tmpfs(4 * MiB) as fs, open(fs.root / "job.log", "a") as held:
        with pytest.raises(AssertionError, match="job.log"):
            fs.remount_readonly(timeout=0.3)
        fs.remount_readonly(overmount=True)
        assert fs.read_only
        assert errno_of(lambda: write(fs.root / "new", 10)) == "EROFS"
        held.write("the old descriptor still writes\n")
        held.flush()
        fs.remount_readwrite()
        write(fs.root / "new", 10)


def test_without_root_it_skips_and_in_ci_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(smallfs, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="needs root"), tmpfs(MiB):
        pass
    monkeypatch.setattr(smallfs, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="needs root"), tmpfs(MiB):
        pass


def test_nothing_is_left_mounted(tmp_path: Path) -> None:
    with tmpfs(MiB, base=tmp_path) as fs:
        point = fs.mount_point
        fs.remount_readonly(overmount=True)
    assert not point.exists()
    assert str(point) not in Path("/proc/self/mountinfo").read_text()
