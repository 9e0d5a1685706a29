"""The library ledger: which media files were done or failed, kept in the state folder.

A library is scanned again and again (at start, every `watch.rescan_seconds`); the ledger is what
makes a rescan of 10 000 files that were all done cost a `stat` each, no hashing and no log line.
It is one append-only file, `state/library/ledger.jsonl`, shared by every daemon on the state
folder: each line is one small JSON record written with a single O_APPEND write, read back
incrementally (each scan reads only the bytes added since the last), and a damaged or half-written
line is skipped, never fatal.

A record is content-addressed: the file's `content_id` hashes its size, its mtime (in whole
seconds: SMB and NFS round them) and its first and last `EDGE_BYTES`. A file renamed or moved in
the library keeps its id, so it is not done twice; a file that changes (re-muxed, replaced) gets
a new id, so a failed one is tried again. Paths are an index over the ids: while a file's path,
size and mtime match a record, its id is not computed again.

Outcomes: `done` (subtitles written), `failed` (the job's report is in `state/library/failed/`),
`embedded` (the container holds a subtitle stream in a wanted language, opt-in), and `retry`
(written by `transcribed retry PATH`: forget the earlier outcome of that id).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import durable
from ..spool.workers import timestamp

#: Bytes read from each end of a file for its content id (4 MiB read per new file at most).
EDGE_BYTES = 2 * 1024 * 1024
LEDGER_FILE = "ledger.jsonl"
#: Outcomes that make a scan pass a file by; `retry` cancels them.
FINAL = frozenset({"done", "failed", "embedded"})


@dataclass(frozen=True)
class Entry:
    """What the ledger knows of one content id."""

    content_id: str
    outcome: str
    path: str
    size: int
    mtime: int


def library_state(state: Path) -> Path:
    """The libraries' part of the state folder (ledger, claim markers, failure reports)."""
    return state / "library"


def file_key(path: Path) -> tuple[int, int] | None:
    """(size, mtime in whole seconds): what tells whether a file changed; None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, int(st.st_mtime)


def content_id(path: Path, key: tuple[int, int]) -> str:
    """The id of a file's content: size, mtime and a hash of its first and last EDGE_BYTES.
    Reading 4 MiB, not the whole file, keeps a new 40 GB film's id cheap."""
    size, mtime = key
    digest = hashlib.sha256(f"{size}:{mtime}:".encode())
    with open(path, "rb") as file:
        digest.update(file.read(EDGE_BYTES))
        if size > 2 * EDGE_BYTES:
            file.seek(size - EDGE_BYTES)
            digest.update(file.read(EDGE_BYTES))
        elif size > EDGE_BYTES:
            digest.update(file.read())
    return digest.hexdigest()[:32]


class Ledger:
    """The ledger file, and the index of it this process keeps (by id and by path)."""

    def __init__(self, state: Path, worker: str = "") -> None:
        self.path = library_state(state) / LEDGER_FILE
        self.worker = worker
        #: A write of ours ended short (a full disk): the next record starts on a line of its own.
        self._cut = False
        self._offset = 0
        self._by_id: dict[str, Entry] = {}
        self._by_path: dict[str, Entry] = {}

    def refresh(self) -> int:
        """Read what was appended since the last call (by any daemon); returns the new records."""
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        count = 0
        for line in data[:end].splitlines():
            record = _parse(line)
            if record is not None:
                self._apply(record)
                count += 1
        self._offset += end
        return count

    def final(self, path: Path, key: tuple[int, int]) -> Entry | None:
        """The record that makes a scan pass this file by (same path, size and mtime), else None."""
        entry = self._by_path.get(str(path))
        if entry is not None and (entry.size, entry.mtime) == key and entry.outcome in FINAL:
            return entry
        return None

    def of_id(self, cid: str) -> Entry | None:
        """The final record of a content id (the file may have been renamed since)."""
        entry = self._by_id.get(cid)
        return entry if entry is not None and entry.outcome in FINAL else None

    def entries(self) -> Iterator[Entry]:
        """Every final record (the latest of each id)."""
        return (e for e in self._by_id.values() if e.outcome in FINAL)

    def record(self, cid: str, outcome: str, path: Path, key: tuple[int, int], **details: Any) -> None:
        """Append one record, durably, and apply it here at once. A full or read-only disk
        raises `StorageFault`, also when the write ended short (the kernel writes what fits in
        the last block and says so by its count): that half line is a damaged line, skipped by
        every reader, and the next record starts on a line of its own."""
        record = {"id": cid, "outcome": outcome, "path": str(path), "size": key[0],
                  "mtime": key[1], "at": timestamp(), "worker": self.worker, **details}
        line = (("\n" if self._cut else "") + durable.to_json(record) + "\n").encode("utf-8")
        with durable.own_write(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                written = os.write(fd, line)  # one write: appends of several daemons do not interleave
                self._cut = written < len(line)
                if self._cut:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                os.fsync(fd)
            finally:
                os.close(fd)
        self._apply(record)

    def _apply(self, record: dict[str, Any]) -> None:
        entry = Entry(record["id"], record["outcome"], record["path"], record["size"], record["mtime"])
        if entry.outcome == "retry":
            self._by_id.pop(entry.content_id, None)
            for path, known in list(self._by_path.items()):
                if known.content_id == entry.content_id:
                    del self._by_path[path]
            return
        self._by_id[entry.content_id] = entry
        self._by_path[entry.path] = entry


def forget(state: Path, target: Path) -> list[Entry]:
    """`transcribed retry PATH`: the ledger's outcomes of the file `target`, or of every file
    under the folder `target`, are cancelled (a `retry` record each), so the next scan takes
    those files again (a file with a subtitle beside it is still passed by). Returns them."""
    ledger = Ledger(state, worker="transcribed retry")
    ledger.refresh()
    where = os.path.abspath(target)
    under = where.rstrip(os.sep) + os.sep
    matched = [e for e in ledger.entries() if e.path == where or e.path.startswith(under)]
    for entry in matched:
        ledger.record(entry.content_id, "retry", Path(entry.path), (entry.size, entry.mtime),
                      was=entry.outcome)
    return matched


def _parse(line: bytes) -> dict[str, Any] | None:
    """One record, or None for a line damaged from outside (or two appends mixed on NFS)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    fields = ("id", "outcome", "path", "size", "mtime")
    if not isinstance(record, dict) or not all(k in record for k in fields):
        return None
    return record
