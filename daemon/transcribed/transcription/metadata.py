"""What a job's JSON says about how it ran: the `transcribed` block (Metadata), and what one run
of the pipeline learns along the way (Run: its stage, timings, back-offs, notes)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .. import __version__
from ..engine.base import EngineSettings, Transcript
from ..spool.jobs import Job
from .audio import Audio
from .options import Effective


class Metadata(TypedDict, total=False):
    """The `transcribed` block of a job's JSON result: what ran, how, and how long it took."""

    source: str
    #: The job source that claimed it: inbox, library, objectstore.
    intake: str
    job_id: str
    attempts: int
    worker: str
    version: str
    audio_seconds: float
    #: The length the file declares for the transcribed audio stream (None: none of its own).
    declared_seconds: float | None
    #: Where that stream starts on the media's clock: every time in the results includes it.
    audio_offset_seconds: float
    truncated: bool
    #: The spoken language (given or detected, with Whisper's probability when detected), and
    #: the language of the text: English for a translation (`task: translate`), else the same.
    language: str | None
    language_probability: float | None
    text_language: str | None
    model: str
    model_source: str
    device: str | None
    compute_type: str
    batch_size: int | None
    oom_backoffs: list[dict[str, Any]]
    options: dict[str, Any]
    timings: dict[str, float]
    realtime_factor: float | None
    #: Notes of the later stages: "words" or "unavailable: ...", how many speakers, and how the
    #: job ran (decoded ahead, files in its shared model call).
    alignment: str
    speakers: int
    prepared_ahead: bool
    shared_batch_files: int
    #: Files whose speech shared its Whisper window (engine/packing.py), itself included, and the
    #: silence laid between them.
    packed_files: int
    packed_gap_seconds: float
    #: The audio stream transcribed and why (audio.track), and what each post-filter removed.
    audio_track: dict[str, Any]
    filters: dict[str, int]
    #: `also_english`: the English translation's segments and what the filters removed from it.
    translation: dict[str, Any]


@dataclass
class Run:
    """What one run of the pipeline learned along the way."""

    stage: str = "claim"
    timings: dict[str, float] = field(default_factory=dict)
    backoffs: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int | None = None
    device: str | None = None
    #: What the later stages did: alignment "words"/"unavailable: ...", speakers: how many.
    notes: Metadata = field(default_factory=Metadata)
    #: The diarization's speaker turns, for the English translation's segments too.
    speaker_turns: Any = None


def job_metadata(job: Job, audio: Audio, result: Transcript, options: Effective,
                 started: float, settings: EngineSettings, run: Run, worker: str) -> Metadata:
    """The `transcribed` block for a job as it stands now (written with each output)."""
    total = round(time.monotonic() - started, 3)
    on_fallback = run.device != settings.device
    return {
        "source": printable(str(job.relpath)), "intake": job.intake, "job_id": job.id,
        "attempts": job.attempts,
        "worker": worker, "version": __version__,
        "audio_seconds": round(audio.seconds, 3), "declared_seconds": audio.declared_seconds,
        "audio_offset_seconds": audio.offset_seconds, "truncated": audio.truncated,
        **({"audio_track": audio.track.describe()} if audio.track else {}),
        "language": result.get("language"),
        "language_probability": result.get("language_probability"),
        "text_language": result.get("text_language", result.get("language")),
        "model": settings.model, "model_source": settings.model_source,
        "device": run.device,
        "compute_type": "int8" if on_fallback else settings.compute_type,
        "batch_size": run.batch_size, "oom_backoffs": run.backoffs,
        "options": options.describe(), **run.notes,
        "timings": {**run.timings, "total": total},
        "realtime_factor": round(audio.seconds / total, 2) if total > 0 else None,
    }


def printable(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (kept by Python as lone surrogates)
    shown as \\xNN, so whisperx's JSON writer can write it."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
