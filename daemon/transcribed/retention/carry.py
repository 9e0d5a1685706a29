"""Carrying out what retention chose: each item removed, or moved to its folder's archive, under
a journal, so that a crash in the middle leaves nothing half-done that matters.

The journal (`state/retention/journal.json`) lists the items and, for an archive, the name each
file gets there; it is written durably before the first file is touched and removed after the
last, and a journal found at the start of a pass is finished first (every step is idempotent: a
file already gone is skipped, one already in the archive is not moved twice).

Within an item the record (the file that says what the others are: a job's log, a failed job's
report) is what keeps the rest explained, so no result is ever without it: a removal takes the
record last; an archive copies the record there first, moves the other files, and only then
removes the record from the folder. At every moment, in the folder and in the archive alike, each
file of the item is beside its record.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import durable
from ..logs import get_logger
from ..spool.finish import free_name_beside
from .items import Item
from .select import Verdict

#: Retention's own folder under `folders.state`: the journal and the lock.
RETENTION_FOLDER = "retention"
JOURNAL_FILE = "journal.json"
#: Items per journal: one durable write per batch, not per item, on a first pass over years.
BATCH = 100

log = get_logger()


class Carrier:
    """Removes or archives chosen items; finishes a journal left by a crash."""

    def __init__(self, state: Path, roots: dict[str, Path], archives: dict[str, Path | None]) -> None:
        self.folder = state / RETENTION_FOLDER
        self.journal = self.folder / JOURNAL_FILE
        #: Each retention folder's root (its empty subfolders are tidied, never the root itself).
        self.roots = roots
        #: Each folder's archive; None: its items are removed.
        self.archives = archives

    def resume(self) -> int:
        """Finish the journal a crash left (0 when there is none): how many items it held."""
        try:
            entries = durable.read_json(self.journal)["entries"]
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("retention.journal_damaged", path=str(self.journal), error=str(exc),
                      action="set aside; the next pass chooses again")
            with contextlib.suppress(OSError):
                os.replace(self.journal, self.journal.with_suffix(".damaged"))
            return 0
        log.info("retention.resumed", items=len(entries), reason="a pass was interrupted")
        self._carry_entries(entries)
        return len(entries)

    def carry_out(self, verdicts: list[Verdict], stop: Callable[[], bool] = lambda: False) -> int:
        """Remove or archive every chosen item, a batch at a time; bytes freed from the folders."""
        freed = 0
        for start in range(0, len(verdicts), BATCH):
            if stop():
                break
            batch = verdicts[start:start + BATCH]
            self._carry_entries([self._entry(v) for v in batch], journal=True)
            freed += sum(v.item.size for v in batch)
        return freed

    def _entry(self, verdict: Verdict) -> dict[str, Any]:
        item = verdict.item
        archive = self.archives.get(item.folder)
        entry: dict[str, Any] = {"folder": item.folder, "name": item.name, "rule": verdict.rule,
                                 "reason": verdict.reason, "age_days": round(verdict.age_days, 2),
                                 "bytes": item.size, "files": [str(f) for f in item.files],
                                 "record": str(item.record) if item.record else None}
        if archive is not None:
            entry["moves"] = [[str(src), str(dst)] for src, dst in self._destinations(item, archive)]
        return entry

    def _destinations(self, item: Item, archive: Path) -> list[tuple[Path, Path]]:
        """Where each file goes in the archive: the folder's layout kept; when a name is taken
        there, the whole item gets `.2`, `.3`... (`talk.2.mp3`, `talk.2.mp3.error.json`), so its
        files keep their record's name."""
        relative = item.anchor.relative_to(self.roots[item.folder])
        stem, dot, extension = relative.name.rpartition(".")
        for n in range(1, 100_000):
            if n == 1:
                anchor = relative.name
            elif dot and stem and item.folder != "outbox":  # an outbox anchor is a stem already
                anchor = f"{stem}.{n}.{extension}"
            else:
                anchor = f"{relative.name}.{n}"
            moves = [(path, archive / relative.parent / (anchor + path.name[len(relative.name):]))
                     for path in item.files]
            if not any(os.path.lexists(dst) for _, dst in moves):
                return moves
        raise RuntimeError(f"no free name for {item.name} in {archive}")

    def _carry_entries(self, entries: list[dict[str, Any]], journal: bool = False) -> None:
        if journal:
            self.folder.mkdir(parents=True, exist_ok=True)
            durable.write_json_atomic(self.journal, {"version": 1, "entries": entries})
            durable.failpoint("retention_journaled")
        for entry in entries:
            if "moves" in entry:
                self._archive(entry)
            else:
                self._remove(entry)
        self.journal.unlink(missing_ok=True)
        durable.fsync_dir(self.folder)

    # --- one item ----------------------------------------------------------------------------------

    def _remove(self, entry: dict[str, Any]) -> None:
        """Every file, the record last; then the empty folders they leave (never the root)."""
        files = [Path(f) for f in entry["files"]]
        removed = 0
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
            durable.failpoint("retention_file")
        self._tidy({p.parent for p in files}, entry["folder"])
        log.info("retention.removed", folder=entry["folder"], item=entry["name"], rule=entry["rule"],
                 reason=entry["reason"], age_days=entry["age_days"], bytes=entry["bytes"],
                 files=[p.name for p in files], already_gone=len(files) - removed)

    def _archive(self, entry: dict[str, Any]) -> None:
        """The record copied to the archive first, the other files moved, then the record removed
        from the folder: a file is never without its record, here or there."""
        moves = [(Path(src), Path(dst)) for src, dst in entry["moves"]]
        record = Path(entry["record"]) if entry.get("record") else None
        placed: list[str] = []
        for src, planned in sorted(moves, key=lambda move: move[0] != record):
            planned.parent.mkdir(parents=True, exist_ok=True)
            dst = _copy_keeping(src, planned) if src == record else _move(src, planned)
            if dst is not None:
                placed.append(str(dst))
            durable.failpoint("retention_file")
        if record is not None:
            record.unlink(missing_ok=True)
        for directory in {dst.parent for _, dst in moves}:
            durable.fsync_dir(directory)
        self._tidy({src.parent for src, _ in moves}, entry["folder"])
        log.info("retention.archived", folder=entry["folder"], item=entry["name"], rule=entry["rule"],
                 reason=entry["reason"], age_days=entry["age_days"], bytes=entry["bytes"], to=placed)

    def _tidy(self, folders: set[Path], folder: str) -> None:
        """Remove the subfolders left empty (the inbox's layout under done/...), never the root;
        the state folder keeps its layout (its daemons expect their folders there)."""
        root = self.roots.get(folder) if folder != "state" else None
        for directory in sorted(folders, key=lambda p: -len(p.parts)):
            current = directory
            while root is not None and current != root and root in current.parents:
                try:
                    current.rmdir()
                except OSError:
                    break  # not empty (or not ours to remove): it stays
                durable.fsync_dir(current.parent)
                current = current.parent


def _move(src: Path, dst: Path) -> Path | None:
    """Move without overwriting (a copy across filesystems); a name taken since the journal was
    written gets `.2`. The destination, or None when `src` was gone already."""
    if not os.path.lexists(src):
        return dst if os.path.lexists(dst) else None
    while True:
        try:
            moved = durable.move_no_clobber(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            moved = durable.copy_no_clobber(src, dst)
        if moved or not os.path.lexists(src):
            return dst
        dst = free_name_beside(dst)


def _copy_keeping(src: Path, dst: Path) -> Path | None:
    """Copy `src` to `dst` and keep `src` (the record, removed from the folder last): written to a
    hidden name, flushed, then linked, so `dst` is whole or absent. Idempotent."""
    if not os.path.lexists(src):
        return dst if os.path.lexists(dst) else None
    while True:
        if os.path.lexists(dst):
            if _same_content(src, dst):
                return dst  # copied before a crash
            dst = free_name_beside(dst)
            continue
        tmp = durable.temporary_beside(dst)
        try:
            shutil.copyfile(src, tmp)
            durable.fsync_file(tmp)
            placed = durable.move_no_clobber(tmp, dst)  # never over a file that came meanwhile
        finally:
            tmp.unlink(missing_ok=True)
        if placed:
            durable.fsync_dir(dst.parent)
            return dst


def _same_content(a: Path, b: Path) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False
