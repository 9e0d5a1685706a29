"""The inbox, read: which files in it are jobs, and the sidecars left without their audio.

Users copy files into `inbox/` (subfolders too). A file is taken once its name has a watched
extension and is neither hidden nor a temporary name (a copying program's `talk.mp3.part`). A
sidecar (spool/sidecars.py) whose audio never comes is a stray. Every other file will never be
taken (an extension not in `watch.extensions`, no extension): it is ignored, and `ignored()` says
why, so that nothing lies in the inbox unexplained. Hidden and temporary names are not ignored:
they wait to be renamed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..spool.sidecars import SIDECAR_SUFFIXES, audio_named_by

#: Names a copying program gives a file it has not finished (ignored until renamed).
TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart",
                      ".swp", "~")
#: Every folder of the inbox is listed again this often, whatever its mtime says.
FULL_WALK_SECONDS = 60.0
#: A folder whose mtime is this recent is listed again: a second change within the same tick of
#: a coarse filesystem clock (1-2 s on some SMB and FAT mounts) would not change it.
RACY_SECONDS = 3.0


@dataclass
class _Listing:
    """One folder's entries as last read, and the folder's identity and mtime then."""

    signature: tuple[int, int, int]  # st_dev, st_ino, st_mtime_ns
    files: list[str]
    #: Entries among `files` that are not regular files (links, FIFOs, sockets, device nodes).
    special: frozenset[str]
    folders: list[str]
    #: The paths of `files` the inbox takes, worked out on the first scan that needs them.
    wanted: list[Path] | None = None
    #: The paths of `files` the inbox will never take, and why (the same way).
    ignored: dict[Path, str] | None = None


class Inbox:
    """The inbox folder, read: the files it offers and the sidecars left without their audio.

    A scan does not read every folder each time: a folder is listed again only when its mtime
    (or identity) changed, or its mtime is so recent that a change in the same clock tick could
    hide behind it (as git treats a "racy" index entry), and every folder is listed again every
    `full_walk_seconds`. An entry added or removed changes its folder's mtime, so a scan of an
    idle inbox of 10 000 files is one `stat` per folder; a folder whose mtime a filesystem does
    not keep is still read on the full walk: a missed change costs latency, never a file.
    """

    def __init__(self, folder: Path, extensions: Iterable[str],
                 full_walk_seconds: float = FULL_WALK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.extensions = frozenset(extensions)
        self.full_walk_seconds = full_walk_seconds
        self.clock = clock
        self._listings: dict[Path, _Listing] = {}
        self._next_full_walk = 0.0

    def scan(self) -> list[Path]:
        """Every entry in the inbox that looks like audio or video and is not a temporary name,
        whatever its kind (a link or a FIFO is taken, never opened, and fails as
        not_a_regular_file)."""
        found: list[Path] = []
        for folder, _ in self._folders():
            listing = self._listings[folder]
            if listing.wanted is None:  # once per listing: a scan of an unchanged folder is free
                listing.wanted = [folder / name for name in listing.files if self.wants(name)]
            found += listing.wanted
        return found

    def not_regular(self) -> list[Path]:
        """The entries of the last scan with a wanted name that are not regular files (links,
        FIFOs, sockets, device nodes): they have nothing to settle, and may be taken at once."""
        return [folder / name for folder, listing in self._listings.items()
                for name in sorted(listing.special) if self.wants(name)]

    def ignored(self) -> dict[Path, str]:
        """The files of the last scan that will never be taken, each with the reason: not hidden,
        not a temporary name, not a sidecar of a name the inbox takes, and not taken by name."""
        found: dict[Path, str] = {}
        for folder, listing in self._listings.items():
            if listing.ignored is None:
                listing.ignored = {folder / name: why for name in listing.files
                                   if (why := self.why_ignored(name)) is not None}
            found.update(listing.ignored)
        return found

    def why_ignored(self, name: str) -> str | None:
        """Why a file of this name will never be taken; None when it is taken, waits (hidden, a
        temporary name) or is a sidecar of a name the inbox takes."""
        if self.wants(name) or _waits(name):
            return None
        audio = audio_named_by(name)
        if audio is not None and "." in audio:
            why = self.why_ignored(audio)
            return None if why is None else f"a sidecar of {audio!r}, a name the inbox never takes: {why}"
        extension = name.rpartition(".")[2].lower() if "." in name else ""
        if not extension:
            return ("it has no extension; the inbox takes only names ending in one of "
                    "watch.extensions")
        return (f"its extension .{extension} is not in watch.extensions (rename it, or add "
                f"{extension} to watch.extensions)")

    def stray_sidecars(self, older_than: float) -> list[Path]:
        """Sidecars in the inbox, untouched for `older_than` seconds, whose audio is not there,
        not even under a temporary name (`talk.mp3.part`) while it is being copied."""
        stray, now = [], time.time()
        for folder, names in self._folders():
            for name in names:
                audio = audio_named_by(name)
                if audio is None or not self.wants(audio) or _audio_on_its_way(audio, names):
                    continue
                with contextlib.suppress(OSError):
                    if now - os.lstat(folder / name).st_mtime >= older_than:
                        stray.append(folder / name)
        return stray

    def wants(self, name: str) -> bool:
        """Is this a file name the daemon takes (once it is complete)?"""
        if _waits(name):
            return False
        return name.rpartition(".")[2].lower() in self.extensions and "." in name

    def relative(self, path: Path) -> PurePosixPath:
        """A path in the inbox, relative to it (kept in outbox/, done/ and failed/)."""
        return PurePosixPath(path.relative_to(self.folder).as_posix())

    def _folders(self) -> Iterator[tuple[Path, list[str]]]:
        """Each folder of the inbox (hidden ones skipped; links to folders never followed) with
        its entry names, sorted: from the last listing where the folder has not changed."""
        now = self.clock()
        full = now >= self._next_full_walk
        if full:
            self._next_full_walk = now + self.full_walk_seconds
        seen: dict[Path, _Listing] = {}
        pending = [self.folder]
        while pending:
            folder = pending.pop()
            listing = self._listing(folder, fresh=full)
            if listing is None:
                continue
            seen[folder] = self._listings[folder] = listing
            yield folder, listing.files
            pending.extend(folder / name for name in reversed(listing.folders))
        self._listings = seen  # folders gone since are forgotten

    def _listing(self, folder: Path, fresh: bool) -> _Listing | None:
        """`folder`'s entries: read again unless its last listing is known to be current."""
        try:
            st = os.lstat(folder)
        except OSError:
            return None
        signature = (st.st_dev, st.st_ino, st.st_mtime_ns)
        known = self._listings.get(folder)
        racy = time.time() - st.st_mtime < RACY_SECONDS
        if known is not None and known.signature == signature and not (fresh or racy):
            return known
        return _read_folder(folder, signature)


def _read_folder(folder: Path, signature: tuple[int, int, int]) -> _Listing | None:
    """One `scandir` of `folder`: its entries by kind (from the directory itself, no stat each)."""
    files, special, folders = [], set(), []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        folders.append(entry.name)
                    continue
                files.append(entry.name)
                if not entry.is_file(follow_symlinks=False):
                    special.add(entry.name)
    except OSError:
        return None
    return _Listing(signature, sorted(files), frozenset(special), sorted(folders))


def _waits(name: str) -> bool:
    """A hidden or temporary name (a copy in progress): neither taken nor ignored, until renamed."""
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def _audio_on_its_way(audio: str, names: list[str]) -> bool:
    """The audio is among `names`, or being copied under a temporary name (`talk.mp3.part`)."""
    return any(name == audio or (name.startswith(audio + ".") and not name.endswith(SIDECAR_SUFFIXES))
               for name in names)
