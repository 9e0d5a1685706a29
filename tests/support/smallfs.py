"""A real small filesystem for tests of a full, read-only or over-quota disk (tests/support/smallfs.py).

The daemon's writes fail for reasons that say nothing about its input: no space (ENOSPC), no
inodes (ENOSPC too), a quota (EDQUOT), a read-only filesystem (EROFS). Mocking `open` does not
show what a kernel answers, nor where (a tmpfs takes an empty file, a mkdir and a rename when its
blocks are gone; ext4 refuses the mkdir; btrfs refuses even a truncate over its quota), so these
tests use a real filesystem, filled for real:

- `tmpfs(size)`: a tmpfs of its own, mounted with mount(2) through ctypes, in-process: no child
  process, so the unit tier (tests/unit/conftest.py forbids them) may use it.
- `ext4_image(size)`: an ext4 image made by mkfs.ext4 and loop-mounted (`mount -o loop`): the
  on-disk filesystem of most shares. It starts processes: integration tier only.
- `btrfs_quota(size)`: a loop-mounted btrfs with quotas on, and `root` a subvolume whose qgroup
  limit `limit_quota` lowers and `lift_quota` removes: EDQUOT for real. The kernel here lacks the
  quota formats ext4 and tmpfs need (CONFIG_QFMT_V2, CONFIG_TMPFS_QUOTA); btrfs qgroups need none.
  Integration tier only; needs btrfs-progs.

Each yields a `SmallFs` whose `fill(leave_bytes)`, `free()`, `exhaust_inodes()`,
`remount_readonly()` and `remount_readwrite()` bring a condition about and end it. All of it needs
root (CAP_SYS_ADMIN for mount(2)): without it, or where mounting is refused (a container), the
test is skipped saying why, except in CI ($CI set), where it fails: CI runs as root on a machine
that can do all of this, so a skip there would hide a lost test.

What each condition answers (measured on this project's machines, kernel 6.18):

| condition          | write | new file | empty file | mkdir  | rename | fsync | unlink |
|--------------------|-------|----------|------------|--------|--------|-------|--------|
| tmpfs, no blocks   | ENOSPC| ENOSPC   | ok         | ok     | ok     | ok    | ok     |
| ext4, no blocks    | ENOSPC| ENOSPC   | ok         | ENOSPC | ok     | ok    | ok     |
| no inodes (both)   | ok*   | ENOSPC   | ENOSPC     | ENOSPC | ok     | ok    | ok     |
| btrfs over quota   | EDQUOT| EDQUOT   | EDQUOT     | EDQUOT | EDQUOT | ok    | ok     |
| read-only (all)    | EROFS | EROFS    | EROFS      | EROFS  | EROFS  | EROFS | EROFS  |

(* into blocks the file has.) A write into the last partly used block or page may be short rather
than fail: os.write returns fewer bytes, and only the next call raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))

#: mount(2) flags and umount2(2)'s lazy detach (linux/mount.h).
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MNT_DETACH = 2

#: The errors of a full, over-quota or read-only filesystem.
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

#: Names of the helper's own files, in the filesystem's root (outside the folders under test).
FILLER = ".smallfs-filler"
INODE_FILLERS = ".smallfs-inodes"

#: What the loop-mounted kinds need, by command, with the Debian package that provides it.
TOOLS = {"ext4": {"mkfs.ext4": "e2fsprogs", "mount": "mount", "umount": "mount"},
         "btrfs": {"mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs", "mount": "mount",
                   "umount": "mount"}}
#: Where mkfs and friends live when /usr/sbin is not on PATH.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
#: mkfs.btrfs refuses smaller devices with its default profile.
BTRFS_MIN_BYTES = 128 << 20

# The libc already loaded: ctypes.util.find_library("c") would run ldconfig, a child process.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def unavailable(reason: str) -> None:
    """Skip the test saying why; in CI fail it instead (CI can mount: a skip would hide a test)."""
    if IN_CI:
        pytest.fail(f"{reason} (CI runs as root on a machine that can mount: this must work there)",
                    pytrace=False)
    pytest.skip(reason)


def mount(source: str | None, target: Path, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2), in this process; OSError with the errno on failure."""
    def b(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)
    if _libc.mount(b(source), os.fsencode(target), b(fstype), flags, b(data)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


def unmount(target: Path, flags: int = 0) -> None:
    """umount2(2), in this process (MNT_DETACH: lazily, even while files on it are open)."""
    if _libc.umount2(os.fsencode(target), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


@dataclass
class SmallFs:
    """A mounted small filesystem, and the conditions a test brings about on it."""

    #: Where it is mounted.
    mount_point: Path
    #: "tmpfs", "ext4" or "btrfs".
    kind: str
    #: Where a test puts its folders: the mount point, or (btrfs) the subvolume under quota.
    root: Path
    _overmounted: bool = field(default=False, repr=False)
    _quota_limited: bool = field(default=False, repr=False)

    # --- what is left -------------------------------------------------------------------------

    @property
    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use (f_bavail: ext4 keeps some clusters back
        even from root, so f_bfree says more than can be written). A quota is not seen here."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    @property
    def free_inodes(self) -> int:
        return os.statvfs(self.root).f_favail

    @property
    def block_size(self) -> int:
        return os.statvfs(self.root).f_frsize

    @property
    def read_only(self) -> bool:
        return bool(os.statvfs(self.root).f_flag & os.ST_RDONLY)

    # --- full, and not --------------------------------------------------------------------------

    def fill(self, leave_bytes: int = 0) -> int:
        """Write a filler file until the filesystem refuses (ENOSPC, EDQUOT), then give back
        `leave_bytes` (rounded up to whole blocks); returns the bytes then free. Call it again
        to take what was freed since (a job folder removed). A quota on btrfs is best reached
        with `limit_quota`: its accounting lags the writes."""
        path = self.mount_point / FILLER
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            for chunk in (1 << 20, 64 << 10, self.block_size):
                block = b"\0" * chunk
                while True:
                    try:
                        if os.write(fd, block) < chunk:
                            break  # short: the next write would fail; try a smaller chunk
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                            raise
                        break
            if leave_bytes > 0:
                blocks = -(-leave_bytes // self.block_size)
                size = os.fstat(fd).st_size
                os.ftruncate(fd, max(0, size - blocks * self.block_size))
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
        return self.free_bytes

    def exhaust_inodes(self) -> int:
        """Create empty files until no inode is left (ENOSPC for every new name, file or
        folder, while blocks remain); returns how many were made. `free()` removes them."""
        folder = self.mount_point / INODE_FILLERS
        folder.mkdir(exist_ok=True)
        made = 0
        while True:
            try:
                os.close(os.open(folder / str(made), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return made
            made += 1

    def free(self) -> None:
        """End a `fill` or `exhaust_inodes`: the fillers are removed (unlinked, not truncated:
        btrfs refuses a truncate over its quota)."""
        (self.mount_point / FILLER).unlink(missing_ok=True)
        shutil.rmtree(self.mount_point / INODE_FILLERS, ignore_errors=True)

    # --- read-only, and back --------------------------------------------------------------------

    def remount_readonly(self, overmount: bool = False, timeout: float = 10.0) -> None:
        """Make the filesystem read-only: every write by path answers EROFS.

        A plain remount (the default) is what an admin or ext4's errors=remount-ro does, but the
        kernel refuses it (EBUSY) while any file on it is open for writing: the daemon keeps a
        job's log open while the job runs. It is tried again until `timeout`, and fails naming
        the files held open. `overmount=True` stacks a read-only bind mount of the filesystem on
        its own mount point instead, which never waits: every path opened from then on is
        read-only, while a file opened before stays writable through its old descriptor (unlike
        a real read-only filesystem)."""
        if overmount:
            mount(str(self.mount_point), self.mount_point, None, MS_BIND)
            self._overmounted = True
            mount(None, self.mount_point, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                mount(None, self.mount_point, None, MS_REMOUNT | MS_RDONLY)
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                    writers = open_for_writing(self.mount_point)
                    raise AssertionError(
                        f"cannot remount {self.mount_point} read-only ({exc.strerror}); open for "
                        f"writing: {', '.join(writers) or 'nothing seen'} (use overmount=True)"
                    ) from exc
                time.sleep(0.05)

    def remount_readwrite(self) -> None:
        """End `remount_readonly`: writable again, with what it held."""
        if self._overmounted:
            unmount(self.mount_point, MNT_DETACH)
            self._overmounted = False
        else:
            mount(None, self.mount_point, None, MS_REMOUNT)

    # --- quota (btrfs) --------------------------------------------------------------------------

    def quota_used(self) -> int:
        """Bytes the subvolume's qgroup counts now (after a sync: qgroups count at commits)."""
        self._require_btrfs()
        _run(["btrfs", "filesystem", "sync", str(self.mount_point)])
        out = _run(["btrfs", "qgroup", "show", "--raw", "-r", str(self.mount_point)])
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == self._qgroup():
                return int(parts[1])  # referenced bytes
        raise AssertionError(f"no qgroup {self._qgroup()} in:\n{out}")

    def limit_quota(self, leave_bytes: int = 0) -> int:
        """Set the subvolume's limit to what it uses now plus `leave_bytes`: over quota (EDQUOT)
        once that is written. Returns the limit."""
        limit = self.quota_used() + leave_bytes
        self._limit(str(max(limit, 4096)))
        self._quota_limited = True
        return limit

    def lift_quota(self) -> None:
        """No limit any more: writes go through at once (no sync needed)."""
        self._require_btrfs()
        self._limit("none")
        self._quota_limited = False

    def _limit(self, value: str) -> None:
        # By qgroup id, through the top level: asked through the subvolume itself, the change
        # is a transaction charged to that subvolume, which its own full quota refuses (EDQUOT).
        _run(["btrfs", "qgroup", "limit", value, self._qgroup(), str(self.mount_point)])

    def _qgroup(self) -> str:
        info = _run(["btrfs", "subvolume", "show", str(self.root)])
        ident = next(line.split(":")[1].strip() for line in info.splitlines()
                     if line.strip().startswith("Subvolume ID"))
        return f"0/{ident}"

    def _require_btrfs(self) -> None:
        if self.kind != "btrfs":
            raise AssertionError(f"quotas need btrfs_quota(), not {self.kind}: this kernel has no "
                                 "quota formats for ext4 or tmpfs (CONFIG_QFMT_V2, CONFIG_TMPFS_QUOTA)")

    def _release(self) -> None:
        """Undo every condition and unmount, lazily (a daemon killed mid-test may hold files)."""
        if self._overmounted:
            with contextlib.suppress(OSError):
                unmount(self.mount_point, MNT_DETACH)
            self._overmounted = False
        with contextlib.suppress(OSError):
            unmount(self.mount_point, MNT_DETACH)


# --- the filesystems -----------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(size: int, inodes: int | None = None, base: Path | None = None) -> Iterator[SmallFs]:
    """A tmpfs of `size` bytes (and at most `inodes` inodes), mounted in-process (no child
    process: the unit tier may use it) on a new folder in `base` (the temp dir by default)."""
    _need_root()
    point = Path(tempfile.mkdtemp(prefix="smallfs-", dir=base))
    options = f"size={size},mode=0755" + (f",nr_inodes={inodes}" if inodes else "")
    try:
        mount("tmpfs", point, "tmpfs", 0, options)
    except OSError as exc:
        point.rmdir()
        unavailable(f"cannot mount a tmpfs ({exc.strerror}): not allowed here (a container "
                    "without CAP_SYS_ADMIN?)")
    fs = SmallFs(point, "tmpfs", point)
    try:
        yield fs
    finally:
        fs._release()
        with contextlib.suppress(OSError):
            point.rmdir()


@contextlib.contextmanager
def ext4_image(size: int, inodes: int | None = None, base: Path | None = None) -> Iterator[SmallFs]:
    """An ext4 filesystem of `size` bytes in a sparse image file, loop-mounted (mkfs.ext4 and
    mount run as child processes: integration tier only). No root reserve (-m 0), so root fills
    it as any user would; ext4 still keeps a few clusters back (f_bfree > f_bavail when full)."""
    _need_root()
    _need_tools("ext4")
    folder = Path(tempfile.mkdtemp(prefix="smallfs-", dir=base))
    image, point = folder / "ext4.img", folder / "mnt"
    point.mkdir()
    with open(image, "wb") as file:
        file.truncate(size)
    mkfs = ["mkfs.ext4", "-q", "-F", "-m", "0", *(["-N", str(inodes)] if inodes else []), str(image)]
    with _loop_mounted(folder, image, point, "ext4", mkfs) as fs:
        yield fs


@contextlib.contextmanager
def btrfs_quota(size: int = BTRFS_MIN_BYTES, base: Path | None = None) -> Iterator[SmallFs]:
    """A loop-mounted btrfs with quotas on; `root` is a subvolume whose qgroup `limit_quota`
    limits (integration tier only; btrfs-progs must be installed)."""
    _need_root()
    _need_tools("btrfs")
    folder = Path(tempfile.mkdtemp(prefix="smallfs-", dir=base))
    image, point = folder / "btrfs.img", folder / "mnt"
    point.mkdir()
    with open(image, "wb") as file:
        file.truncate(max(size, BTRFS_MIN_BYTES))
    with _loop_mounted(folder, image, point, "btrfs", ["mkfs.btrfs", "-q", "-f", str(image)]) as fs:
        _run(["btrfs", "quota", "enable", str(point)])
        _run(["btrfs", "subvolume", "create", str(point / "vol")])
        fs.root = point / "vol"
        try:
            yield fs
        finally:
            if fs._quota_limited:
                with contextlib.suppress(AssertionError):
                    fs.lift_quota()


@contextlib.contextmanager
def _loop_mounted(folder: Path, image: Path, point: Path, kind: str,
                  mkfs: list[str]) -> Iterator[SmallFs]:
    """Make the filesystem in `image`, loop-mount it on `point`, yield it, then unmount (the
    loop device goes with the last user: mount -o loop sets autoclear) and remove `folder`."""
    try:
        _run(mkfs)
        mounted = subprocess.run([_tool("mount"), "-o", "loop", str(image), str(point)],
                                 capture_output=True, text=True, check=False)
        if mounted.returncode != 0:
            unavailable(f"cannot loop-mount a {kind} image: {mounted.stderr.strip()}")
        fs = SmallFs(point, kind, point)
        try:
            yield fs
        finally:
            fs._release()
    finally:
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            point.rmdir()
            folder.rmdir()


# --- helpers -------------------------------------------------------------------------------------

def open_for_writing(mount_point: Path) -> list[str]:
    """Files under `mount_point` some process holds open for writing (what makes a remount to
    read-only answer EBUSY), as "path (pid N)"."""
    prefix = str(mount_point).rstrip("/") + "/"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if not target.startswith(prefix):
                        continue
                    flags = int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
                    if flags & os.O_ACCMODE != os.O_RDONLY or target.endswith(" (deleted)"):
                        found.append(f"{target} (pid {pid})")
    return found


def _need_root() -> None:
    if os.geteuid() != 0:
        unavailable("a small filesystem of its own needs root (mount(2) needs CAP_SYS_ADMIN)")


def _need_tools(kind: str) -> None:
    missing = [f"{tool} (Debian package {package})" for tool, package in TOOLS[kind].items()
               if shutil.which(tool, path=SBIN_PATH) is None]
    if not os.path.exists("/dev/loop-control") and not os.path.exists("/dev/loop0"):
        missing.append("loop devices (/dev/loop-control)")
    if missing:
        unavailable(f"a loop-mounted {kind} needs: {', '.join(missing)}")


def _tool(name: str) -> str:
    """The full path of an admin command (in /usr/sbin, which a test's PATH may lack)."""
    return shutil.which(name, path=SBIN_PATH) or name


def _run(argv: list[str]) -> str:
    """Run an admin command (mkfs, btrfs); its output, or AssertionError with its stderr."""
    done = subprocess.run([_tool(argv[0]), *argv[1:]], capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": SBIN_PATH})
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# --- what the tests of a small filesystem do on it ------------------------------------------------

MiB = 1 << 20


def errno_of(action: Callable[[], object]) -> str:
    """The name of the errno `action` fails with, or "ok"."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"


def write(path: Path, size: int) -> None:
    """`size` bytes into `path`, flushed to the filesystem."""
    with open(path, "wb") as file:
        file.write(b"x" * size)
        file.flush()
        os.fsync(file.fileno())


def atomic_write(path: Path, size: int) -> None:
    """As the daemon's durable.write_file_atomic writes: a temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp, size)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
