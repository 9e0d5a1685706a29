"""Durable file operations: fsync, atomic replace, and moves and copies that never overwrite.

Everything the spool does to the folders goes through these few functions, so the promise "no
file is ever lost or overwritten" rests on a page of code.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import json
import os
import secrets
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import storage_fault

#: Errors of filesystems that have no hard links (some SMB/FUSE mounts): fall back to rename.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
#: What a share answers while it is away (its server down, its mount hung): not the file's fault.
UNREACHABLE = frozenset({errno.EIO, errno.ENOTCONN, errno.ETIMEDOUT, errno.ESTALE, errno.EHOSTDOWN,
                         errno.EHOSTUNREACH, errno.ECONNABORTED, errno.ECONNRESET})

#: Crash points for tests, from $TRANSCRIBED_FAILPOINTS: "name" or "name:N", comma-separated.
#: The Nth time (default 1st) the process passes point `name`, it kills itself with SIGKILL,
#: exactly as a power cut or the OOM killer would stop it there. Unset in production.
FAILPOINTS_ENV = "TRANSCRIBED_FAILPOINTS"
_failpoints: dict[str, int] = {}
for _item in filter(None, os.environ.get(FAILPOINTS_ENV, "").split(",")):
    _name, _, _count = _item.strip().partition(":")
    _failpoints[_name] = int(_count or 1)


def failpoint(name: str) -> None:
    """Die here with SIGKILL if $TRANSCRIBED_FAILPOINTS says so (tests of crash recovery)."""
    if name in _failpoints:
        _failpoints[name] -= 1
        if _failpoints[name] == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) survive a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return  # a directory that cannot be opened (some network mounts, a link): nothing to do
    try:
        os.fsync(fd)
    except OSError:
        pass  # EINVAL on filesystems that do not sync directories
    finally:
        os.close(fd)


@contextlib.contextmanager
def own_write(folder: Path) -> Iterator[None]:
    """Around a write of the daemon's own into `folder`: a full, over-quota or read-only
    filesystem (ENOSPC, EDQUOT, EROFS) is raised as `errors.StorageFault`, which no job is blamed
    for; any other error as it is."""
    try:
        yield
    except OSError as exc:
        fault = storage_fault(exc, folder)
        if fault is None or fault is exc:
            raise
        raise fault from exc


def write_file_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: readers see the old or the new content, never a mix. A full,
    over-quota or read-only filesystem raises `errors.StorageFault`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with own_write(path.parent):
        try:
            with open(tmp, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a disk that filled up mid-write leaves no litter
            raise
    fsync_dir(path.parent)


def to_json(data: Any, indent: int | None = None, **_renderer_options: Any) -> str:
    """JSON text that is valid UTF-8: readable as it is, escaped only where a file name from
    another system carries bytes that are not UTF-8 (Python keeps those as lone surrogates), so
    such a name survives the round trip exactly. Also structlog's JSON serializer."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=indent, ensure_ascii=True, default=str)
    return text


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically and durably."""
    write_file_atomic(path, to_json(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """The JSON content of `path`."""
    return json.loads(path.read_text(encoding="utf-8"))


def fsync_file(path: Path) -> None:
    """Flush a file's content to disk (a file we may not read, e.g. mode 000, is left as it is).

    Only a regular file is opened, never through a link and never waiting: a FIFO an inbox
    writer left (opened for reading, it waits for a writer for ever) or a device node is moved
    as it is, with nothing to flush; one swapped in after the `lstat` is refused by the open's
    O_NOFOLLOW, or cannot block it (O_NONBLOCK) and is not synced (fstat)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def move_no_clobber(src: Path, dst: Path) -> bool:
    """Move `src` to `dst` unless `dst` exists; True once `src` is at `dst`.

    A hard link then unlink is atomic and refuses to overwrite; a crash between the two leaves
    both names on one inode, which a second call recognises and finishes. Filesystems without
    hard links fall back to check-then-rename, which has a tiny race window (said in README).
    """
    if not os.path.lexists(src):
        return os.path.lexists(dst)  # finished by an earlier call
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        if not _same_file(src, dst):
            return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(dst):
            return False
        os.rename(src, dst)
        failpoint("move")
        return True
    failpoint("link")
    os.unlink(src)
    failpoint("move")
    return True


def temporary_beside(dst: Path) -> Path:
    """A hidden name in the destination's folder that no scan, media server or user takes."""
    return dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")


def copy_no_clobber(src: Path, dst: Path) -> bool:
    """Copy `src` to `dst` (another filesystem: a library elsewhere than the state folder) unless
    `dst` exists, then remove `src`; True once the content of `src` is at `dst`.

    The copy goes to a hidden temporary name in the destination's own folder, is flushed, then
    linked to its real name, which refuses to overwrite; the temporary name goes. Idempotent: a
    crash anywhere is finished by calling again (a destination whose content equals `src` counts
    as placed)."""
    if not os.path.lexists(src):
        return os.path.lexists(dst)  # finished by an earlier call
    if os.path.lexists(dst):
        return _same_content_then_drop(src, dst)
    tmp = temporary_beside(dst)
    try:
        shutil.copyfile(src, tmp)
        fsync_file(tmp)
        placed = _link_no_clobber(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(dst.parent)
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
        os.rename(tmp, dst)  # no hard links here: a tiny window, as move_no_clobber's
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


def _same_file(a: Path, b: Path) -> bool:
    """Are `a` and `b` two names of one inode (a link whose unlink a crash prevented)?"""
    sa, sb = os.lstat(a), os.lstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def reachable(path: Path) -> bool | None:
    """Does `path` exist (the entry itself: a link to nothing exists)? None when that cannot be
    told (the share it is on is away)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None
    return True
