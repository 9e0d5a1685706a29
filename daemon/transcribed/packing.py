"""Short files packed into one Whisper window: which files, where each one's speech goes, and
how the window's timestamped text is split back per file. Pure functions (the engine runs the
model, the worker chooses when), unit-tested as tables in tests/unit/test_packing.py.

Whisper's encoder always sees 30 s of audio (shorter input is padded), so a 5 s voice note pays
for 30 s. Packing lays the speech chunks of several short files one after another in one
window, a clear silence (`packing.gap_seconds`) between them, decodes the window once WITH
timestamps, and gives each file the segments whose timestamps fall inside its own stretch,
shifted back to the file's own time. A file is handed back for transcription alone (None) when
its split is not clear: a segment that spans a gap or sits in one, a stretch Whisper said
nothing for, or text that runs past the window's end without a closing timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .engine.base import Segment, SpeechChunk, Transcript
from .engine.decoding import compression_ratio

#: The seconds of audio Whisper's encoder sees at once.
WINDOW_SECONDS = 30.0
#: Seconds per timestamp token (<|0.00|>, <|0.02|>, ...).
TIMESTAMP_SECONDS = 0.02
#: Room left free at the window's end: Whisper's timestamps there are the least reliable, and a
#: segment cut by the window's end has no closing timestamp.
END_MARGIN_SECONDS = 1.0
#: How far a segment may reach into the speech of the piece beside its own (Whisper's
#: timestamps are that loose); gaps are at least twice as long (config checks).
SPILL_SECONDS = 0.5
#: Speech at the end of a piece that no segment reaches: Whisper stopped early (as it may in a
#: full window) and its last words are lost, so the file goes alone.
UNCOVERED_SECONDS = 0.75


@dataclass(frozen=True)
class Piece:
    """One speech chunk of one file, placed in a window."""

    #: The file's index among the items of the call.
    file: int
    #: Where the chunk lies in its own file (seconds).
    start: float
    end: float
    #: Where it starts in the window (seconds).
    at: float
    #: The speech the VAD found in the chunk (None: the VAD does not say).
    speech_seconds: float | None = None

    @property
    def until(self) -> float:
        """Where it ends in the window."""
        return self.at + self.end - self.start


@dataclass(frozen=True)
class Window:
    """One 30 s model input: the pieces it holds, in order."""

    pieces: tuple[Piece, ...]

    @property
    def files(self) -> tuple[int, ...]:
        return tuple(sorted({piece.file for piece in self.pieces}))


@dataclass(frozen=True)
class Timed:
    """Text tokens between two timestamps (window time, or a file's own time once split)."""

    start: float
    end: float
    tokens: tuple[int, ...]


def layout(speech_of: Sequence[Sequence[SpeechChunk]], gap: float, max_files: int,
           window: float = WINDOW_SECONDS) -> list[Window]:
    """The windows for these files' speech, greedily in order: each file's chunks together in
    one window, `gap` seconds of silence after every piece; a window closes when the next file
    does not fit before its last `END_MARGIN_SECONDS`, or holds `max_files`. A file without
    speech, or with more than fits, is in no window; a window of one file is not kept (packing
    gains nothing there: that file goes alone)."""
    room = window - END_MARGIN_SECONDS
    windows: list[list[Piece]] = []
    current: list[Piece] = []
    for index, chunks in enumerate(speech_of):
        needed = sum(c["end"] - c["start"] for c in chunks) + gap * (len(chunks) - 1)
        if not chunks or needed > room:
            continue
        at = current[-1].until + gap if current else 0.0
        if current and (at + needed > room or len({p.file for p in current}) >= max_files):
            windows.append(current)
            current, at = [], 0.0
        for chunk in chunks:
            current.append(Piece(index, float(chunk["start"]), float(chunk["end"]), round(at, 3),
                                 chunk.get("speech_seconds")))
            at = current[-1].until + gap
    windows.append(current)
    return [Window(tuple(pieces)) for pieces in windows if len({p.file for p in pieces}) > 1]


def timed_segments(tokens: Sequence[int], timestamp_begin: int,
                   window: float = WINDOW_SECONDS) -> list[Timed]:
    """Whisper's output split at its timestamp tokens (ids from `timestamp_begin` on, one per
    0.02 s): the text tokens between an opening and a closing timestamp are one segment; text
    before any timestamp starts at 0; text after the last one (cut off) ends at `window`."""
    segments: list[Timed] = []
    start: float | None = None
    text: list[int] = []
    for token in tokens:
        if token < timestamp_begin:
            text.append(token)
            continue
        time = round((token - timestamp_begin) * TIMESTAMP_SECONDS, 2)
        if text:
            segments.append(Timed(0.0 if start is None else start, time, tuple(text)))
            text = []
        start = time
    if text:
        segments.append(Timed(0.0 if start is None else start, window, tuple(text)))
    return segments


def split(window: Window, segments: Sequence[Timed], file_count: int) -> list[list[Timed] | None]:
    """Each file's segments, in its own time; None for a file of this window whose split is
    ambiguous (and for files not in it).

    Whisper puts a boundary between two files' speech anywhere in the gap (often its middle),
    and its timestamps are loose by a few tenths of a second, so a segment belongs to the one
    piece whose speech it overlaps by more than `SPILL_SECONDS`. A segment that overlaps two
    pieces so (one sentence across a gap) makes both ambiguous; one that overlaps none (text
    in a gap) makes the pieces either side ambiguous; a piece with no segment at all (Whisper skipped it,
    as it may near a window's end), or whose last `UNCOVERED_SECONDS` of speech no segment
    reaches (its last words lost), is ambiguous too."""
    owned: dict[Piece, list[Timed]] = {piece: [] for piece in window.pieces}
    unclear: set[int] = set()
    for segment in segments:
        owners = [p for p in window.pieces if _overlap(segment, p) > SPILL_SECONDS]
        if len(owners) == 1:
            owned[owners[0]].append(segment)
        else:
            unclear.update(p.file for p in owners or _beside(window, segment))
    unclear.update(piece.file for piece, mine in owned.items()
                   if not mine or piece.until - max(s.end for s in mine) > UNCOVERED_SECONDS)
    result: list[list[Timed] | None] = [None] * file_count
    for file in window.files:
        if file not in unclear:
            result[file] = [_in_file_time(piece, s) for piece in window.pieces if piece.file == file
                            for s in owned[piece]]
    return result


def transcripts(window: Window, segments: Sequence[Timed], file_count: int,
                text_of: Callable[[tuple[int, ...]], str], language: str | None) -> list[Transcript | None]:
    """The files of one decoded window as transcripts (None: not in it, or ambiguous): one
    segment per Whisper segment, in the file's own time, with its text's compression ratio and
    its share of the VAD's speech under its chunk (what filters.py reads; Whisper's no-speech
    probability and log-probability are the whole window's, so a packed segment carries
    neither), and `packed_files`: how many files shared the window."""
    result: list[Transcript | None] = [None] * file_count
    for file, mine in enumerate(split(window, segments, file_count)):
        if mine is not None:
            pieces = [p for p in window.pieces if p.file == file]
            result[file] = Transcript(segments=[_segment(s, pieces, text_of) for s in mine],
                                      language=language, packed_files=len(window.files))
    return result


def _segment(timed: Timed, pieces: list[Piece], text_of: Callable[[tuple[int, ...]], str]) -> Segment:
    text = text_of(timed.tokens)
    segment = Segment(start=timed.start, end=timed.end, text=text,
                      compression_ratio=round(compression_ratio(text), 3))
    piece = min(pieces, key=lambda p: max(p.start - timed.start, timed.start - p.end, 0.0))  # rounded: near
    if piece.speech_seconds is not None and piece.end > piece.start:
        share = (timed.end - timed.start) / (piece.end - piece.start)
        segment["speech_seconds"] = round(piece.speech_seconds * share, 3)
    return segment


def _overlap(segment: Timed, piece: Piece) -> float:
    return max(0.0, min(segment.end, piece.until) - max(segment.start, piece.at))


def _beside(window: Window, segment: Timed) -> list[Piece]:
    """The pieces either side of a segment that overlaps none: its text may be either's."""
    before = [p for p in window.pieces if p.until <= segment.end]
    after = [p for p in window.pieces if p.at >= segment.start]
    return before[-1:] + after[:1]


def _in_file_time(piece: Piece, segment: Timed) -> Timed:
    """The segment moved back to its file's own time, kept inside the piece's own chunk."""
    def back(moment: float) -> float:
        return round(min(max(moment - piece.at + piece.start, piece.start), piece.end), 3)

    return Timed(back(segment.start), back(segment.end), segment.tokens)
