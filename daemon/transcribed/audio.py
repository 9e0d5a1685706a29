"""Decoding: any audio or video file to 16 kHz mono float32, with PyAV (faster-whisper's decoder).

No ffmpeg binary is needed. PyAV decodes a truncated mp3, wav or m4a without any error and
returns the partial audio, so the container's declared duration is compared with what decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BadInput

SAMPLE_RATE = 16_000
#: Decoded audio may fall short of the declared duration by this much before it counts as truncated.
TRUNCATION_TOLERANCE_SECONDS = 0.5
TRUNCATION_TOLERANCE_RATIO = 0.02


@dataclass(frozen=True)
class Audio:
    """Decoded samples and what the container said about them."""

    samples: np.ndarray
    declared_seconds: float | None
    truncated: bool = False

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode(path: Path, accept_truncated: bool = False) -> Audio:
    """Decode `path`, or raise BadInput saying plainly what is wrong with it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput("unreadable", f"cannot read the file: {exc.strerror}") from None
    if size == 0:
        raise BadInput("empty", "the file is empty (0 bytes)")
    declared = declared_seconds(path)
    samples = _decode_samples(path)
    audio = Audio(samples, declared)
    if declared and audio.seconds < declared - _tolerance(declared):
        if not accept_truncated:
            raise BadInput(
                "truncated",
                f"the file is truncated: its header declares {declared:.2f} s of audio but only "
                f"{audio.seconds:.2f} s could be decoded (set input.accept_truncated to transcribe "
                "what is there)")
        audio = Audio(samples, declared, truncated=True)
    if len(samples) == 0:
        raise BadInput("no_audio", "the file holds no audio samples")
    return audio


def declared_seconds(path: Path) -> float | None:
    """The duration the container declares for its first audio stream (None if it declares none)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                kinds = sorted({s.type for s in container.streams}) or ["no streams"]
                raise BadInput("no_audio_stream",
                               f"the file has no audio stream (it has: {', '.join(kinds)})")
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
            return None
    except PermissionError as exc:
        raise BadInput("unreadable", f"cannot read the file: {exc.strerror}") from None
    except BadInput:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError, OSError) as exc:
        raise BadInput("not_audio", f"not a readable audio or video file: {_last_line(exc, path)}") from None


def _decode_samples(path: Path) -> np.ndarray:
    import av
    from faster_whisper.audio import decode_audio

    try:
        return decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except PermissionError as exc:
        raise BadInput("unreadable", f"cannot read the file: {exc.strerror}") from None
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError, OSError) as exc:
        raise BadInput("not_audio", f"the audio cannot be decoded: {_last_line(exc, path)}") from None


def _tolerance(declared: float) -> float:
    return max(TRUNCATION_TOLERANCE_SECONDS, declared * TRUNCATION_TOLERANCE_RATIO)


def _last_line(exc: BaseException, path: Path) -> str:
    """The useful part of a decoder error, without the work folder's path in it."""
    text = str(exc).replace(f": '{path}'", "").replace(str(path), path.name).strip().splitlines()
    return text[-1] if text else type(exc).__name__
