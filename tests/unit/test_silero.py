"""engine/silero.py: Silero's speech stretches merged into the chunks Whisper's batches take."""

from __future__ import annotations

import pytest

from transcribed.engine.silero import merge_into_chunks


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
