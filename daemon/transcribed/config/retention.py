"""The `retention` section: how long the daemon keeps its finished items, per folder, and the
rules its values follow (every error names the key, as `.checks`' do).

Apart from `schema` because it is a section with a type of its own (`Keep`), read by the
retention stage (retention/) and nothing else.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ConfigError


@dataclass(frozen=True)
class Keep:
    """How long one folder keeps the daemon's finished items, and where they go then
    (docs/configuration.md#retention). Both limits null: kept for ever."""

    #: Items that landed in the folder more than this many days ago go.
    max_age_days: float | None = None
    #: When the folder's items together pass this size, the oldest go until they are below it:
    #: bytes, or a number with its unit ("500 MB", "2 GiB").
    max_size: int | str | None = None
    #: null: removed; a folder: moved there instead, under the folder's name (done/, outbox/...).
    archive: Path | None = None

    @property
    def active(self) -> bool:
        """Does this folder lose anything at all?"""
        return self.max_age_days is not None or self.max_size is not None


#: The folders retention looks after, in the order a pass takes them.
RETENTION_FOLDERS = ("done", "outbox", "failed", "state")
#: `retention.done: delete`: a source goes as soon as its job is done and its hooks are delivered.
DELETE = "delete"


@dataclass(frozen=True)
class Retention:
    """What the daemon keeps: off by default. Only its own finished items are ever touched (never
    the inbox, a library's media, or a job in flight)."""

    #: `delete`: a source is removed once its job is done (results only).
    done: Keep | Literal["delete"] = field(default_factory=Keep)
    outbox: Keep = field(default_factory=Keep)
    failed: Keep = field(default_factory=Keep)
    #: The state folder's own records: hook deliveries delivered or given up, the library jobs'
    #: kept transcripts and failure reports (never the library ledger, leases or jobs).
    state: Keep = field(default_factory=Keep)
    #: How often a pass looks (with `done: delete`, done/ is looked at every few seconds).
    check_seconds: float = 3600.0

    def policy(self, folder: str) -> Keep | None:
        """The folder's policy, None when it keeps everything; `done: delete` is no age at all."""
        keep = getattr(self, folder)
        if keep == DELETE:
            return Keep(max_age_days=0.0)
        return keep if isinstance(keep, Keep) and keep.active else None

    @property
    def active(self) -> bool:
        return any(self.policy(folder) is not None for folder in RETENTION_FOLDERS)


#: Units a size may be written in: decimal (kB, MB...) and binary (KiB, MiB...).
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, key: str) -> int:
    """A size in bytes: an integer, or a number with its unit ("500 MB", "2 GiB", "1.5TB")."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        match = _SIZE.match(str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ConfigError(f'{key}: expected bytes or a size with its unit ("500 MB", "2 GiB"), '
                              f"got {value!r}")
        count = math.floor(float(match.group(1)) * _UNITS[unit])
    if count <= 0:
        raise ConfigError(f"{key}: expected a size above 0, got {value!r}")
    return count


def check_retention(retention: Retention) -> None:
    """Ages and sizes above 0, a pass interval above 0."""
    if retention.check_seconds <= 0:
        raise ConfigError(f"retention.check_seconds: expected a number above 0, got "
                          f"{retention.check_seconds}")
    for folder in RETENTION_FOLDERS:
        keep = getattr(retention, folder)
        if not isinstance(keep, Keep):
            continue
        if keep.max_age_days is not None and keep.max_age_days <= 0:
            raise ConfigError(f"retention.{folder}.max_age_days: expected a number above 0 (or "
                              f"null), got {keep.max_age_days}")
        if keep.max_size is not None:
            parse_size(keep.max_size, f"retention.{folder}.max_size")
        if keep.archive is not None and not keep.active:
            raise ConfigError(f"retention.{folder}.archive: set, but neither max_age_days nor "
                              "max_size is, so nothing would ever go there")


def check_archives(retention: Retention, own: dict[str, str], libraries: list[str]) -> None:
    """Once paths are absolute: an archive is a folder of its own, not inside the daemon's folders
    or a library (what lands there must never be taken for work, nor retained again)."""
    def inside(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip(os.sep) + os.sep)

    for folder in RETENTION_FOLDERS:
        keep = getattr(retention, folder)
        if not isinstance(keep, Keep) or keep.archive is None:
            continue
        path = os.path.normpath(str(keep.archive))
        for key, other in [*own.items(), *((f"libraries[{i}].path", lib) for i, lib in enumerate(libraries))]:
            if inside(path, other) or inside(other, path):
                raise ConfigError(f"retention.{folder}.archive: {path} overlaps {key} ({other}); an "
                                  "archive must be a folder of its own")
