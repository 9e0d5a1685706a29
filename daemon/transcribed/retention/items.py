"""What a folder holds that retention may take: the daemon's own finished items, each with all of
its files, and what is still in use.

An item is what one job left in one folder, taken or kept whole:
- done/: a source and its sidecars (`talk.mp3`, `talk.mp3.yaml`);
- outbox/: a job's results and its log (`talk.json`, `talk.srt`, ..., the record `talk.log.jsonl`);
- failed/: a source, its sidecars and log, and its report, the record (`talk.mp3.error.json`);
- state/: a hook delivery delivered or given up (`hooks/delivered/<job>.json`), and a library
  job's kept transcript or failure report (`library/results/<id>.*`, `library/failed/<id>.*`).
Anything else is not the daemon's and is never an item: a file in failed/ without its report, a
file in the outbox that is no result, hidden files (a copy in progress), the library ledger,
leases, jobs. Each item names its record, the file that says what the others are: it is removed
last and archived first (carry.py), so no result is ever without it.

An item's age counts from when it landed: the later of its files' change and modification
times (a move into done/ keeps the recording's own mtime, but sets its ctime).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import durable
from ..config import KNOWN_FORMATS, Config
from ..hooks.queue import DELIVERED, GAVE_UP, HOOKS_FOLDER
from ..library.ledger import library_state
from ..spool.finish import PLAN_FILE, read_plan
from ..spool.sidecars import SIDECAR_SUFFIXES

#: The job's own log beside its results (outbox) or its source (failed/): a record.
LOG_SUFFIX = ".log.jsonl"
#: A failed job's report beside its source: the record of a failed/ item.
REPORT_SUFFIX = ".error.json"
#: Suffixes of a job's results in the outbox (its log aside).
RESULT_SUFFIXES = tuple(f".{fmt}" for fmt in KNOWN_FORMATS)


@dataclass(frozen=True)
class Item:
    """One job's files in one folder: taken whole, its record last."""

    folder: str
    #: The item's name under its folder (a person reads it in the log and in --dry-run).
    name: str
    #: The name every file of the item starts with (`talk.mp3` for `talk.mp3.error.json`; a
    #: results' stem), so an archive that has the name already gives all of them one new one.
    anchor: Path
    #: Every file, the record last.
    files: tuple[Path, ...]
    #: The file that says what the others are (None: an item of one file, or no record).
    record: Path | None
    #: When it landed (seconds since the epoch), and its size in bytes.
    landed: float
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "name": self.name, "files": [str(f) for f in self.files],
                "record": str(self.record) if self.record else None, "landed": self.landed,
                "size": self.size}


def items_of(folder: str, config: Config) -> list[Item]:
    """Every item of one retention folder (done, outbox, failed, state), oldest first."""
    folders = config.folders
    found: list[Item] = []
    if folder == "done":
        found = list(_sources(folders.done, "done", with_report=False))
    elif folder == "failed":
        found = list(_sources(folders.failed, "failed", with_report=True))
    elif folder == "outbox":
        found = list(_results(folders.outbox))
    elif folder == "state":
        found = list(_state_records(folders.state))
    return sorted(found, key=lambda item: (item.landed, item.name))


def in_use(config: Config) -> set[Path]:
    """Files a job still needs: the destinations of every finish plan on disk (a job whose moves
    are under way, in any daemon's work folder) and every file a pending hook delivery names
    (its command or message is still to be sent, and points at them)."""
    folders = config.folders
    roots: dict[str, Path] = {"outbox": folders.outbox, "done": folders.done,
                              "failed": folders.failed, "inbox": folders.inbox}
    roots.update({f"libraries[{i}]": lib.path for i, lib in enumerate(config.libraries)
                  if lib.path is not None})
    busy: set[Path] = set()
    for plan in _glob(folders.state / "work", f"*/*/{PLAN_FILE}"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, IndexError):
            busy.update(dst for _, dst in read_plan(plan.parent, lambda name: Path(name)
                                                    if name.startswith("/") else roots[name]))
    hooks = folders.state / HOOKS_FOLDER
    for record in _glob(hooks, "*/*.json"):
        if record.parent.name in (DELIVERED, GAVE_UP):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            busy.update(_hook_places(durable.read_json(record), roots))
    return busy


def _hook_places(record: dict[str, Any], roots: dict[str, Path]) -> Iterator[Path]:
    places = record.get("places") or {}
    entries = [places.get("source"), places.get("in_place"), places.get("error_report"),
               places.get("log"), *(places.get("results") or []), *(places.get("sidecars") or [])]
    for entry in entries:
        if entry and entry.get("root") in roots:
            yield roots[entry["root"]] / entry["relative"]


# --- each folder's items ---------------------------------------------------------------------------

def _sources(root: Path, folder: str, with_report: bool) -> Iterator[Item]:
    """done/ and failed/: a source and what travels with it. In failed/ only a report makes an
    item (the source may be gone already: a report alone is one too)."""
    files = set(_walk(root))
    owned: set[Path] = set()
    anchors = [p for p in files if p.name.endswith(REPORT_SUFFIX)] if with_report else \
        [p for p in files if not _beside_a_source(p, files)]
    for anchor in sorted(anchors):
        source = anchor.with_name(anchor.name[: -len(REPORT_SUFFIX)]) if with_report else anchor
        group = [p for p in (source, *(source.with_name(source.name + s) for s in SIDECAR_SUFFIXES),
                             source.with_name(source.name + LOG_SUFFIX)) if p in files and p not in owned]
        record = anchor if with_report else None
        if record is not None:
            group.append(record)
        owned.update(group)
        item = _item(folder, root, source, group, record)
        if item is not None:
            yield item


def _beside_a_source(path: Path, files: set[Path]) -> bool:
    """Is `path` a sidecar or log that travels with another file of the folder?"""
    for suffix in (*SIDECAR_SUFFIXES, LOG_SUFFIX, REPORT_SUFFIX):
        if path.name.endswith(suffix) and path.with_name(path.name[: -len(suffix)]) in files:
            return True
    return False


def _results(root: Path) -> Iterator[Item]:
    """The outbox: a job's results grouped by their stem, its log the record."""
    groups: dict[Path, list[Path]] = {}
    for path in _walk(root):
        stem = _result_stem(path)
        if stem is not None:
            groups.setdefault(stem, []).append(path)
    for stem, group in sorted(groups.items()):
        log = stem.with_name(stem.name + LOG_SUFFIX)
        record = log if log in group else None
        ordered = sorted(p for p in group if p != record) + ([record] if record else [])
        item = _item("outbox", root, stem, ordered, record, shown=stem.name + ".*")
        if item is not None:
            yield item


def _result_stem(path: Path) -> Path | None:
    for suffix in (LOG_SUFFIX, *RESULT_SUFFIXES):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return None


def _state_records(state: Path) -> Iterator[Item]:
    """Hook deliveries ended, and the library jobs' kept transcripts and failure reports."""
    for ledger in (DELIVERED, GAVE_UP):
        for path in _glob(state / HOOKS_FOLDER / ledger, "*.json"):
            item = _item("state", state, path, [path], None)
            if item is not None:
                yield item
    library = library_state(state)
    for kind in ("results", "failed"):
        groups: dict[str, list[Path]] = {}
        for path in _glob(library / kind, "*"):
            if path.is_file() and not path.name.startswith("."):
                groups.setdefault(path.name.split(".", 1)[0], []).append(path)
        for content_id, group in sorted(groups.items()):
            record = next((p for p in group if p.name.endswith(REPORT_SUFFIX)), None)
            ordered = sorted(p for p in group if p != record) + ([record] if record else [])
            item = _item("state", state, library / kind / content_id, ordered, record)
            if item is not None:
                yield item


# --- helpers ---------------------------------------------------------------------------------------

def _item(folder: str, root: Path, anchor: Path, files: list[Path], record: Path | None,
          shown: str | None = None) -> Item | None:
    """The item, with its age and size from its files; None when they are gone meanwhile."""
    landed, size, present = 0.0, 0, []
    for path in files:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        landed, size = max(landed, st.st_mtime, st.st_ctime), size + st.st_size
        present.append(path)
    if not present:
        return None
    name = anchor.relative_to(root).with_name(shown or anchor.name).as_posix()
    return Item(folder, name, anchor, tuple(present), record if record in present else None, landed, size)


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under `root`, hidden ones (a copy in progress) and links left out."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                yield path


def _glob(folder: Path, pattern: str) -> list[Path]:
    try:
        return sorted(folder.glob(pattern)) if folder.is_dir() else []
    except OSError:
        return []
