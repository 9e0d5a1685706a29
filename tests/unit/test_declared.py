"""Durations and time judged per audio stream (transcription/declared.py), on files written here
with PyAV and wave: a video longer than its audio is not truncated, a late audio stream's start is
its offset on the media's clock, a cut WAV is truncated by its data chunk; and the results moved
onto the media's clock (outputs.on_media_clock). The same rules over 68 forms made by ffmpeg:
tests/integration/test_media_forms.py."""

from __future__ import annotations

import copy
import fractions
import io
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.support.media import truncate, write_wav
from transcribed.engine.base import Transcript
from transcribed.errors import BadInput
from transcribed.transcription.audio import decode
from transcribed.transcription.declared import wav_data_seconds
from transcribed.transcription.outputs import on_media_clock

RATE = 16_000


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE), dtype=np.float32) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _video_with_audio(path: Path, video_seconds: float, audio_seconds: float,
                      audio_at: float) -> Path:
    """A Matroska video of `video_seconds` whose PCM audio (`audio_seconds`) starts at `audio_at`:
    Matroska gives the audio track no duration field, only a DURATION tag (its end time)."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for index in range(round(video_seconds * 10)):
            image = np.full((64, 64, 3), index * 5 % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        sound = av.AudioFrame.from_ndarray(_tone(audio_seconds).reshape(1, -1), format="flt", layout="mono")
        sound.sample_rate, sound.time_base = RATE, fractions.Fraction(1, RATE)
        sound.pts = round(audio_at * RATE)
        container.mux(audio.encode(sound))
        container.mux(audio.encode())
    return path


def test_a_video_longer_than_its_audio_is_not_truncated(tmp_path: Path) -> None:
    """4 s of video, 2 s of audio from the start: the audio track's own length is 2 s."""
    audio = decode(_video_with_audio(tmp_path / "short.mkv", 4.0, 2.0, 0.0))
    assert (audio.seconds, audio.declared_seconds, audio.offset_seconds) == (2.0, 2.0, 0.0)
    assert not audio.truncated


def test_audio_starting_late_is_placed_on_the_media_clock(tmp_path: Path) -> None:
    """Its DURATION tag (3 s: the track's end) less its start (1 s) is its length; 1 s its offset."""
    audio = decode(_video_with_audio(tmp_path / "late.mkv", 4.0, 2.0, 1.0))
    assert (audio.seconds, audio.declared_seconds, audio.offset_seconds) == (2.0, 2.0, 1.0)
    assert not audio.truncated


def test_a_cut_video_whose_audio_track_declares_its_length_is_still_truncated(tmp_path: Path) -> None:
    path = _video_with_audio(tmp_path / "cut.mkv", 4.0, 4.0, 0.0)
    truncate(path, 0.5)
    with pytest.raises(BadInput, match=r"declares 4\.00 s of audio") as caught:
        decode(path)
    assert caught.value.kind == "truncated"


def test_a_plain_pcm_wav_cut_in_half_is_truncated_by_its_data_chunk(tmp_path: Path) -> None:
    """No `fact` chunk: FFmpeg sizes the audio by the bytes there are; the data chunk says 4 s."""
    path = write_wav(tmp_path / "cut.wav", _tone(4.0))
    assert wav_data_seconds(io.BytesIO(path.read_bytes())) == 4.0
    truncate(path, 0.5)
    with pytest.raises(BadInput, match=r"declares 4\.00 s of audio but only 2\.00 s") as caught:
        decode(path)
    assert caught.value.kind == "truncated"
    kept = decode(path, accept_truncated=True)
    assert (kept.truncated, kept.declared_seconds) == (True, 4.0)
    assert kept.seconds == pytest.approx(2.0, abs=0.01)


def _wav_header(tag: int, data_size: int, extensible_subformat: int | None = None,
                rate: int = 8000, block_align: int = 2) -> bytes:
    """A RIFF/WAVE header: fmt (plain or WAVE_FORMAT_EXTENSIBLE), a LIST chunk, the data chunk's head."""
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * block_align, block_align, 8 * block_align)
    if extensible_subformat is not None:
        fmt += struct.pack("<HHIH", 22, 8 * block_align, 4, extensible_subformat) + bytes(14)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", 3) + b"abc\0"
    return b"RIFF" + struct.pack("<I", 0) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_size)


@pytest.mark.parametrize(("header", "seconds"), [
    (_wav_header(0x0001, 16000), 1.0),                                  # PCM, past an odd-sized LIST
    (_wav_header(0xFFFE, 32000, extensible_subformat=0x0003), 2.0),     # extensible float
    (_wav_header(0x0007, 8000, block_align=1), 1.0),                    # mu-law
    (_wav_header(0x0011, 16000), None),                                 # IMA ADPCM: its fact chunk counts
    (_wav_header(0x0001, 0xFFFFFFFF), None),                            # a streaming writer's size
    (_wav_header(0x0001, 0), None),
    (b"RIFX" + bytes(40), None),                                        # not RIFF/WAVE
    (b"RIFF\0\0\0\0WAVEfmt ", None),                                    # cut inside the header
])
def test_the_length_a_wav_header_declares(header: bytes, seconds: float | None) -> None:
    assert wav_data_seconds(io.BytesIO(header)) == seconds


def _transcript() -> Transcript:
    words = [{"word": "Hello", "start": 0.5, "end": 0.9, "score": 0.9}, {"word": "there", "score": 0.1}]
    return Transcript(
        language="en",
        segments=[{"start": 0.5, "end": 1.25, "text": "Hello there", "words": words,
                   "chars": [{"char": "H", "start": 0.5, "end": 0.55}]}],
        word_segments=[{"word": "Hello", "start": 0.5, "end": 0.9}])


def test_every_time_of_a_result_moves_onto_the_media_clock() -> None:
    """Segments, words, characters and word_segments, by the offset, to the millisecond; a word
    without times (whisperx leaves numbers unaligned) and the original are left as they are."""
    result = _transcript()
    original = copy.deepcopy(result)
    moved = on_media_clock(result, 2.936)
    segment = moved["segments"][0]
    assert (segment["start"], segment["end"]) == (3.436, 4.186)
    assert segment["words"] == [{"word": "Hello", "start": 3.436, "end": 3.836, "score": 0.9},
                                {"word": "there", "score": 0.1}]
    assert segment["chars"] == [{"char": "H", "start": 3.436, "end": 3.486}]
    assert moved["word_segments"] == [{"word": "Hello", "start": 3.436, "end": 3.836}]
    assert result == original


def test_a_result_at_offset_zero_is_written_as_it_is() -> None:
    result = _transcript()
    assert on_media_clock(result, 0.0) is result
