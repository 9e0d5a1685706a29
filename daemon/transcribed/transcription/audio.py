"""Decoding: any audio or video file to 16 kHz mono float32, with PyAV (as faster-whisper does).

No ffmpeg binary is needed. PyAV decodes a truncated mp3, wav or m4a without any error and
returns the partial audio, so the length the file declares for the chosen audio stream (its own,
declared.py: a video may outlast its audio) is compared with what decoded. (An mp3 without a
Xing/Info header declares no length: its duration is estimated from its size, so a truncated one
cannot be told from a short one.)

Time: `Audio.offset_seconds` is where the decoded samples start on the media's clock (the audio
of a camera or a DVR recording may start after its video); every segment and word time is
shifted by it when the results are written (outputs.on_media_clock), so that a subtitle appears
when its word is heard in a player.

Memory: the samples are decoded straight into one float32 array sized from the declared
duration, 64 kB per second of audio (230 MB per hour), where faster-whisper's `decode_audio`
peaks near three times that (an int16 buffer, then two float32 copies). A file longer than
`input.max_audio_seconds` is refused before it is decoded, by its header (a silent hour is a few
MB of FLAC but 230 MB decoded, so a small file could otherwise ask for the machine's memory), and
a file whose header lies or says nothing is stopped once it has decoded past the limit.

Which audio stream: `audio.track` chooses it (tracks.py); the choice and why go into the job's
metadata.

The file is never opened by path by PyAV: `untrusted.open_regular` opens it (only a regular
file, never through a link, never blocking on a FIFO) and PyAV reads that open file.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..config import Input
from ..errors import BadInput, ReadFault, read_fault, unreadable
from .declared import stream_length, stream_offset, wav_data_seconds
from .tracks import Track, TrackSetting, choose_track, stream_of
from .untrusted import NO_LINKS, LinkPolicy, open_regular

SAMPLE_RATE = 16_000
#: Decoded audio may fall short of the declared duration by this much before it counts as truncated.
TRUNCATION_TOLERANCE_SECONDS = 0.5
TRUNCATION_TOLERANCE_RATIO = 0.02
#: Host memory left to the process itself, its libraries and a model on the CPU (large-v3 in
#: float32 is about 3 GB) when `input.max_audio_seconds` is derived from the memory limit.
MODEL_ROOM_BYTES = 4 << 30
#: Host memory one second of audio may cost while its job runs: the float32 samples (64 kB) and
#: room for the copies later stages make of them (an allowance, three times the samples).
BYTES_PER_AUDIO_SECOND = 3 * 4 * SAMPLE_RATE
#: The derived limit is never below this: a machine too small for an hour fails the model first.
MIN_DERIVED_SECONDS = 3600.0
#: cgroup limits at or above this mean "no limit" (cgroup v1 writes 2^63 rounded to a page).
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class Audio:
    """Decoded samples and what the container said about them."""

    samples: np.ndarray
    #: The length the file declares for this audio stream (None: it declares none of its own).
    declared_seconds: float | None
    truncated: bool = False
    track: Track | None = None
    #: Where the first sample is heard on the media's clock (0 = the earliest start of any
    #: stream), in seconds: every segment and word time is shifted by it.
    offset_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode(path: Path, accept_truncated: bool = False, max_seconds: float | None = None,
           links: LinkPolicy = NO_LINKS, track: TrackSetting = "auto") -> Audio:
    """Decode `path` (the audio stream `track` chooses), or raise BadInput saying plainly what is
    wrong with it: not a regular file, empty, longer than `max_seconds` (by its header, before
    decoding; or once decoding passes it), truncated, not audio, no such stream."""
    try:
        with open_regular(path, links) as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise BadInput("empty", "the file is empty (0 bytes)")
            probed = _probe(file, path, track)
            declared = probed.declared
            if max_seconds is not None and declared is not None and declared > max_seconds:
                raise _too_long(f"its header declares {declared:.2f} s of audio", max_seconds)
            file.seek(0)
            samples = _decode_samples(file, path, probed.estimate, max_seconds, probed.track.number)
    except OSError as exc:
        raise unreadable(exc) from None
    audio = Audio(samples, declared, track=probed.track, offset_seconds=probed.offset)
    if declared and audio.seconds < declared - _tolerance(declared):
        if not accept_truncated:
            raise BadInput(
                "truncated",
                f"the file is truncated: its header declares {declared:.2f} s of audio but only "
                f"{audio.seconds:.2f} s could be decoded (set input.accept_truncated to transcribe "
                "what is there)")
        audio = dataclasses.replace(audio, truncated=True)
    if len(samples) == 0:
        raise BadInput("no_audio", "the file holds no audio samples")
    return audio


def decode_input(path: Path, settings: Input, track: TrackSetting = "auto") -> Audio:
    """Decode a job's source under the config's `input` rules (truncation, length, links), the
    audio stream `track` chooses (the job's `audio.track`)."""
    links = LinkPolicy(settings.follow_symlinks, tuple(map(Path, settings.symlink_roots)))
    return decode(path, settings.accept_truncated, max_audio_seconds(settings.max_audio_seconds)[0],
                  links, track)


def declared_seconds(path: Path, links: LinkPolicy = NO_LINKS) -> float | None:
    """How long the (auto-chosen) audio stream is by the header: its own declared length, else
    the container's duration, a bound on it (a video may outlast its audio); None if neither is
    declared. For estimates (the backlog, decoding ahead), not for truncation."""
    try:
        with open_regular(path, links) as file:
            return _probe(file, path, "auto").estimate
    except OSError as exc:
        raise unreadable(exc) from None


@dataclass(frozen=True)
class _Probed:
    """What a file's header says about the audio stream chosen for a job."""

    track: Track
    #: The stream's own declared length (None: it declares none): truncation is judged by it.
    declared: float | None
    #: `declared`, else the container's duration (an upper bound): sizes the decoding buffer.
    estimate: float | None
    #: The stream's start on the media's clock (Audio.offset_seconds).
    offset: float


def _probe(file: BinaryIO, path: Path, track: TrackSetting) -> _Probed:
    """The audio stream `track` chooses, the length the file declares for it, and where it starts."""
    import av

    try:
        with av.open(file, mode="r", metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                kinds = sorted({s.type for s in container.streams}) or ["no streams"]
                raise BadInput("no_audio_stream",
                               f"the file has no audio stream (it has: {', '.join(kinds)})")
            chosen = choose_track([stream_of(number, s) for number, s in enumerate(streams)], track)
            stream = streams[chosen.number]
            declared = stream_length(container, stream)
            whole = None if container.duration is None else float(container.duration / av.time_base)
            offset, wav = stream_offset(container, stream), container.format.name == "wav"
        if wav:  # FFmpeg sizes a WAV's audio by the bytes there are: the header says what was meant
            meant = wav_data_seconds(file)
            if meant is not None and (declared is None or meant > declared):
                declared = meant
        return _Probed(chosen, declared, declared if declared is not None else whole, offset)
    except PermissionError as exc:
        raise unreadable(exc) from None
    except BadInput:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError, OSError) as exc:
        raise _read_fault(exc) or BadInput("not_audio", f"not a readable audio or video file: "
                                                        f"{_last_line(exc, path)}") from None


def max_audio_seconds(setting: float | str) -> tuple[float, str]:
    """`input.max_audio_seconds` as a number, and where it came from (said at start): the
    setting, or for "auto" the memory this process may use (its cgroup's limit, else the RAM)
    less room for the model, at BYTES_PER_AUDIO_SECOND."""
    if not isinstance(setting, str):
        return float(setting), "input.max_audio_seconds"
    return _derived_max_audio_seconds()


@functools.cache
def _derived_max_audio_seconds() -> tuple[float, str]:
    limit, source = memory_limit()
    seconds = max(MIN_DERIVED_SECONDS, (limit - MODEL_ROOM_BYTES) / BYTES_PER_AUDIO_SECOND)
    return float(round(seconds)), (f"auto: {limit / 2**30:.1f} GiB ({source}) less "
                                   f"{MODEL_ROOM_BYTES / 2**30:.0f} GiB for the model, at "
                                   f"{BYTES_PER_AUDIO_SECOND // 1000} kB per second of audio")


def memory_limit(cgroup_root: Path = Path("/sys/fs/cgroup")) -> tuple[int, str]:
    """The memory this process may use, in bytes, and what set it: its cgroup's limit (v2
    memory.max, or v1 memory.limit_in_bytes) when there is one below the RAM, else the RAM."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _cgroup_limit_files(cgroup_root):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < min(ram, _UNLIMITED):
            return int(text), f"cgroup limit {path}"
    return ram, "RAM"


def _cgroup_limit_files(root: Path) -> list[Path]:
    """Where this process's cgroup memory limit may be written (v2, then v1; the folder named in
    /proc/self/cgroup, then the mount's root, which is the cgroup itself inside a container)."""
    files = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            files.append(root / group.lstrip("/") / "memory.max")
        elif "memory" in controllers.split(","):
            files.append(root / "memory" / group.lstrip("/") / "memory.limit_in_bytes")
    return [*files, root / "memory.max", root / "memory" / "memory.limit_in_bytes"]


def _read_fault(exc: Exception) -> ReadFault | None:
    """The file's own read failing in the storage under it (a Python OSError from the file object
    FFmpeg reads through, re-raised by PyAV), not FFmpeg finding the bytes wrong: a ReadFault."""
    import av

    if isinstance(exc, av.error.FFmpegError) or not isinstance(exc, OSError):
        return None
    return read_fault(exc)


def _too_long(what: str, limit: float) -> BadInput:
    return BadInput("too_long", f"the file is too long: {what}, more than input.max_audio_seconds "
                    f"({limit:g} s, which bounds the memory one job may take); it was not decoded "
                    "further. Split it, or raise input.max_audio_seconds")


def _decode_samples(file: BinaryIO, path: Path, declared: float | None,
                    max_seconds: float | None, stream: int = 0) -> np.ndarray:
    import av

    try:
        return _decode_into_array(file, declared, max_seconds, stream)
    except PermissionError as exc:
        raise unreadable(exc) from None
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError, OSError) as exc:
        raise _read_fault(exc) or BadInput("not_audio", f"the audio cannot be decoded: "
                                                        f"{_last_line(exc, path)}") from None


def _decode_into_array(file: BinaryIO, declared: float | None, max_seconds: float | None,
                       stream: int = 0) -> np.ndarray:
    """faster-whisper's decoding (s16 mono at 16 kHz, then / 32768) of audio stream `stream`,
    one array, no copies."""
    import av

    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    limit = None if max_seconds is None else round(max_seconds * SAMPLE_RATE) + SAMPLE_RATE
    out = _Growing(round((declared or 60.0) * SAMPLE_RATE * 1.01) + SAMPLE_RATE, limit, max_seconds)
    with av.open(file, mode="r", metadata_errors="ignore") as container:
        for group in _grouped(_valid_frames(container.decode(audio=stream)), 500_000):
            for frame in resampler.resample(group):
                out.append(frame.to_ndarray().reshape(-1))
        for frame in resampler.resample(None):
            out.append(frame.to_ndarray().reshape(-1))
    del resampler
    gc.collect()  # PyAV's resampler objects are freed only by the collector (faster-whisper #390)
    return out.result()


class _Growing:
    """A float32 array filled chunk by chunk; grows by half when the declared length was short,
    never past `limit` samples (a header that lied, or said nothing, about a very long file)."""

    def __init__(self, capacity: int, limit: int | None = None, max_seconds: float | None = None) -> None:
        self.limit, self.max_seconds = limit, max_seconds
        self.array = np.empty(max(min(capacity, limit or capacity), 1), dtype=np.float32)
        self.length = 0

    def append(self, pcm16: np.ndarray) -> None:
        end = self.length + len(pcm16)
        if self.limit is not None and self.max_seconds is not None and end > self.limit:
            raise _too_long(f"it decodes to more than {self.max_seconds:g} s of audio",
                            self.max_seconds)
        if end > len(self.array):
            grown = max(end, len(self.array) * 3 // 2)
            self.array = np.resize(self.array, min(grown, self.limit or grown))
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
