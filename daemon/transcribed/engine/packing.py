"""Short files packed into one Whisper window: which files share a window and where each one's
speech goes in it. Pure functions (the engine runs the model, shared_window.py; the
consumer chooses when, consumer/sharing.py), unit-tested as tables in tests/unit/test_packing.py.

Whisper's encoder always sees 30 s of audio (shorter input is padded), so a 5 s voice note pays
for 30 s. Packing lays the speech chunks of several short files one after another in one
window, silence between them (at least `packing.gap_seconds`; the room left is shared out evenly),
so that one encoder pass serves them all;
each chunk is then decoded on its own from that pass, as if nothing else were in the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .base import SpeechChunk

#: The seconds of audio Whisper's encoder sees at once.
WINDOW_SECONDS = 30.0


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

    def chunk(self) -> SpeechChunk:
        """The speech chunk it was made from, in its file's own time."""
        chunk = SpeechChunk(start=self.start, end=self.end)
        if self.speech_seconds is not None:
            chunk["speech_seconds"] = self.speech_seconds
        return chunk


@dataclass(frozen=True)
class Window:
    """One 30 s model input: the pieces it holds, in order."""

    pieces: tuple[Piece, ...]

    @property
    def files(self) -> tuple[int, ...]:
        return tuple(sorted({piece.file for piece in self.pieces}))


def layout(speech_of: Sequence[Sequence[SpeechChunk]], gap: float, max_files: int,
           window: float = WINDOW_SECONDS) -> list[Window]:
    """The windows for these files' speech, greedily in order: each file's chunks together in
    one window, at least `gap` seconds of silence after every piece; a window closes when the
    next file does not fit in it, or when it holds `max_files`. A file without speech, or with
    more than fits, is in no window; a window of one file is not kept (packing gains nothing
    there: that file goes alone). The pieces of a window are then spaced evenly over it."""
    windows: list[list[Piece]] = []
    current: list[Piece] = []
    for index, chunks in enumerate(speech_of):
        needed = sum(c["end"] - c["start"] for c in chunks) + gap * (len(chunks) - 1)
        if not chunks or needed > window:
            continue
        at = current[-1].until + gap if current else 0.0
        if current and (at + needed > window or len({p.file for p in current}) >= max_files):
            windows.append(current)
            current, at = [], 0.0
        for chunk in chunks:
            current.append(Piece(index, float(chunk["start"]), float(chunk["end"]), round(at, 3),
                                 chunk.get("speech_seconds")))
            at = current[-1].until + gap
    windows.append(current)
    return [_spread(pieces, window) for pieces in windows if len({p.file for p in pieces}) > 1]


def _spread(pieces: list[Piece], window: float) -> Window:
    """The pieces spaced evenly over the window, each followed by an equal share of the room
    left: the more silence between two files' speech, the less the encoder reads one in the
    light of the other (measured: docs/performance.md)."""
    share = (window - sum(p.end - p.start for p in pieces)) / len(pieces)
    spaced, at = [], 0.0
    for piece in pieces:
        spaced.append(dataclasses.replace(piece, at=round(at, 3)))
        at += piece.end - piece.start + share
    return Window(tuple(spaced))
