"""The engine's sections: how speech is found (`vad`, with a long recording's own way), how
files share model calls (`batching`, `packing`), what is prepared ahead (`overlap`) and what
happens when the GPU runs out of memory (`oom`). Their defaults are the measured ones
(docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .per_file import Auto


@dataclass(frozen=True)
class Vad:
    """Voice activity detection: whisperx's bundled pyannote model, or faster-whisper's Silero."""

    #: pyannote (whisperx's default) or silero (faster-whisper's ONNX Silero VAD v6, several times
    #: lighter; see docs/performance.md for what each costs and gains on the corpus).
    method: str = "pyannote"
    #: Speech starts above this score (Silero: its speech threshold).
    onset: float = 0.5
    #: Speech ends below this score (Silero: its silence threshold, neg_threshold).
    offset: float = 0.363
    #: Longest merged speech chunk handed to Whisper, in seconds.
    chunk_seconds: float = 30.0
    #: How far pyannote's 5 s analysis window moves per step (its default: 0.5). 2.5 makes the
    #: VAD ~2.5x cheaper and CPU jobs 1.15-1.5x faster, for +0.3-0.4 WER points on the corpus
    #: (bench/compare.py --switch): a speed switch, not the default.
    step_seconds: float = 0.5
    #: A file at least this long is a long recording: its speech is found by `long_method` and
    #: what Whisper left out of it is decoded again (`recheck_seconds`). 0: every file.
    long_seconds: float = 120.0
    #: The VAD of a long recording; null: `method`'s. pyannote (at `long_step_seconds`: 1.03-1.2x
    #: faster-whisper's batched loop and 2.1-2.5x the whisperx loop on the CPU, never less accurate
    #: than the loop on the long recordings measured) or silero (faster still: 15 % before
    #: pyannote's CPU changes; up to 3 WER points worse on some; docs/performance.md#one-long-recording).
    long_method: str | None = None
    #: pyannote's step for a long recording: 2.5 s (half its 5 s window) makes its VAD ~5x cheaper,
    #: the half of a long job's time it was on the CPU; the recheck wins back what it misses.
    long_step_seconds: float = 2.5
    #: Silero: a pause this long ends a speech stretch (faster-whisper's default, 2 s, joins whole
    #: sentences past Whisper's window, which then cuts them where no pause is; words were lost).
    min_silence_seconds: float = 0.3
    #: Silero: speech padding added either side of each stretch (faster-whisper's default: 0.4).
    pad_seconds: float = 0.2
    #: Long recordings: this much VAD speech in which no decoded word starts (found by aligning the
    #: decoded tokens to the audio) is decoded again on its own, its text put in place. 0: off.
    recheck_seconds: float = 2.0

    @property
    def long_vad(self) -> str:
        """The VAD of a long recording: `long_method`, else `method`."""
        return self.long_method or self.method


@dataclass(frozen=True)
class Oom:
    """What happens on CUDA out-of-memory."""

    #: At batch size 1: cpu = run this job on the CPU with int8; fail = the job to failed/.
    fallback: Literal["cpu", "fail"] = "cpu"
    #: After this many successes at a lowered batch size, try doubling it again.
    probe_after_jobs: int = 10


@dataclass(frozen=True)
class Batching:
    """Short files decoded together: one model call fills a batch that one file alone cannot."""

    #: auto: on a GPU; off on the CPU, where it was measured slower. true/false: always/never.
    enabled: bool | Auto = "auto"
    #: How many waiting files may share a call.
    max_files: int = 8
    #: Only files up to this long share; longer ones fill batches on their own.
    max_audio_seconds: float = 60.0


@dataclass(frozen=True)
class Packing:
    """Short files' speech laid into one shared 30 s Whisper window, encoded once, each file
    decoded on its own from it (engine/packing.py, engine/shared_window.py; docs/performance.md)."""

    #: auto: on the CPU, where the encoder's 30 s window is most of a short file's time
    #: (measured: 1.8x faster on short clips at the same word error rate); off on a GPU until
    #: bench/gpu.py measures it there. A packed file's text can differ from its text alone.
    enabled: bool | Auto = "auto"
    #: How many files may share one window.
    max_files: int = 4
    #: The least silence laid between two files' speech (the room left is shared out evenly).
    gap_seconds: float = 2.0
    #: Only files up to this long are packed; longer ones are transcribed as before.
    max_audio_seconds: float = 10.0


@dataclass(frozen=True)
class Overlap:
    """The next files decoded, and their speech found, while the consumer transcribes."""

    #: auto: on a GPU; on the CPU with vad.method silero (measured faster; slower with pyannote).
    enabled: bool | Auto = "auto"
    #: How many claimed files may wait decoded ahead (each holds 64 kB per second of audio).
    files_ahead: int = 1
    #: Files whose header declares more than this (or nothing) are decoded by the consumer when
    #: their turn comes, not ahead: a long recording is not held in memory twice.
    max_audio_seconds: float = 3600.0
    #: A file claimed ahead that waits longer than this behind a long job goes back to the inbox,
    #: for another daemon on the same inbox (or this one, later, without the head start).
    max_wait_seconds: float = 60.0
