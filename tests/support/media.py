"""Writers of test input files, made with real encoders (PyAV's bundled FFmpeg, wave), no ffmpeg binary.

Samples are float32 mono at 16 kHz, the format faster_whisper.decode_audio returns.
"""

from __future__ import annotations

import os
import time
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000

AudioSource = str | os.PathLike | np.ndarray


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write float samples in [-1, 1] as a 16-bit mono PCM wav."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return Path(path)


def write_silence_wav(path: str | os.PathLike, seconds: float, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a wav of digital silence."""
    return write_wav(path, np.zeros(round(seconds * sample_rate), dtype=np.float32), sample_rate)


def write_tone_wav(
    path: str | os.PathLike, seconds: float, frequency: float = 440.0, sample_rate: int = SAMPLE_RATE
) -> Path:
    """Write a wav of a steady sine tone (sound that is not speech)."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float32) / sample_rate
    return write_wav(path, 0.3 * np.sin(2 * np.pi * frequency * t), sample_rate)


def write_mp3(path: str | os.PathLike, source: AudioSource) -> Path:
    """Encode `source` (an audio file or 16 kHz float samples) as mp3 with LAME."""
    return _encode_audio(path, _samples(source), codec="libmp3lame", container_format="mp3")


def write_m4a(path: str | os.PathLike, source: AudioSource, faststart: bool = False) -> Path:
    """Encode `source` as AAC in an MP4 (m4a) container, the moov atom first if `faststart`."""
    # Without faststart the index (moov) comes last, so a truncated copy cannot be opened at all;
    # with it a truncated copy decodes partially. Tests want both.
    options = {"movflags": "faststart"} if faststart else {}
    return _encode_audio(path, _samples(source), codec="aac", container_format="mp4", container_options=options)


def write_video_without_audio(path: str | os.PathLike, seconds: float = 1.0, fps: int = 10) -> Path:
    """Write an mp4 holding one MPEG-4 video stream and no audio stream."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(round(seconds * fps)):
            image = np.full((64, 64, 3), (index * 20) % 256, dtype=np.uint8)  # changing grey frames
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder
    return Path(path)


def write_random_bytes(path: str | os.PathLike, size: int, seed: int = 0) -> Path:
    """Write `size` seeded random bytes: a file no decoder can read, whatever its name claims."""
    Path(path).write_bytes(np.random.default_rng(seed).bytes(size))
    return Path(path)


def write_text_as(path: str | os.PathLike, text: str = "This is a text file, not audio.\n") -> Path:
    """Write plain text under a media name such as `notes.wav`."""
    Path(path).write_text(text, encoding="utf-8")
    return Path(path)


def truncate(path: str | os.PathLike, keep_fraction: float) -> int:
    """Cut a file to the first `keep_fraction` of its bytes, like an interrupted upload; return the new size."""
    size = round(os.path.getsize(path) * keep_fraction)
    os.truncate(path, size)
    return size


def copy_slowly(src: str | os.PathLike, dst: str | os.PathLike, seconds: float, chunks: int = 10) -> None:
    """Copy `src` to `dst` in `chunks` writes spread over `seconds`, like a copy over a slow share."""
    data = Path(src).read_bytes()
    chunk_size = -(-len(data) // chunks)  # ceiling division, so `chunks` writes cover everything
    pause = seconds / (chunks - 1) if chunks > 1 else 0.0
    # One open file for the whole copy, as a copy tool does: the watcher sees one create, many
    # modifications and a single close at the end.
    with open(dst, "wb") as out:
        for index in range(chunks):
            if index:
                time.sleep(pause)
            out.write(data[index * chunk_size : (index + 1) * chunk_size])
            out.flush()
            os.fsync(out.fileno())  # make each chunk visible in the file size right away


def decoded_seconds(path: str | os.PathLike) -> float:
    """Seconds of audio faster_whisper.decode_audio gets from `path` (it raises on undecodable files)."""
    from faster_whisper import decode_audio

    return len(decode_audio(str(path), sampling_rate=SAMPLE_RATE)) / SAMPLE_RATE


def _samples(source: AudioSource) -> np.ndarray:
    """16 kHz mono float32 samples, decoded from a file path or passed through."""
    if isinstance(source, np.ndarray):
        return source.astype(np.float32, copy=False)
    from faster_whisper import decode_audio

    return decode_audio(str(source), sampling_rate=SAMPLE_RATE)


def _encode_audio(
    path: str | os.PathLike,
    samples: np.ndarray,
    codec: str,
    container_format: str,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode mono float samples with an FFmpeg encoder into a container, via PyAV."""
    import av

    with av.open(str(path), "w", format=container_format, container_options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        # PyAV converts to the encoder's sample format and cuts the frame to its frame size.
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder
    return Path(path)
