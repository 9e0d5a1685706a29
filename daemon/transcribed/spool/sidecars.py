"""Sidecars: the per-file options that travel with a job's source.

A sidecar is the audio file's full name plus `.yaml`, `.yml` or `.json` (`talk.mp3.yaml`). It is
claimed with its audio, read by the job (transcription/options.py) and moved with the source to
done/ or failed/; one whose audio never comes is a stray (intake/inbox.py finds those).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Suffixes a sidecar may have, appended to the audio file's full name.
SIDECAR_SUFFIXES = (".yaml", ".yml", ".json")


def sidecar_paths(audio: Path) -> list[tuple[str, Path]]:
    """Where the sidecars of `audio` would be, whether or not they exist: (suffix, path)."""
    return [(suffix, audio.with_name(audio.name + suffix)) for suffix in SIDECAR_SUFFIXES]


def sidecars_of(audio: Path) -> dict[str, Path]:
    """The sidecars delivered with `audio`: suffix -> entry. Any kind of entry: a link or a FIFO
    under a sidecar's name travels with its job too (never followed, never opened), and fails it
    as not_a_regular_file when it is read (options.read_sidecar). A folder is no sidecar."""
    return {suffix: path for suffix, path in sidecar_paths(audio) if _entry_but_no_folder(path)}


def sidecar_next_to(audio: Path) -> Path | None:
    """The sidecar file delivered with `audio` (the first suffix that has one), if there is one."""
    return next(iter(sidecars_of(audio).values()), None)


def audio_named_by(sidecar: str) -> str | None:
    """`talk.mp3` for the sidecar name `talk.mp3.yaml`; None for a name that is no sidecar."""
    return next((sidecar[: -len(s)] for s in SIDECAR_SUFFIXES if sidecar.endswith(s)), None)


def _entry_but_no_folder(path: Path) -> bool:
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
