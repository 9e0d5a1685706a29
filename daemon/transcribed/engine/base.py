"""The engine seam: what the consumer loop needs from a speech-to-text engine, and the plain data
that crosses it (speech chunks, segments, transcripts).

Both engines (whisperx_engine.WhisperXEngine and fake.FakeEngine) honour the whole `Engine`
Protocol: speech finding (used ahead of time by the prefetch thread) and shared model calls for
several files (cross-file batching) are declared here, not probed, so the same consumer code
runs against either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypedDict

import numpy as np

from ..config.models import ModelChoice
from .decoding import Decoded, Thresholds

if TYPE_CHECKING:
    from .catalogue import Catalogue

#: Called with the percentage done; also the consumer's heartbeat during long jobs.
Progress = Callable[[float], None]


class _SpeechChunkCore(TypedDict):
    start: float
    end: float


class SpeechChunk(_SpeechChunkCore, total=False):
    """A stretch of speech found by voice activity detection, in seconds from the start."""

    #: How much of it the VAD marked as speech (a chunk joins stretches and the gaps between
    #: them); absent where the VAD does not say.
    speech_seconds: float
    #: The VAD's own speech stretches inside it, (start, end) in seconds from the file's start;
    #: the recheck reads them (engine/recheck.py). Absent where the VAD does not say.
    stretches: list[tuple[float, float]]


class _SegmentCore(TypedDict):
    start: float
    end: float
    text: str


class Segment(_SegmentCore, total=False):
    """One piece of a transcript, as whisperx's writers read it."""

    avg_logprob: float
    #: Whisper's probability that the chunk holds no speech, how much its text compresses (a
    #: loop compresses well), and the speech the VAD found under it: what filters.py reads.
    no_speech_prob: float
    compression_ratio: float
    speech_seconds: float
    #: The sampling temperature of a chunk decoded again (`model.temperature_fallback`).
    temperature: float
    #: Word timings (after alignment) and the speaker label (after diarization).
    words: list[dict[str, Any]]
    speaker: str


class _TranscriptCore(TypedDict):
    segments: list[Segment]
    language: str | None


class Transcript(_TranscriptCore, total=False):
    """What an engine returns for one file: whisperx's result shape."""

    language_probability: float | None
    #: The language of the text (`language` is the spoken one): English for a translation.
    text_language: str | None
    word_segments: list[dict[str, Any]]
    #: How many files shared its Whisper window, itself included (packing.py); absent when the
    #: file had its windows to itself.
    packed_files: int


def segment_of(chunk: SpeechChunk, out: Decoded) -> Segment:
    """One decoded chunk as a segment over the chunk's own time, with Whisper's figures for
    filters.py and the speech the VAD found under it."""
    segment = Segment(text=out.text, start=round(chunk["start"], 3), end=round(chunk["end"], 3),
                      avg_logprob=out.avg_logprob, no_speech_prob=round(out.no_speech_prob, 4),
                      compression_ratio=out.compression_ratio)
    if "speech_seconds" in chunk:
        segment["speech_seconds"] = chunk["speech_seconds"]
    if out.temperature > 0:
        segment["temperature"] = out.temperature  # decoded again (temperature_fallback)
    return segment



class SpeechOf(NamedTuple):
    """One file's part of a shared model call: its 16 kHz mono float32 samples and speech chunks."""

    samples: np.ndarray
    speech: list[SpeechChunk]
    #: The file's name (engines that report per file use it; the fake one is scripted by it).
    file: str = ""


@dataclass(frozen=True)
class Request:
    """What one job asks of the engine (from the config, a route or a per-file sidecar)."""

    language: str | None = None
    task: str = "transcribe"
    #: The file's name, for engines that report per file (the fake one is scripted by it).
    file: str = ""
    #: Text that steers the decoder (names, spellings), and words to favour.
    initial_prompt: str | None = None
    hotwords: str | None = None
    #: Whisper's thresholds, and whether it decodes again hotter or prompts with earlier text.
    decoding: Thresholds = field(default_factory=Thresholds)
    #: The Whisper model to run (None: the engine's default, `settings`), which must be loaded
    #: (`load_model`), and its beam size (None: the model's configured one).
    model: ModelChoice | None = None
    beam_size: int | None = None


@dataclass(frozen=True)
class EngineSettings:
    """What the engine runs with, once `auto` has been decided, and why."""

    model: str
    model_path: str
    model_source: str
    device: str
    device_index: int
    compute_type: str
    batch_size: int
    cpu_threads: int
    reasons: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The fields that go into each job's metadata."""
        data = asdict(self)
        data.pop("reasons")
        return data


class Engine(Protocol):
    """A resident speech-to-text engine, used by one consumer thread, one job at a time (the
    prefetch thread may call `find_speech`, which uses no Whisper model, beside it)."""

    settings: EngineSettings
    #: False for an English-only model (its language is always "en"); known after `load`.
    multilingual: bool
    #: Every Whisper model this engine may run, their settings and their sizes (catalogue.py).
    catalogue: Catalogue

    def load(self) -> None:
        """Load the models: at start, before the first job, and again after `unload`. Of the
        Whisper models, the default one (`settings`)."""

    def unload(self) -> None:
        """Release the models and the accelerator memory they hold (`model.idle_unload_seconds`:
        nothing to do for a while); the engine is unusable until `load` is called again."""

    def loaded_models(self) -> list[ModelChoice]:
        """The Whisper models loaded now, in the order they were loaded."""

    def load_model(self, model: ModelChoice) -> None:
        """Load one more Whisper model of the catalogue beside those loaded (the VAD is shared).
        Out of memory raises the library's own error, and nothing is kept of the attempt."""

    def unload_model(self, model: ModelChoice) -> None:
        """Release one Whisper model and the memory it holds (the others stay)."""

    def find_speech(self, samples: np.ndarray) -> list[SpeechChunk]:
        """Voice activity detection: the speech chunks of 16 kHz mono float32 samples."""

    def language_of(self, samples: np.ndarray, speech: list[SpeechChunk],
                    request: Request) -> tuple[str, float | None]:
        """The job's language (given, or detected from its first speech) and its probability."""

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress, speech: list[SpeechChunk] | None = None) -> Transcript:
        """Transcribe one file; `speech`: its chunks when found ahead, else found here."""

    def transcribe_speech(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress) -> list[Transcript]:
        """One model call for the speech of several files that share `request` (its language
        decided): one transcript per file, in order."""

    def transcribe_packed(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress, gap_seconds: float, max_files: int) -> list[Transcript | None]:
        """Several short files' speech laid into shared 30 s windows (packing.py: at least
        `gap_seconds` of silence between files), each window encoded once and each file's
        speech decoded on its own from it (engine/shared_window.py). All files share `request`
        (its language decided). One entry per file, in order; None for a file in no window:
        the caller transcribes it alone."""

    def vad_retry_fits(self) -> bool:
        """After a VAD out-of-memory, which the engine answers by halving its own VAD batch: True
        while that batch is still above 1, so the retry need not shrink the Whisper batch."""

    def free_memory(self) -> int | None:
        """Release cached accelerator memory after an out-of-memory error; free bytes if known."""

    def memory_in_use(self) -> tuple[int, int] | None:
        """Accelerator memory (used, total) in bytes, or None on the CPU or when unknown."""

    def on_cpu(self, model: ModelChoice | None = None) -> Engine:
        """An engine of `model` (None: the default) on the CPU (int8), loaded, for the
        out-of-memory fallback of one job."""

    def close(self) -> None:
        """Release the models."""
