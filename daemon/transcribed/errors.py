"""The error tree: the consumer decides what happens to a job by the type of what was raised."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What a filesystem answers when it takes no write at all, whatever is written, by the name the
#: reports give each condition. ENOSPC is also "no inodes left". Each ends by itself (space freed,
#: a quota raised, a remount) with nothing to change in the file; EFBIG (one file too large) and
#: EACCES (a permission) are not among them: waiting cures neither.
STORAGE_ERRNOS = {errno.ENOSPC: "full", errno.EDQUOT: "quota_exceeded", errno.EROFS: "read_only"}


#: What a read answers when the storage under a file fails rather than the file: an I/O error, a
#: share's server away or unreachable, a stale handle. The same read may work a moment later.
READ_FAULT_ERRNOS = frozenset({errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.ETIMEDOUT, errno.EHOSTDOWN,
                               errno.EHOSTUNREACH, errno.ECONNABORTED, errno.ECONNRESET, errno.ENETDOWN,
                               errno.ENETUNREACH, errno.ENETRESET})


class TranscribedError(Exception):
    """Base class for all transcribed errors."""


class ConfigError(TranscribedError):
    """A configuration key is unknown, missing or invalid; the message names the key."""


class BadInput(TranscribedError):
    """The file cannot be transcribed as it is: it goes to failed/ and is never retried."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        #: A stable, machine-readable reason: empty, not_audio, no_audio_stream, truncated, unreadable.
        self.kind = kind


class ReadFault(TranscribedError, OSError):
    """Reading the file failed in the storage under it (an I/O error, a share's server away), not
    in the file: never BadInput, which fails a file at once. The consumer waits while the job's
    folder cannot be reached, else retries it as any other error, the attempt counted: a disk that
    keeps failing the read ends as `poison` after `jobs.max_attempts`, with this message. An
    OSError with the same errno, so every `except OSError` that handled the read before still does."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.errno, f"cannot read the file: {cause.strerror} (the storage under it "
                         "failed, not the file: tried again)", cause.filename)


def read_fault(cause: OSError) -> ReadFault | None:
    """`cause` as a ReadFault when the storage under the file failed (`READ_FAULT_ERRNOS`), else None."""
    return ReadFault(cause) if cause.errno in READ_FAULT_ERRNOS else None


def unreadable(cause: OSError) -> ReadFault | BadInput:
    """What an OSError from reading a job's file means: a ReadFault when the storage failed, else
    the file cannot be read as it is (a permission, a name too long)."""
    return read_fault(cause) or BadInput("unreadable", f"cannot read the file: {cause.strerror}")


class OutOfMemory(TranscribedError):
    """The job does not fit in memory even at batch size 1, and the fallback is to fail it."""


class GpuLost(TranscribedError):
    """The GPU is gone (CUDA error 999, device lost): only a fresh process can use it again."""


#: What a transcript kept lacks when each stage after transcription fails.
_MISSING_AFTER = {"align": "word timestamps", "diarize": "speaker labels",
                  "translate": "the English translation"}


class StageFailed(TranscribedError):
    """A stage after transcription failed; the plain transcript written before it is kept."""

    def __init__(self, stage: str, reason: str, kept: dict[str, Any]) -> None:
        super().__init__(f"{stage} failed: {reason}; the plain transcript was kept, "
                         f"without {_MISSING_AFTER.get(stage, stage)}")
        self.stage = stage
        #: The outputs already written (suffix -> staged path), for the outbox.
        self.kept = kept


class FailedIn(TranscribedError):
    """An error raised inside one stage of a job's pipeline (decode, vad, transcribe, write,
    align...): the consumer decides the outcome from `error` and reports `stage`."""

    def __init__(self, stage: str, error: Exception) -> None:
        super().__init__(f"{stage}: {type(error).__name__}: {error}")
        self.stage = stage
        self.error = error


class StorageFault(TranscribedError, OSError):
    """A write of the daemon's own refused by a full, over-quota or read-only filesystem: never
    the file's fault, so it never counts an attempt nor fails a job; the job waits for storage.

    Raised only where the daemon writes into its own folders (`durable.own_write`), never decided
    from an errno met elsewhere (inotify's watch limit answers ENOSPC too). An OSError with the
    same errno, so every `except OSError` that handled the write before still does."""

    def __init__(self, cause: OSError, folder: Path) -> None:
        super().__init__(cause.errno, cause.strerror, cause.filename)
        #: The folder whose filesystem refused the write (probed before the daemon goes on).
        self.folder = folder
        #: "full", "quota_exceeded" or "read_only".
        self.condition = STORAGE_ERRNOS.get(cause.errno or 0, "full")
        #: What is left of the job's work once storage takes writes again, kept in memory (the
        #: finished transcript's write, say), or None: the job runs again from its start.
        self.resume: Callable[[], Any] | None = None


def storage_fault(error: BaseException, folder: Path) -> StorageFault | None:
    """`error` as a StorageFault of `folder` when it is one (a full, over-quota or read-only
    filesystem), else None."""
    if isinstance(error, StorageFault):
        return error
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return StorageFault(error, folder)
    return None
