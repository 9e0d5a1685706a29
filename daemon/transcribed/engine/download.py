"""Downloading a named model from the hub (or a mirror that HF_ENDPOINT names) into the cache:
resumed where a killed start left it, every file checked, progress in the log.

huggingface_hub does the transfer: `HfApi.model_info` lists the repo's files with their sizes and
hashes at a commit, and `snapshot_download` fetches exactly those files at exactly that commit,
resuming a file from its `.incomplete` part with a Range request. What it lacks is written here:

- **Progress in bytes.** In huggingface_hub 0.36 a `tqdm_class` hears only how many files are
  done, and its byte bars write to stderr; so a thread reads the sizes of the blobs and their
  `.incomplete` parts on disk every `log.progress_seconds` (they grow in its 10 MiB writes).
- **Nothing unchecked is ever named.** Asked for a commit, snapshot_download writes no ref;
  `refs/main` is written here only once every file matched its hash (hub_cache.check_file), so
  a start killed half-way, or a file that arrived damaged, leaves nothing a later start loads.
- **Retries.** A connection that breaks off mid-file (requests' ChunkedEncodingError, which it
  does not retry) is tried again while each try gets further; a damaged file is fetched once more.
- **One clear error** naming the endpoint and what is kept for the next start, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import TranscribedError
from ..logs import get_logger
from .hub_cache import (
    REQUIRED_FILES,
    REVISION,
    HubCache,
    Origin,
    RepoFile,
    Snapshot,
    allowed,
    check_file,
    size_of,
)

#: A transfer that breaks off is tried this many times in one start, while each try gets further.
DOWNLOAD_ATTEMPTS = 4
#: `model.download_progress` events come at most this often, whatever `log.progress_seconds` says.
MIN_PROGRESS_SECONDS = 0.5
#: A disk that is full or read-only stays so: another try would fail the same way.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT})

log = get_logger()


@dataclass(frozen=True)
class Listing:
    """What the hub says the revision holds: its commit and the files faster-whisper needs."""

    repo_id: str
    commit: str
    files: tuple[RepoFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Failure:
    """Why a try did not bring every file, and whether another try may."""

    message: str
    #: What to do about it; None for the network or the hub: the next start resumes.
    advice: str | None = None
    retry: bool = True


def hub_endpoint() -> str:
    """The hub's address: HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def download_snapshot(name: str, cache: HubCache, progress_seconds: float) -> Snapshot:
    """Download (or resume) model `name`'s files into `cache`, check every one, record where they
    came from, and only then point `refs/main` at them."""
    from huggingface_hub import constants

    endpoint = hub_endpoint()
    listing = _listing(name, cache, endpoint)
    _drop_oversized_parts(cache, listing)
    before = cache.bytes_on_disk(listing.files)
    log.info("model.downloading", model=name, repo_id=listing.repo_id, revision=REVISION,
             commit=listing.commit, endpoint=endpoint, into=str(cache.root), files=len(listing.files),
             total_bytes=listing.total, resumed_bytes=before, xet=not constants.HF_HUB_DISABLE_XET)
    started = time.monotonic()
    try:
        failure = _fetch_checked(name, cache, listing, endpoint, progress_seconds)
        if failure is None:
            return _finish(name, cache, listing, endpoint, before, started)
    except OSError as exc:  # our own writes into the cache: a damaged file deleted, the record, the ref
        failure = Failure(f"{type(exc).__name__}: {exc}", f"{cache.root} must be writable")
    kept = cache.bytes_on_disk(listing.files)
    raise TranscribedError(
        f"model {name!r} ({listing.repo_id}) could not be downloaded from {endpoint} into "
        f"{cache.root}: {failure.message}; "
        + (failure.advice or f"{kept} of {listing.total} bytes are there, and the next start resumes"))


def _fetch_checked(name: str, cache: HubCache, listing: Listing, endpoint: str,
                   progress_seconds: float) -> Failure | None:
    """Fetch until every file is there and checked (None), or say why not.

    A try that breaks off is tried again while each gets further than the one before (a dropped
    connection; not a hub that is gone); a file that arrives damaged is deleted and fetched once
    more, no more (a hub that serves it damaged twice will not do better a third time).
    """
    refetched = False
    failure: Failure | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        if failure is not None:
            log.warning("model.download_retry", model=name, attempt=attempt, error=failure.message,
                        bytes=cache.bytes_on_disk(listing.files), total=listing.total)
            time.sleep(min(2.0 * attempt, 10.0))
        reached = cache.bytes_on_disk(listing.files)
        with _progress_events(name, cache, listing, progress_seconds):
            failure = _fetch(cache, listing, endpoint)
        if failure is None:
            damaged = _discard_damaged(name, cache, listing)
            if not damaged:
                return None
            failure = Failure(f"{', '.join(damaged)} did not match the hash the hub lists for it "
                              f"({'twice; ' if refetched else ''}deleted)",
                              "check the hub (or mirror) that HF_ENDPOINT names", retry=not refetched)
            refetched = True
        elif failure.advice is None and cache.bytes_on_disk(listing.files) <= reached:
            return failure  # no further than before: the hub is gone, not flaky
        if not failure.retry:
            return failure
    return failure


def _listing(name: str, cache: HubCache, endpoint: str) -> Listing:
    """The files, sizes and hashes of the repo's revision, from the hub (the first request)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint).model_info(cache.repo_id, revision=REVISION, files_metadata=True)
    except Exception as exc:  # noqa: BLE001 - offline, refused, 404, 5xx: one message, the cause named
        partial = cache.partial_bytes()
        raise TranscribedError(
            f"model {name!r} is not in {cache.root} and could not be downloaded from {endpoint} "
            f"({type(exc).__name__}: {first_line(exc)})"
            + (f"; {partial} bytes of an earlier download are kept and resumed" if partial else "")
            + "; download it once with network access (HF_ENDPOINT may name a mirror of the hub), "
            "or set model.name to a local directory") from None
    files = []
    for sibling in info.siblings or []:
        etag = sibling.lfs.sha256 if sibling.lfs is not None else sibling.blob_id
        if allowed(sibling.rfilename) and sibling.size is not None and etag:
            files.append(RepoFile(sibling.rfilename, sibling.size, etag))
    missing = [f for f in REQUIRED_FILES if f not in {r.name for r in files}]
    if missing or not info.sha:
        raise TranscribedError(f"model {name!r}: {cache.repo_id} at {endpoint} is not a CTranslate2 "
                               f"Whisper model (no {', '.join(missing) or 'commit'})")
    return Listing(cache.repo_id, info.sha, tuple(files))


def _fetch(cache: HubCache, listing: Listing, endpoint: str) -> Failure | None:
    """huggingface_hub's download of exactly these files at exactly this commit; None when it
    finished (it resumes each file from its `.incomplete` part)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()  # its bars write to stderr; the progress events are the log's
    try:
        snapshot_download(listing.repo_id, revision=listing.commit, cache_dir=str(cache.root),
                          endpoint=endpoint, allow_patterns=[f.name for f in listing.files])
    except Exception as exc:  # noqa: BLE001 - requests or the disk; told apart below
        message = f"{type(exc).__name__}: {first_line(exc)}"
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            needed = listing.total - cache.bytes_on_disk(listing.files)
            return Failure(message, f"{cache.root} must be writable with {needed} more bytes free, "
                           "or model.download_dir set to a folder that is", retry=False)
        # requests' errors are OSErrors without an errno: a dropped or refused connection, a
        # short read ("Consistency check failed"), the hub's HTTP errors.
        return Failure(message)
    return None


def _discard_damaged(name: str, cache: HubCache, listing: Listing) -> list[str]:
    """The files that do not match the listing, deleted so that they are fetched again."""
    snapshot = cache.snapshot(listing.commit)
    stamps: dict[str, Any] = {}
    damaged = []
    for expected in listing.files:
        link = snapshot / expected.name
        problem = check_file(link, expected, stamps) if link.exists() else "missing"
        if problem is not None:
            log.warning("model.corrupt", model=name, file=expected.name, problem=problem,
                        action="deleted; it is downloaded again")
            for path in (link, cache.blob(expected.etag)):
                path.unlink(missing_ok=True)
            damaged.append(expected.name)
    cache.update_record(verified=stamps)
    return damaged


def _finish(name: str, cache: HubCache, listing: Listing, endpoint: str, before: int,
            started: float) -> Snapshot:
    """Record where the files came from, point refs/main at them, log `model.downloaded`."""
    origin = Origin(listing.repo_id, REVISION, listing.commit, endpoint,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
    cache.update_record(repo_id=listing.repo_id, revision=REVISION, commit=listing.commit,
                        endpoint=endpoint, downloaded_at=origin.downloaded_at,
                        files={f.name: {"size": f.size, "etag": f.etag} for f in listing.files})
    cache.point(REVISION, listing.commit)
    seconds = max(time.monotonic() - started, 1e-6)
    fetched = listing.total - before
    path = cache.snapshot(listing.commit)
    log.info("model.downloaded", model=name, repo_id=listing.repo_id, commit=listing.commit,
             endpoint=endpoint, path=str(path), bytes=listing.total, fetched_bytes=fetched,
             seconds=round(seconds, 3), bytes_per_s=int(fetched / seconds))
    return Snapshot(path, origin)


def _drop_oversized_parts(cache: HubCache, listing: Listing) -> None:
    """A part longer than its file can never be resumed (its Range starts past the end), and
    huggingface_hub would fail on it at every start: that file starts over."""
    for f in listing.files:
        part = cache.part(f.etag)
        if size_of(part) > f.size:
            log.warning("model.partial_discarded", file=f.name, bytes=size_of(part), size=f.size)
            part.unlink(missing_ok=True)


@contextlib.contextmanager
def _progress_events(name: str, cache: HubCache, listing: Listing, seconds: float) -> Iterator[None]:
    """While inside, log `model.download_progress` every `seconds`, from the sizes on disk."""
    stop = threading.Event()
    meter = _Meter(cache.bytes_on_disk(listing.files), time.monotonic())

    def report() -> None:
        while not stop.wait(max(seconds, MIN_PROGRESS_SECONDS)):
            log.info("model.download_progress", model=name,
                     **meter.fields(cache.bytes_on_disk(listing.files), listing.total))

    thread = threading.Thread(target=report, name="model-download-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class _Meter:
    """Bytes, percent, rate and time left; the rate counted from this try's start."""

    start_bytes: int
    start_time: float

    def fields(self, done: int, total: int) -> dict[str, Any]:
        rate = (done - self.start_bytes) / max(time.monotonic() - self.start_time, 1e-6)
        return {"bytes": done, "total": total,
                "percent": round(100.0 * done / total, 1) if total else 100.0,
                "bytes_per_s": int(rate),
                "eta_s": round((total - done) / rate, 1) if rate > 0 else None}


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The start of an exception's message (requests' are a whole chain of reprs)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."
