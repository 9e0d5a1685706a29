"""What a file's header declares about one audio stream: its own length, and where it starts on
the media's clock. Both are judged per audio stream, never by the file as a whole.

Length (`stream_length`): truncation is judged against it, so it must be the stream's own: its
duration field; else a Matroska/WebM track's DURATION tag, less the track's start; else the
container's duration, but only when nothing else in the file is timed (an audio-only file): in a
video the container's duration is the longest stream's, and a video may outlast its audio. A WAV
declares what its data chunk was meant to hold (`wav_data_seconds`), which FFmpeg does not
report for a cut file. A stream that declares no length of its own gives None, and is never
called truncated.

Start (`stream_offset`): the decoded samples begin where the audio stream begins, which need not
be where the media begins (a camera's or a DVR's audio may start after its video). The player's
clock has its 0 at the earliest start of any stream (the container's start time: an MPEG-TS
recording's timestamps may begin at 600 s, but a player shows 0:00).
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any, BinaryIO

#: Demuxers that give every stream the file's duration (ASF: the play duration, less preroll),
#: so a stream's duration there is not its own.
FILE_DURATION_FORMATS = frozenset({"asf", "asf_o"})
#: A Matroska DURATION tag (as ffmpeg and mkvmerge write it; "DURATION-eng" with a language).
_DURATION_TAG = re.compile(r"^DURATION(-[A-Za-z]{2,3})?$", re.IGNORECASE)
#: Its value: "HH:MM:SS.nnnnnnnnn".
_CLOCK = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)\s*$")
#: WAVE format tags whose data chunk holds whole samples of block_align bytes: PCM, IEEE float,
#: A-law, mu-law (WAVE_FORMAT_EXTENSIBLE gives its subformat's). Other codecs (ADPCM, GSM)
#: carry a `fact` chunk, which FFmpeg reads itself.
_WAV_SAMPLE_FORMATS = frozenset({0x0001, 0x0003, 0x0006, 0x0007})
_WAV_EXTENSIBLE = 0xFFFE
#: Data-chunk sizes a streaming writer leaves in place of the real one.
_WAV_UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF})
#: Chunks looked at before the data chunk (fmt, fact, LIST, bext, junk, ...) at most.
_WAV_MAX_CHUNKS = 64


def stream_length(container: Any, stream: Any) -> float | None:
    """The length the file declares for this audio stream, None where it declares none of its
    own: the stream's duration; else its Matroska DURATION tag less its start (ffmpeg writes the
    track's end time there, mkvmerge its length: less the start is right for the first and never
    too long for the second); else the container's duration when nothing else in the file is
    timed (an audio-only file; a cover picture or an attachment does not count)."""
    import av

    if (stream.duration is not None and stream.time_base is not None
            and container.format.name not in FILE_DURATION_FORMATS):
        return float(stream.duration * stream.time_base)
    start = max(_seconds(stream.start_time, stream.time_base) or 0.0, 0.0)
    for key, value in (stream.metadata or {}).items():
        end = _clock_seconds(value) if _DURATION_TAG.match(key) else None
        if end is not None:
            return max(end - start, 0.0)
    if container.duration is not None and not _timed_besides(container, stream):
        return float(container.duration / av.time_base)
    return None


def stream_offset(container: Any, stream: Any) -> float:
    """Where `stream` starts on the media's clock, in seconds: its start time less the
    container's (the earliest start of the streams, what a player shows as 0:00), never below 0."""
    import av

    start = _seconds(stream.start_time, stream.time_base)
    if start is None:
        return 0.0
    origin = start if container.start_time is None else container.start_time / av.time_base
    return round(max(start - origin, 0.0), 6)


def wav_data_seconds(file: BinaryIO) -> float | None:
    """The length a RIFF/WAVE header's data chunk declares, for sample formats (PCM, float,
    A-law, mu-law); None for other codecs, for RF64, and for the sizes a streaming writer leaves
    (0, 0xFFFFFFFF). FFmpeg sizes a WAV's audio by the bytes that are there, so without this a
    WAV cut in half declares half its length. Reads from the start of `file`."""
    file.seek(0)
    head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    sample_format: int | None = None
    rate = block_align = 0
    for _ in range(_WAV_MAX_CHUNKS):
        chunk = file.read(8)
        if len(chunk) < 8:
            return None
        kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if kind == b"fmt ":
            body = file.read(size + (size & 1))
            if len(body) < 16:
                return None
            tag, _, rate, _, block_align = struct.unpack("<HHIIH", body[:14])
            sample_format = int.from_bytes(body[24:26], "little") if (
                tag == _WAV_EXTENSIBLE and len(body) >= 26) else tag
        elif kind == b"data":
            if (sample_format not in _WAV_SAMPLE_FORMATS or not rate or not block_align
                    or size in _WAV_UNKNOWN_SIZES):
                return None
            return size // block_align / rate
        else:
            file.seek(size + (size & 1), os.SEEK_CUR)
    return None


def _timed_besides(container: Any, stream: Any) -> bool:
    """Whether the file holds timed streams besides `stream`: video (not a cover picture), other
    audio, subtitles, data. The container's duration may then be theirs."""
    import av

    for other in container.streams:
        if other.index == stream.index or other.type == "attachment":
            continue
        if other.type == "video" and other.disposition & av.stream.Disposition.attached_pic:
            continue
        return True
    return False


def _seconds(value: int | None, time_base: Any) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _clock_seconds(text: str) -> float | None:
    """The seconds a Matroska tag's "HH:MM:SS.nnnnnnnnn" says, None if it says none."""
    match = _CLOCK.match(text or "")
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
