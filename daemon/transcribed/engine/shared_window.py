"""A packed window (packing.py) through Whisper: one encoder pass for the window, then each piece
decoded on its own from it.

The encoder is most of a short file's model time on the CPU (its input is always 30 s), the
decoder's work is only as long as the text. So the window's log-mel frames are encoded once, and
every piece's decoder sees that encoding with everything outside the piece (and a margin)
replaced by the encoding of silence: it hears its own speech and nothing of its neighbours',
decodes it as whisperx decodes a chunk (without timestamps, the same search), and the piece
becomes one segment over the piece's own chunk, in its file's own time, with its own figures
(log-probability, no-speech probability, compression ratio) for filters.py. No text has to be
split between files, so none can move from one file into another.

Each piece's frames are its own features, normalised on their own as whisperx normalises a
chunk alone, and its own padding fills the gap after it: the level of silence each piece sees is
the one it sees alone. What still differs from the file alone is the encoder's context (its
attention also reads the neighbours' frames): docs/performance.md measures how often a text
changes so, and the word error rate both ways.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .audio_windows import piece_audio
from .base import Progress, SpeechOf, Transcript, segment_of
from .decoding import ChunkDecoder, Decoded, batches, encoder_output
from .packing import Piece, Window

#: Log-mel frames per second (whisperx's hop of 160 samples at 16 kHz), and per window.
MEL_FRAMES_PER_SECOND = 100
WINDOW_MEL_FRAMES = 3000
#: The encoder halves the frame rate: one output frame per 20 ms.
ENCODER_FRAMES_PER_SECOND = 50
#: Encoder frames kept either side of a piece's own (0.2 s): its speech's edges.
MARGIN_FRAMES = 10
#: Encodings of silence are made once per log-mel floor, rounded to this step.
FLOOR_STEP = 0.25


def window_features(features: Sequence[np.ndarray], window: Window) -> np.ndarray:
    """The window's log-mel frames (mels x 3000): each piece's own features (`features[k]`,
    padded to 30 s as whisperx pads a chunk) from its place on, up to the next piece's place,
    so that its own padding is the silence after it."""
    starts = [round(piece.at * MEL_FRAMES_PER_SECOND) for piece in window.pieces]
    ends = [*starts[1:], WINDOW_MEL_FRAMES]
    frames = np.empty_like(features[0])
    for piece_features, start, end in zip(features, [0, *starts[1:]], ends, strict=True):
        frames[:, start:end] = piece_features[:, : end - start]
    return frames


def floor_of(features: np.ndarray) -> float:
    """A padded chunk's silence level: the value of its last frame, which is padding."""
    return float(features[0, -1])


def own_frames(piece: Piece, frames: int) -> slice:
    """The encoder frames a piece's decoder keeps: its speech, and `MARGIN_FRAMES` either side."""
    start = int(piece.at * ENCODER_FRAMES_PER_SECOND) - MARGIN_FRAMES
    end = int(np.ceil(piece.until * ENCODER_FRAMES_PER_SECOND)) + MARGIN_FRAMES
    return slice(max(0, start), min(frames, end))


def masked(encoded: np.ndarray, piece: Piece, silence: np.ndarray) -> np.ndarray:
    """The window's encoding (frames x width) as one piece's decoder sees it: the piece's own
    frames, the encoding of silence everywhere else."""
    view: np.ndarray = silence.copy()
    keep = own_frames(piece, len(encoded))
    view[keep] = encoded[keep]
    return view


class Silences:
    """The encoder's output for a window of silence at a given log-mel floor, made once per
    (rounded) floor by `encode` (batch x mels x frames -> batch x frames x width) and kept."""

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], mels: int) -> None:
        self._encode, self._mels = encode, mels
        self._made: dict[float, np.ndarray] = {}

    @classmethod
    def of(cls, model: Any) -> Silences:
        """Those of a loaded faster-whisper model (its encoder, its number of mel bands)."""
        return cls(functools.partial(encoder_output, model), model.feat_kwargs.get("feature_size") or 80)

    def at(self, floor: float) -> np.ndarray:
        level = round(round(floor / FLOOR_STEP) * FLOOR_STEP, 2)
        if level not in self._made:
            window = np.full((1, self._mels, WINDOW_MEL_FRAMES), level, dtype=np.float32)
            self._made[level] = self._encode(window)[0]
        return self._made[level]


def decode_pieces(decoder: ChunkDecoder, window: Window, encoded: np.ndarray, features: Sequence[np.ndarray],
                  silences: Silences, batch_size: int) -> list[Decoded]:
    """Each piece of one encoded window decoded on its own (engine/decoding.py's ChunkDecoder):
    the window's encoding with everything but the piece silenced, `batch_size` pieces at a time."""
    views = np.stack([masked(encoded, piece, silences.at(floor_of(piece_features)))
                      for piece, piece_features in zip(window.pieces, features, strict=True)])
    return [out for part in batches(len(views), batch_size)
            for out in decoder.decode_encoded(views[part.start:part.stop])]


def packed_transcript(window: Window, outs: Sequence[Decoded], file: int, language: str | None) -> Transcript:
    """One file's pieces of a decoded window as its transcript, saying how many files shared it."""
    segments = [segment_of(piece.chunk(), out) for piece, out in zip(window.pieces, outs, strict=True)
                if piece.file == file]
    return Transcript(segments=segments, language=language, packed_files=len(window.files))


def transcribe_windows(decoder: ChunkDecoder, pipe: Any, items: list[SpeechOf], windows: list[Window],
                       silences: Silences, batch_size: int, progress: Progress,
                       language: str | None) -> list[Transcript | None]:
    """The packed windows of `items` through a whisperx pipeline: `batch_size` windows encoded at
    a time, then each piece decoded on its own; one transcript per file in a window, else None."""
    results: list[Transcript | None] = [None] * len(items)
    for batch in batches(len(windows), batch_size):
        features = [[decoder.features(piece_audio(items, p), pipe) for p in windows[i].pieces]
                    for i in batch]
        encoded = decoder.encode(np.stack([window_features(f, windows[i])
                                           for f, i in zip(features, batch, strict=True)]))
        for row, i in enumerate(batch):
            outs = decode_pieces(decoder, windows[i], encoded[row], features[row], silences, batch_size)
            for file in windows[i].files:
                results[file] = packed_transcript(windows[i], outs, file, language)
        progress(100.0 * batch.stop / len(windows))
    return results
