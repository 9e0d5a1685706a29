"""A named model's place in `model.download_dir`: huggingface_hub's cache layout, a record of where
it came from, and the check of every file against the hash the hub lists for it.

The layout is huggingface_hub's own (`models--owner--name/` with `blobs/<etag>`,
`snapshots/<commit>/<file>` linking to the blobs, and `refs/main` naming the commit), so its tools
(`hf cache scan`, `scan_cache_dir`) see the same cache. What it lacks is written here:

- **A check of the files.** huggingface_hub checks a file's size only while downloading it,
  trusts a full-size `.incomplete` part without reading it, checks nothing for a file already in
  the cache, and returns a snapshot a killed download left without model.bin; CTranslate2 then
  loads a model.bin with a flipped byte without complaint. So each file is compared with the hash
  the hub names it by: the sha256 of an LFS file, the git blob id of the others (huggingface_hub's
  own `sha_fileobj` and `git_hash`). A file that passed is stamped with its size and mtime, so
  that a later start does not read gigabytes again.
- **A record** (`transcribed.json` in the repo's folder, where huggingface_hub's scan does not
  look): the files and hashes the hub listed, the commit, the endpoint it came from and when, and
  the stamps. A cache filled by other tools has none; its blobs are checked by their names.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durable import read_json, write_file_atomic, write_json_atomic

#: The revision a named model is downloaded at.
REVISION = "main"
#: The files of a repo faster-whisper downloads (its own list, inside faster_whisper.utils.download_model).
ALLOW_PATTERNS = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*")
#: Without these a folder is not a model: without tokenizer.json faster-whisper would fetch one
#: from the hub at load time.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
#: The record's name inside the repo's folder.
RECORD = "transcribed.json"


@dataclass(frozen=True)
class RepoFile:
    """One file of a repo as the hub lists it: its size and the hash the cache names its blob by."""

    name: str
    size: int
    #: The sha256 of an LFS file, else the git blob id (sha1 of "blob <size>\\0" + the bytes).
    etag: str

    @property
    def is_lfs(self) -> bool:
        return len(self.etag) == 64


@dataclass(frozen=True)
class Origin:
    """Where a named model came from: a hub repo at a commit, fetched from an endpoint."""

    repo_id: str
    revision: str
    commit: str
    #: The hub's address it was downloaded from; None for a cache another tool filled.
    endpoint: str | None = None
    downloaded_at: str | None = None

    def describe(self) -> str:
        """`Systran/faster-whisper-tiny.en@0123456789ab (main) from http://...`, for people."""
        where = f" from {self.endpoint}" if self.endpoint else " (found in the cache)"
        return f"{self.repo_id}@{self.commit[:12]} ({self.revision}){where}"


@dataclass(frozen=True)
class Snapshot:
    """A complete snapshot in the cache, every file checked, and where it came from."""

    path: Path
    origin: Origin


@dataclass(frozen=True)
class Damaged:
    """A cached file that is not what the hub listed (the first one found)."""

    file: str
    link: Path
    blob: Path
    problem: str

    def describe(self) -> str:
        return f"{self.file}: {self.problem}"

    def discard(self) -> None:
        """Delete the blob and the snapshot's link to it, so that a download fetches it again."""
        for path in (self.link, self.blob):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@dataclass(frozen=True)
class HubCache:
    """One repo's folder in `root` (huggingface_hub's layout) and our record of it."""

    root: Path
    repo_id: str

    @property
    def storage(self) -> Path:
        from huggingface_hub.file_download import repo_folder_name

        return self.root / repo_folder_name(repo_id=self.repo_id, repo_type="model")

    def snapshot(self, commit: str) -> Path:
        return self.storage / "snapshots" / commit

    def blob(self, etag: str) -> Path:
        return self.storage / "blobs" / etag

    def part(self, etag: str) -> Path:
        """Where huggingface_hub keeps a blob while it downloads it (and resumes it from)."""
        return self.storage / "blobs" / f"{etag}.incomplete"

    def commit_of(self, revision: str = REVISION) -> str | None:
        """The commit `refs/<revision>` names (written only once a download checked out)."""
        try:
            commit = (self.storage / "refs" / revision).read_text().strip()
        except OSError:
            return None
        return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else None

    def point(self, revision: str, commit: str) -> None:
        """Make `refs/<revision>` name `commit`: the snapshot is complete and checked."""
        (self.storage / "refs").mkdir(parents=True, exist_ok=True)
        write_file_atomic(self.storage / "refs" / revision, commit)

    def read_record(self) -> dict[str, Any]:
        try:
            data = read_json(self.storage / RECORD)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update_record(self, **fields: Any) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.storage / RECORD, {**self.read_record(), **fields})

    def partial_bytes(self) -> int:
        """The bytes interrupted downloads left here (`.incomplete` parts)."""
        blobs = self.storage / "blobs"
        return sum(size_of(p) for p in blobs.glob("*.incomplete")) if blobs.is_dir() else 0

    def bytes_on_disk(self, files: tuple[RepoFile, ...]) -> int:
        """How much of `files` is here: whole blobs, and the parts of the others."""
        return sum(min(f.size, size_of(self.blob(f.etag)) or size_of(self.part(f.etag))) for f in files)


def cached_snapshot(cache: HubCache) -> Snapshot | Damaged | None:
    """The snapshot `refs/main` names when every file is there and matches its hash; the first
    file that does not; None when there is no complete snapshot (never downloaded, or a download
    that was killed before its end, which huggingface_hub would return as if it were complete)."""
    commit = cache.commit_of()
    if commit is None or not cache.snapshot(commit).is_dir():
        return None
    record = cache.read_record()
    expected = _expected_files(cache, record, commit)
    if expected is None:
        return None
    stamps = _stamps(record)
    for link, file in expected:
        problem = check_file(link, file, stamps)
        if problem is not None:
            return Damaged(file.name, link, link.resolve(), problem)
    if stamps != record.get("verified"):
        with contextlib.suppress(OSError):  # a read-only cache still works, only checked again
            cache.update_record(verified=stamps)
    recorded = record.get("commit") == commit
    return Snapshot(cache.snapshot(commit), Origin(
        cache.repo_id, REVISION, commit, record.get("endpoint") if recorded else None,
        record.get("downloaded_at") if recorded else None))


def _expected_files(cache: HubCache, record: dict[str, Any],
                    commit: str) -> list[tuple[Path, RepoFile]] | None:
    """Each file of the snapshot with what it must be: as the record lists them, or (a cache
    without our record) the snapshot's links with their blobs' names. None when one is missing."""
    snapshot = cache.snapshot(commit)
    listed = record.get("files") if record.get("commit") == commit else None
    if isinstance(listed, dict):
        files = [RepoFile(name, int(f["size"]), str(f["etag"])) for name, f in listed.items()]
    else:
        links = [p for p in snapshot.iterdir() if allowed(p.name)]
        files = [RepoFile(p.name, size_of(p), p.resolve().name) for p in links]
    names = {f.name for f in files}
    if any(name not in names for name in REQUIRED_FILES):
        return None
    if any(not (snapshot / f.name).exists() for f in files):
        return None  # a link to a blob that is gone, or a file never downloaded
    return [(snapshot / f.name, f) for f in sorted(files, key=lambda f: f.name)]


def check_file(path: Path, expected: RepoFile, stamps: dict[str, Any]) -> str | None:
    """None when `path` is `expected` (its size, then its hash); else what is wrong with it.

    A file that passed is stamped (in `stamps`) with its size and mtime; while both are unchanged
    it is not read again. A byte changed in place with the mtime put back is not seen: deleting
    the record's `verified` entry makes the next start read everything.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.st_size != expected.size:
        return f"{stat.st_size} bytes, {expected.size} expected"
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if stamps.get(expected.etag) == stamp:
        return None
    actual = file_hash(path, expected.is_lfs)
    if actual != expected.etag:
        return f"{'sha256' if expected.is_lfs else 'git blob id'} {actual}, {expected.etag} expected"
    stamps[expected.etag] = stamp
    return None


def file_hash(path: Path, lfs: bool) -> str:
    """The sha256 of an LFS file, or the git blob id of another: how the hub names each."""
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    if not lfs:  # the hub keeps files of 10 MB and more in LFS: this one is small
        return git_hash(path.read_bytes())
    with path.open("rb") as fh:
        return sha_fileobj(fh, chunk_size=8 * 1024 * 1024).hex()


def _stamps(record: dict[str, Any]) -> dict[str, Any]:
    stamps = record.get("verified")
    return dict(stamps) if isinstance(stamps, dict) else {}


def allowed(file_name: str) -> bool:
    """Whether faster-whisper downloads this file of a repo."""
    return any(fnmatch.fnmatchcase(file_name, pattern) for pattern in ALLOW_PATTERNS)


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
