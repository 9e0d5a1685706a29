"""The samples an engine call reads, cut from a file's speech chunks: up to 30 s of speech for
language detection (the gaps between chunks left out), and the chunk of one piece of a packed
window (packing.py lays it out)."""

from __future__ import annotations

import numpy as np

from . import packing
from .base import SpeechChunk, SpeechOf

#: whisperx works on 16 kHz mono.
SAMPLE_RATE = 16_000


def speech_window(samples: np.ndarray, speech: list[SpeechChunk], length: int) -> np.ndarray:
    """Up to `length` samples of speech, gathered chunk after chunk (the gaps between chunks
    left out); the file's opening `length` samples when the VAD found none."""
    if not speech:
        return samples[:length]
    parts, total = [], 0
    for chunk in speech:
        part = samples[int(chunk["start"] * SAMPLE_RATE): int(chunk["end"] * SAMPLE_RATE)][: length - total]
        parts.append(part)
        total += len(part)
        if total >= length:
            break
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def speech_inside(item: SpeechOf) -> list[SpeechChunk]:
    """The file's speech chunks ending by its last sample (pyannote's last frame may reach a
    few hundredths past it), so that a packed file's timestamps stay inside its own duration."""
    seconds = len(item.samples) / SAMPLE_RATE
    return [SpeechChunk(**{**chunk, "end": min(chunk["end"], seconds)}) for chunk in item.speech]


def piece_audio(items: list[SpeechOf], piece: packing.Piece) -> np.ndarray:
    """The samples of one packed piece: its chunk of its own file."""
    samples = items[piece.file].samples
    return samples[int(piece.start * SAMPLE_RATE): int(piece.end * SAMPLE_RATE)]
