"""The error tree: the consumer decides what happens to a job by the type of what was raised."""

from __future__ import annotations

from typing import Any


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
