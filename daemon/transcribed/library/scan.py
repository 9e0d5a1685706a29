"""Looking at a library: its media files, the subtitles beside them, and the folders it skips.

A walk lists each folder once (`os.scandir`) and `stat`s only the media files in it: whether a
file already has subtitles is read from the same listing, so a scan costs one listing per folder
and one `stat` per media file, and nothing is opened. A folder holding `.transcribed-skip` is
left out with everything under it; hidden folders and files (`.name`, e.g. `.actors`, `.@__thumb`)
are left out too.

Subtitle names follow what Plex, Jellyfin and Emby read: `<media stem>.<language>[.<tag>].<ext>`,
e.g. `Movie (2010).en.srt`, `Movie (2010).eng.forced.srt`. A sibling counts for a language when
one of the dotted words after the stem is that language's code (two or three letters, `en`,
`eng`, `en-US`); a subtitle with no language word counts for none (the media servers show it as
"unknown" too).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Library
from ..intake.inbox import TEMPORARY_SUFFIXES
from ..languages import code_of_tag
from ..logs import get_logger

#: A folder holding a file of this name is skipped, with everything under it.
SKIP_MARKER = ".transcribed-skip"
#: Extensions of subtitle files that count as "already has subtitles".
SUBTITLE_EXTENSIONS = frozenset({"srt", "vtt", "ass", "ssa", "sub", "idx", "sup", "smi", "ttml"})

log = get_logger()


@dataclass(frozen=True)
class Found:
    """A media file of a library that is missing a subtitle in some wanted language."""

    path: Path
    library: Library
    #: (size, mtime in whole seconds), from the walk's stat.
    key: tuple[int, int]
    #: The library's languages this file has no subtitle file for.
    missing: tuple[str, ...]


@dataclass
class ScanCounts:
    """What one walk saw (the `library.scanned` event)."""

    media: int = 0
    with_subtitles: int = 0
    skipped_folders: int = 0
    unreadable_folders: int = 0


def subtitle_languages(stem: str, names: Iterable[str]) -> set[str]:
    """The languages (two-letter codes) that sibling subtitle files of `stem` are in."""
    found: set[str] = set()
    prefix = stem + "."
    for name in names:
        if not name.startswith(prefix):
            continue
        words = name[len(prefix):].split(".")
        if len(words) < 2 or words[-1].lower() not in SUBTITLE_EXTENSIONS:
            continue
        found.update(code for word in words[:-1] if (code := code_of_tag(word)) is not None)
    return found


def wanted_languages(library: Library) -> tuple[str, ...]:
    """The subtitle languages a library wants beside each file: its `languages`, and English
    when it asks for an English translation too (`also_english`)."""
    english = ("en",) if library.also_english and "en" not in library.languages else ()
    return (*library.languages, *english)


def subtitle_name(stem: str, language: str, tag: str | None, fmt: str) -> str:
    """`Movie (2010).en.srt`, or `Movie (2010).en.transcribed.srt` with a tag."""
    return ".".join([stem, language, *([tag] if tag else []), fmt])


def media_stem(name: str) -> str:
    """The name without its extension: what the subtitles beside it start with."""
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def wanted_media(name: str, extensions: frozenset[str]) -> bool:
    """A media file the library transcribes: a watched extension, not hidden, not half-copied."""
    if name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES):
        return False
    return name.rpartition(".")[2].lower() in extensions


def walk(library: Library, extensions: frozenset[str], counts: ScanCounts) -> Iterator[Found]:
    """Every media file of `library` without a subtitle in one of its languages."""
    assert library.path is not None  # checked when the config was read  # noqa: S101
    stack = [library.path]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            counts.unreadable_folders += 1
            log.debug("library.folder_unreadable", folder=str(folder), error=str(exc))
            continue
        names = [e.name for e in entries]
        if SKIP_MARKER in names:
            counts.skipped_folders += 1
            continue
        for entry in sorted(entries, key=lambda e: e.name, reverse=True):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif wanted_media(entry.name, extensions) and entry.is_file(follow_symlinks=False):
                found = _missing_subtitles(entry, library, names, counts)
                if found is not None:
                    yield found


def _missing_subtitles(entry: os.DirEntry[str], library: Library, names: list[str],
                       counts: ScanCounts) -> Found | None:
    counts.media += 1
    have = subtitle_languages(media_stem(entry.name), names)
    missing = tuple(lang for lang in wanted_languages(library) if lang not in have)
    if not missing:
        counts.with_subtitles += 1
        return None
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    return Found(Path(entry.path), library, (st.st_size, int(st.st_mtime)), missing)


def embedded_subtitle_languages(path: Path) -> set[str]:
    """The languages of the subtitle streams inside a container (PyAV reads the header only)."""
    import av

    try:
        with av.open(str(path)) as container:
            tags = [s.metadata.get("language") for s in container.streams.subtitles]
    except (av.error.FFmpegError, OSError):
        return set()
    return {code for tag in tags if (code := code_of_tag(tag)) is not None}
