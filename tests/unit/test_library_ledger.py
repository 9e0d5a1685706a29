"""The library ledger: content ids, records shared by daemons through one append-only file, a
damaged or half-written line, and `retry` (library/ledger.py forget)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from transcribed.library.ledger import EDGE_BYTES, Ledger, content_id, file_key, forget


def _media(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((i * seed) % 251 for i in range(size)))
    return path


def test_the_content_id_survives_a_rename_and_changes_with_the_content(tmp_path: Path) -> None:
    film = _media(tmp_path / "a.mkv", 3 * EDGE_BYTES)
    key = file_key(film)
    assert key is not None
    first = content_id(film, key)
    moved = tmp_path / "elsewhere" / "b.mkv"
    moved.parent.mkdir()
    shutil.copy2(film, moved)  # same bytes, same mtime: the same content
    assert content_id(moved, file_key(moved) or (0, 0)) == first
    with open(film, "r+b") as file:  # the last MiB changes (a re-mux rewrites the index at the end)
        file.seek(3 * EDGE_BYTES - 10)
        file.write(b"0123456789")
    os.utime(film, ns=(film.stat().st_atime_ns, film.stat().st_mtime_ns))
    assert content_id(film, key) != first


def test_another_daemons_records_are_read_incrementally(tmp_path: Path) -> None:
    film = _media(tmp_path / "lib" / "a.mkv", 1000)
    key = file_key(film) or (0, 0)
    mine, theirs = Ledger(tmp_path / "state", "me"), Ledger(tmp_path / "state", "them")
    assert mine.refresh() == 0 and mine.final(film, key) is None
    theirs.record("id1", "done", film, key)
    assert mine.refresh() == 1
    entry = mine.final(film, key)
    assert entry is not None and entry.outcome == "done"
    assert mine.final(film, (key[0] + 1, key[1])) is None  # the file changed: no final record
    assert mine.refresh() == 0  # nothing new: nothing read again


def test_a_damaged_line_is_skipped_and_a_half_written_one_waits(tmp_path: Path) -> None:
    film = _media(tmp_path / "a.mkv", 10)
    key = file_key(film) or (0, 0)
    ledger = Ledger(tmp_path / "state")
    ledger.record("id1", "failed", film, key)
    with open(ledger.path, "ab") as file:
        file.write(b"{not json\n")
        file.write(b'{"id": "id2", "outcome": "done", "path": "/x", "size": 1, ')  # no newline yet
    reader = Ledger(tmp_path / "state")
    assert reader.refresh() == 1
    with open(ledger.path, "ab") as file:
        file.write(b'"mtime": 2}\n')
    assert reader.refresh() == 1
    assert reader.of_id("id2") is not None and reader.of_id("id1") is not None


def test_retry_forgets_a_file_or_every_file_under_a_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    names = ["A/a.mkv", "A/b.mkv", "B/c.mkv"]
    films = [_media(tmp_path / "lib" / name, 10 + i) for i, name in enumerate(names)]
    ledger = Ledger(state)
    for i, film in enumerate(films):
        ledger.record(f"id{i}", "failed", film, file_key(film) or (0, 0))
    assert [e.path for e in forget(state, films[2])] == [str(films[2])]
    assert sorted(e.path for e in forget(state, tmp_path / "lib" / "A")) == [str(films[0]), str(films[1])]
    assert forget(state, tmp_path / "lib") == []
    fresh = Ledger(state)
    fresh.refresh()
    assert all(fresh.final(f, file_key(f) or (0, 0)) is None for f in films)
    assert list(fresh.entries()) == []
