"""Durable file operations: fsync, atomic replace, and moves that never overwrite.

Everything the spool does to the folders goes through these few functions, so the promise "no
file is ever lost or overwritten" rests on a page of code.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

#: Errors of filesystems that have no hard links (some SMB/FUSE mounts): fall back to rename.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) survive a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # a directory that cannot be opened (some network mounts): nothing more to do
    try:
        os.fsync(fd)
    except OSError:
        pass  # EINVAL on filesystems that do not sync directories
    finally:
        os.close(fd)


def write_file_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically and durably."""
    write_file_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    """The JSON content of `path`."""
    return json.loads(path.read_text(encoding="utf-8"))


def fsync_file(path: Path) -> None:
    """Flush a file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_no_clobber(src: Path, dst: Path) -> bool:
    """Move `src` to `dst` unless `dst` exists; True once `src` is at `dst`.

    A hard link then unlink is atomic and refuses to overwrite; a crash between the two leaves
    both names on one inode, which a second call recognises and finishes. Filesystems without
    hard links fall back to check-then-rename, which has a tiny race window (said in README).
    """
    if not src.exists():
        return dst.exists()  # finished by an earlier call
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        if not os.path.samefile(src, dst):
            return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if dst.exists():
            return False
        os.rename(src, dst)
        return True
    os.unlink(src)
    return True
