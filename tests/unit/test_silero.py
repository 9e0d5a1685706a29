"""engine/silero.py: Silero's speech stretches merged into the chunks Whisper's batches take."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.corpus import clip
from transcribed.config import Vad
from transcribed.engine import silero
from transcribed.engine.silero import SileroSpeech, merge_into_chunks
from transcribed.transcription.audio import decode


@pytest.mark.parametrize(("stretches", "chunks"), [
    ([], []),
    ([(0.5, 2.0)], [(0.5, 2.0)]),
    # consecutive stretches join while the chunk stays within 30 s...
    ([(0.0, 10.0), (12.0, 20.0), (21.0, 29.5)], [(0.0, 29.5)]),
    # ...and a stretch that would overflow it starts the next chunk
    ([(0.0, 10.0), (12.0, 20.0), (25.0, 31.0)], [(0.0, 20.0), (25.0, 31.0)]),
    ([(0.0, 30.0), (31.0, 45.0), (50.0, 62.0)], [(0.0, 30.0), (31.0, 45.0), (50.0, 62.0)]),
])
def test_stretches_merge_into_chunks_of_at_most_chunk_seconds(
        stretches: list[tuple[float, float]], chunks: list[tuple[float, float]]) -> None:
    merged = merge_into_chunks(stretches, chunk_seconds=30.0)
    assert [(c["start"], c["end"]) for c in merged] == chunks


def test_a_chunk_counts_only_its_stretches_as_speech_not_the_gaps_between_them() -> None:
    merged = merge_into_chunks([(0.0, 10.0), (12.0, 20.0), (25.0, 31.0)], chunk_seconds=30.0)
    assert [c["speech_seconds"] for c in merged] == [18.0, 6.0]


@pytest.mark.usefixtures("corpus")
def test_long_audio_is_read_in_pieces_with_the_speech_found_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Silero, real speech: a 16 s clip, silence past a piece's edge, the clip again. Read
    in 30 s pieces (bounded memory), the speech is what the whole audio at once gives, to within
    one of Silero's 32 ms windows (its state restarts at a piece's edge)."""
    speech = decode(clip("librispeech/1088-134315-0000.wav").path).samples
    again = 40 * 16000  # the second copy starts in the second piece
    audio = np.zeros(again + len(speech) + 16000, dtype=np.float32)
    audio[:len(speech)] = speech
    audio[again:again + len(speech)] = speech
    whole = SileroSpeech(Vad()).find(audio)  # 57 s: one piece of PIECE_SECONDS
    monkeypatch.setattr(silero, "PIECE_SECONDS", 30.0)

    pieces = SileroSpeech(Vad()).find(audio)

    assert [round(c["start"]) for c in whole] == [0, 40], whole
    flat = [t for c in whole for t in (c["start"], c["end"], c["speech_seconds"])]
    assert [t for c in pieces for t in (c["start"], c["end"], c["speech_seconds"])] == \
        pytest.approx(flat, abs=0.032 + 1e-9)
