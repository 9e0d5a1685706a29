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
