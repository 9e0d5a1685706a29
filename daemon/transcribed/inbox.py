"""The inbox: which files in it are jobs, and the sidecars that travel with them.

Users copy files into `inbox/` (subfolders too). A file is taken once its name has a watched
extension and is neither hidden nor a temporary name (a copying program's `talk.mp3.part`). A
sidecar is the audio file's full name plus `.yaml`, `.yml` or `.json` (`talk.mp3.yaml`): per-file
options, claimed with the audio; one whose audio never comes is a stray.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

#: Names a copying program gives a file it has not finished (ignored until renamed).
TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart",
                      ".swp", "~")
#: Suffixes a sidecar may have, appended to the audio file's full name.
SIDECAR_SUFFIXES = (".yaml", ".yml", ".json")


def sidecar_paths(audio: Path) -> list[tuple[str, Path]]:
    """Where the sidecars of `audio` would be, whether or not they exist: (suffix, path)."""
    return [(suffix, audio.with_name(audio.name + suffix)) for suffix in SIDECAR_SUFFIXES]


def sidecars_of(audio: Path) -> dict[str, Path]:
    """The sidecars delivered with `audio`: suffix -> file."""
    return {suffix: path for suffix, path in sidecar_paths(audio) if path.is_file()}


def sidecar_next_to(audio: Path) -> Path | None:
    """The sidecar file delivered with `audio` (the first suffix that has one), if there is one."""
    return next(iter(sidecars_of(audio).values()), None)


def audio_named_by(sidecar: str) -> str | None:
    """`talk.mp3` for the sidecar name `talk.mp3.yaml`; None for a name that is no sidecar."""
    return next((sidecar[: -len(s)] for s in SIDECAR_SUFFIXES if sidecar.endswith(s)), None)


class Inbox:
    """The inbox folder, read: the files it offers and the sidecars left without their audio."""

    def __init__(self, folder: Path, extensions: Iterable[str]) -> None:
        self.folder = folder
        self.extensions = frozenset(extensions)

    def scan(self) -> list[Path]:
        """Every file in the inbox that looks like audio or video and is not a temporary name."""
        return [folder / name for folder, names in self._folders() for name in names
                if self.wants(name)]

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
                    if now - (folder / name).stat().st_mtime >= older_than:
                        stray.append(folder / name)
        return stray

    def wants(self, name: str) -> bool:
        """Is this a file name the daemon takes (once it is complete)?"""
        if name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES):
            return False
        return name.rpartition(".")[2].lower() in self.extensions and "." in name

    def relative(self, path: Path) -> PurePosixPath:
        """A path in the inbox, relative to it (kept in outbox/, done/ and failed/)."""
        return PurePosixPath(path.relative_to(self.folder).as_posix())

    def _folders(self) -> Iterator[tuple[Path, list[str]]]:
        """Each folder of the inbox (hidden ones skipped) with its file names, sorted."""
        for root, dirs, files in os.walk(self.folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield Path(root), sorted(files)


def _audio_on_its_way(audio: str, names: list[str]) -> bool:
    """The audio is among `names`, or being copied under a temporary name (`talk.mp3.part`)."""
    return any(name == audio or (name.startswith(audio + ".") and not name.endswith(SIDECAR_SUFFIXES))
               for name in names)
