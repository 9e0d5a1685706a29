"""Decoding: any audio or video file to 16 kHz mono float32, with PyAV (as faster-whisper does).

No ffmpeg binary is needed. PyAV decodes a truncated mp3, wav or m4a without any error and
returns the partial audio, so the container's declared duration is compared with what decoded.
(An mp3 without a Xing/Info header declares no length: its duration is estimated from its size,
so a truncated one cannot be told from a short one.)

Memory: the samples are decoded straight into one float32 array sized from the declared
duration, 64 kB per second of audio (230 MB per hour), where faster-whisper's `decode_audio`
peaks near three times that (an int16 buffer, then two float32 copies).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    samples = _decode_samples(path, declared)
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
                return float(container.duration / av.time_base)
            return None
    except PermissionError as exc:
        raise BadInput("unreadable", f"cannot read the file: {exc.strerror}") from None
    except BadInput:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError, OSError) as exc:
        raise BadInput("not_audio", f"not a readable audio or video file: {_last_line(exc, path)}") from None


def _decode_samples(path: Path, declared: float | None) -> np.ndarray:
    import av

    try:
        return _decode_into_array(path, declared)
    except PermissionError as exc:
        raise BadInput("unreadable", f"cannot read the file: {exc.strerror}") from None
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError, OSError) as exc:
        raise BadInput("not_audio", f"the audio cannot be decoded: {_last_line(exc, path)}") from None


def _decode_into_array(path: Path, declared: float | None) -> np.ndarray:
    """faster-whisper's decoding (s16 mono at 16 kHz, then / 32768), one array, no copies."""
    import av

    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    out = _Growing(round((declared or 60.0) * SAMPLE_RATE * 1.01) + SAMPLE_RATE)
    with av.open(str(path), mode="r", metadata_errors="ignore") as container:
        for group in _grouped(_valid_frames(container.decode(audio=0)), 500_000):
            for frame in resampler.resample(group):
                out.append(frame.to_ndarray().reshape(-1))
        for frame in resampler.resample(None):
            out.append(frame.to_ndarray().reshape(-1))
    del resampler
    gc.collect()  # PyAV's resampler objects are freed only by the collector (faster-whisper #390)
    return out.result()


class _Growing:
    """A float32 array filled chunk by chunk; grows by half when the declared length was short."""

    def __init__(self, capacity: int) -> None:
        self.array = np.empty(max(capacity, 1), dtype=np.float32)
        self.length = 0

    def append(self, pcm16: np.ndarray) -> None:
        end = self.length + len(pcm16)
        if end > len(self.array):
            self.array = np.resize(self.array, max(end, len(self.array) * 3 // 2))
        np.divide(pcm16, 32768.0, out=self.array[self.length:end], dtype=np.float32, casting="unsafe")
        self.length = end

    def result(self) -> np.ndarray:
        if self.length < len(self.array) * 0.9:  # far shorter than declared (truncated): give back the rest
            return np.copy(self.array[: self.length])
        return self.array[: self.length]


def _valid_frames(frames: Iterator[Any]) -> Iterator[Any]:
    """Skip frames the decoder rejects, as faster-whisper does."""
    import av

    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _grouped(frames: Iterator[Any], num_samples: int) -> Iterator[Any]:
    """Frames joined into blocks of about `num_samples` (resampling tiny frames is slow)."""
    import av

    fifo = av.audio.fifo.AudioFifo()
    for frame in frames:
        frame.pts = None  # ignore timestamp gaps, as faster-whisper does
        fifo.write(frame)
        if fifo.samples >= num_samples:
            yield fifo.read()
    if fifo.samples > 0:
        yield fifo.read()


def _tolerance(declared: float) -> float:
    return max(TRUNCATION_TOLERANCE_SECONDS, declared * TRUNCATION_TOLERANCE_RATIO)


def _last_line(exc: BaseException, path: Path) -> str:
    """The useful part of a decoder error, without the work folder's path or FFmpeg's errno."""
    text = str(exc).replace(f": '{path}'", "").replace(str(path), path.name).strip().splitlines()
    line = text[-1] if text else type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", line)
