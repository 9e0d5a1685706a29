"""Putting a result beside a library's media, on whatever filesystem the library is.

The spool's moves are renames and links inside one filesystem (`durable.move_no_clobber`). A
library is usually elsewhere (a NAS share, another disk) than the state folder where results are
staged, so a result crosses filesystems: it is copied to a hidden temporary name in the media's
own folder, flushed, then linked to its real name, which refuses to overwrite; the temporary name
goes. A subtitle already there is never replaced. Idempotent: a crash anywhere is finished by
calling again (a destination whose content equals the staged file counts as placed).
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import secrets
import shutil
from pathlib import Path

from .. import durable

#: Errors of filesystems without hard links (some SMB/FUSE mounts): check, then rename.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def temporary_beside(dst: Path) -> Path:
    """A hidden name in the destination's folder that no scan, media server or user takes."""
    return dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")


def copy_no_clobber(src: Path, dst: Path) -> bool:
    """Copy `src` to `dst` (another filesystem) unless `dst` exists, then remove `src`; True once
    the content of `src` is at `dst`."""
    if not os.path.lexists(src):
        return os.path.lexists(dst)  # finished by an earlier call
    if os.path.lexists(dst):
        return _same_content_then_drop(src, dst)
    tmp = temporary_beside(dst)
    try:
        shutil.copyfile(src, tmp)
        durable.fsync_file(tmp)
        placed = _link_no_clobber(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    durable.fsync_dir(dst.parent)
    if not placed:
        return _same_content_then_drop(src, dst)
    src.unlink()
    return True


def _link_no_clobber(tmp: Path, dst: Path) -> bool:
    try:
        os.link(tmp, dst, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS or os.path.lexists(dst):
            if exc.errno not in _NO_LINKS:
                raise
            return False
        os.rename(tmp, dst)  # no hard links here: a tiny window, as durable.move_no_clobber's
    return True


def _same_content_then_drop(src: Path, dst: Path) -> bool:
    """`dst` exists: ours already (a crash after the link), or someone else's (False)."""
    try:
        same = filecmp.cmp(src, dst, shallow=False)
    except OSError:
        return False
    if same:
        src.unlink()
    return same
