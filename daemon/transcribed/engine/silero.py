"""Silero VAD v6, as faster-whisper ships it (ONNX, run by onnxruntime: no hub, no download).

whisperx's own `vad_method="silero"` loads Silero through torch hub, which cannot work offline;
faster-whisper carries the same model as `assets/silero_vad_v6.onnx` with
`faster_whisper.vad.get_speech_timestamps`. This module turns its speech stretches into the chunks
the Whisper batches take, merged like whisperx's `merge_chunks`: consecutive stretches joined
while the chunk stays within `vad.chunk_seconds`.

Thresholds map onto the config's: `vad.onset` is Silero's speech threshold and `vad.offset` its
silence threshold (`neg_threshold`); a stretch longer than a chunk is split by Silero itself at
its last pause (`max_speech_duration_s`). `vad.min_silence_seconds` (0.3) is the pause that ends
a stretch: faster-whisper's own 2 s joined sentences into stretches longer than a chunk, which
Silero then cut where there was no pause, mid-word; the chunk merge joins the short stretches
again, each kept in the chunk (`stretches`) for the recheck. `vad.pad_seconds` (0.2) pads each.

Long audio is read in pieces of `PIECE_SECONDS`: `get_speech_timestamps` copies the whole audio
twice (padded, then with 64 samples of context per window) and its ONNX batches add more; on a
2-hour recording that was 600 MB over pyannote's peak. A stretch cut at a piece's edge is
joined again by the chunk merge when the chunk has room (Silero's state restarts there).
"""

from __future__ import annotations

import numpy as np

from ..config import Vad
from .base import SpeechChunk

SAMPLE_RATE = 16_000
#: Audio longer than this is given to Silero in pieces of this length (bounded memory).
PIECE_SECONDS = 600.0


class SileroSpeech:
    """Finds speech with faster-whisper's Silero; stateless between calls, so thread-safe."""

    def __init__(self, settings: Vad) -> None:
        from faster_whisper.vad import VadOptions, get_vad_model

        self.chunk_seconds = settings.chunk_seconds
        self.options = VadOptions(threshold=settings.onset, neg_threshold=settings.offset,
                                  max_speech_duration_s=settings.chunk_seconds,
                                  min_silence_duration_ms=round(settings.min_silence_seconds * 1000),
                                  speech_pad_ms=round(settings.pad_seconds * 1000))
        get_vad_model()  # load the ONNX session now, at start, not on the first file

    def find(self, samples: np.ndarray) -> list[SpeechChunk]:
        """Speech chunks (seconds) of 16 kHz mono float32 samples, each at most chunk_seconds."""
        from faster_whisper.vad import get_speech_timestamps

        piece = int(PIECE_SECONDS * SAMPLE_RATE)
        stretches = []
        for offset in range(0, len(samples), piece):
            found = get_speech_timestamps(samples[offset:offset + piece], self.options,
                                          sampling_rate=SAMPLE_RATE)
            stretches += [((s["start"] + offset) / SAMPLE_RATE, (s["end"] + offset) / SAMPLE_RATE)
                          for s in found]
        return merge_into_chunks(stretches, self.chunk_seconds)


def merge_into_chunks(stretches: list[tuple[float, float]], chunk_seconds: float) -> list[SpeechChunk]:
    """Join consecutive (start, end) stretches while a chunk stays within `chunk_seconds`; each
    chunk says how much of it is speech (the filters' words-per-speech-second rule reads it)."""
    chunks: list[SpeechChunk] = []
    for start, end in stretches:
        if chunks and end - chunks[-1]["start"] <= chunk_seconds:
            chunks[-1]["end"] = round(end, 3)
            chunks[-1]["speech_seconds"] = round(chunks[-1].get("speech_seconds", 0.0) + end - start, 3)
            chunks[-1].setdefault("stretches", []).append((round(start, 3), round(end, 3)))
        else:
            chunks.append(SpeechChunk(start=round(start, 3), end=round(end, 3),
                                      speech_seconds=round(end - start, 3),
                                      stretches=[(round(start, 3), round(end, 3))]))
    return chunks
