"""Opening what an inbox writer left: only regular files, never through a link, never blocking.

Anyone who can write to the inbox is untrusted (docs/security.md). What they leave may be a
symbolic link to a recording only the daemon's user can read, a FIFO (opened for reading, it
waits for a writer for ever), a socket or a device node, and it may be swapped for one of those
between the scan that saw a regular file and the claim. So every check is on `lstat`, and every
open of a job's files goes through `open_regular`: `O_NOFOLLOW` (a link swapped in is refused by
the kernel at open, not by a check before it), `O_NONBLOCK` (a FIFO swapped in cannot block the
open), then `fstat` on the open descriptor: only a regular file is read, and `O_NONBLOCK` is
cleared before it is. A link is followed only with `input.follow_symlinks: true`, and only to a
target inside one of `input.symlink_roots`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import BadInput, unreadable

#: The report's kind for a link, FIFO, socket, device node or folder where a file was expected.
NOT_A_REGULAR_FILE = "not_a_regular_file"


@dataclass(frozen=True)
class LinkPolicy:
    """Which symbolic links may be followed: none by default; with `follow`, those whose target
    lies inside one of `roots` (folders the config's author named)."""

    follow: bool = False
    roots: tuple[Path, ...] = ()

    def target(self, link: Path) -> Path:
        """The resolved target of `link` when it may be followed; else BadInput saying why."""
        where = os.readlink(link) if os.path.islink(link) else "?"
        if not self.follow:
            raise BadInput(NOT_A_REGULAR_FILE, f"the file is a symbolic link (to {where}), and "
                           "links are not followed (input.follow_symlinks is false)")
        resolved = Path(os.path.realpath(link))
        if not any(resolved.is_relative_to(os.path.realpath(root)) for root in self.roots):
            raise BadInput(NOT_A_REGULAR_FILE, f"the file is a symbolic link to {where}, outside "
                           "the folders links may point into (input.symlink_roots)")
        return resolved


#: No link is ever followed.
NO_LINKS = LinkPolicy()


def kind_of(mode: int) -> str:
    """What an entry is, in words, from its `st_mode`."""
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"),
             (stat.S_ISREG, "a regular file"))
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def refuse_unless_regular(path: Path, policy: LinkPolicy = NO_LINKS) -> Path:
    """The path to open for `path`: itself when it is a regular file, a link's target where the
    policy allows; BadInput (`not_a_regular_file`, saying what it is) for anything else."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        path = policy.target(path)
        mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise BadInput(NOT_A_REGULAR_FILE, f"the file is {kind_of(mode)}, not a regular file; "
                       "it was not opened")
    return path


def open_regular(path: Path, policy: LinkPolicy = NO_LINKS) -> BinaryIO:
    """`path` opened for reading, if it is (still) a regular file; BadInput otherwise.

    The `lstat` check comes first so that a device node is never opened at all (opening some has
    effects: a tape rewinds); the open itself then refuses what was swapped in since.
    """
    try:
        target = refuse_unless_regular(path, policy)
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EMLINK):
            what = "a symbolic link" if exc.errno != errno.ENXIO else "a socket"
            raise BadInput(NOT_A_REGULAR_FILE, f"the file became {what} before it was opened; "
                           "it was not read") from None
        raise unreadable(exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BadInput(NOT_A_REGULAR_FILE, f"the file became {kind_of(mode)} before it was "
                           "opened; it was not read")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: Path, limit: int, policy: LinkPolicy = NO_LINKS) -> bytes:
    """The bytes of a small regular file; BadInput when it holds more than `limit` bytes (only
    `limit + 1` are ever read, whatever its size)."""
    with open_regular(path, policy) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise BadInput("too_large", f"the file is larger than {limit // 1024} KiB")
    return data
