"""packing.py as tables: where each file's speech goes in a window, how Whisper's timestamped
tokens become segments, and how a window's segments are split back per file (or not)."""

from __future__ import annotations

import pytest

from transcribed.config import Packing, parse_config
from transcribed.engine.base import SpeechChunk
from transcribed.errors import ConfigError
from transcribed.packing import Piece, Timed, Window, layout, split, timed_segments, transcripts

TS = 50363  # tiny.en's <|0.00|>


def chunk(start: float, end: float) -> SpeechChunk:
    return SpeechChunk(start=start, end=end)


def placed(windows: list[Window]) -> list[list[tuple[int, float, float]]]:
    return [[(p.file, p.at, round(p.until, 3)) for p in w.pieces] for w in windows]


@pytest.mark.parametrize(("speech", "gap", "max_files", "expected"), [
    # three short files fit one window, 2 s of silence after each
    ([[chunk(0.5, 3.5)], [chunk(0.0, 5.0)], [chunk(1.0, 2.0)]], 2.0, 4,
     [[(0, 0.0, 3.0), (1, 5.0, 10.0), (2, 12.0, 13.0)]]),
    # a file that would end past 29 s starts the next window
    ([[chunk(0, 9)], [chunk(0, 9)], [chunk(0, 9)], [chunk(0, 9)]], 2.0, 8,
     [[(0, 0.0, 9.0), (1, 11.0, 20.0)], [(2, 0.0, 9.0), (3, 11.0, 20.0)]]),
    # max_files closes a window; the last window, of one file, is not kept
    ([[chunk(0, 1)], [chunk(0, 1)], [chunk(0, 1)]], 1.0, 2, [[(0, 0.0, 1.0), (1, 2.0, 3.0)]]),
    # a file without speech is in no window; its neighbours still share one
    ([[chunk(0, 2)], [], [chunk(0, 2)]], 2.0, 4, [[(0, 0.0, 2.0), (2, 4.0, 6.0)]]),
    # a file with more speech than one window holds is in no window
    ([[chunk(0, 2)], [chunk(0, 29.5)], [chunk(0, 2)]], 2.0, 4, [[(0, 0.0, 2.0), (2, 4.0, 6.0)]]),
    # a file's two chunks stay together, a gap between them too
    ([[chunk(0, 2), chunk(5, 6)], [chunk(0, 3)]], 2.0, 4,
     [[(0, 0.0, 2.0), (0, 4.0, 5.0), (1, 7.0, 10.0)]]),
    # one file alone: nothing to pack
    ([[chunk(0, 5)]], 2.0, 4, []),
])
def test_layout(speech: list[list[SpeechChunk]], gap: float, max_files: int,
                expected: list[list[tuple[int, float, float]]]) -> None:
    assert placed(layout(speech, gap, max_files)) == expected


@pytest.mark.parametrize(("tokens", "expected"), [
    # <|0.00|> a b <|1.50|><|1.50|> c <|3.00|>
    ([TS, 1, 2, TS + 75, TS + 75, 3, TS + 150], [(0.0, 1.5, (1, 2)), (1.5, 3.0, (3,))]),
    # a single timestamp between two segments both closes one and opens the next
    ([TS, 1, TS + 50, 2, TS + 100], [(0.0, 1.0, (1,)), (1.0, 2.0, (2,))]),
    # text cut off by the window's end (no closing timestamp) ends at the window's end
    ([TS + 10, 1, 2], [(0.2, 30.0, (1, 2))]),
    # timestamps without text between them are no segment
    ([TS, TS + 50, TS + 50, 4, TS + 60], [(1.0, 1.2, (4,))]),
    ([], []),
])
def test_timed_segments(tokens: list[int], expected: list[tuple[float, float, tuple[int, ...]]]) -> None:
    assert [(s.start, s.end, s.tokens) for s in timed_segments(tokens, TS)] == expected


#: Three files in one window: file 0 at 0-3 s (its own 0.5-3.5 s), file 1 at 5-10, file 2 at 12-13.
WINDOW = Window((Piece(0, 0.5, 3.5, 0.0), Piece(1, 0.0, 5.0, 5.0), Piece(2, 1.0, 2.0, 12.0)))


def seg(start: float, end: float, token: int = 7) -> Timed:
    return Timed(start, end, (token,))


@pytest.mark.parametrize(("segments", "expected"), [
    # Whisper's boundaries in the gaps' middles: each file its own text, in its own time
    ([seg(0.0, 4.0, 1), seg(4.0, 11.0, 2), seg(11.0, 14.0, 3)],
     [[(0.5, 3.5, (1,))], [(0.0, 5.0, (2,))], [(1.0, 2.0, (3,))]]),
    # two segments of one file, shifted back by where it was placed
    ([seg(0.0, 1.5, 1), seg(1.5, 3.0, 2), seg(5.0, 10.0, 3), seg(12.0, 13.0, 4)],
     [[(0.5, 2.0, (1,)), (2.0, 3.5, (2,))], [(0.0, 5.0, (3,))], [(1.0, 2.0, (4,))]]),
    # a segment that reaches less than half a second into the next file's speech is still its own
    ([seg(0.0, 5.4, 1), seg(5.4, 10.0, 2), seg(12.0, 13.0, 3)],
     [[(0.5, 3.5, (1,))], [(0.4, 5.0, (2,))], [(1.0, 2.0, (3,))]]),
    # one sentence across the gap between files 0 and 1: both ambiguous, file 2 kept
    ([seg(0.0, 8.0, 1), seg(8.0, 10.0, 2), seg(12.0, 13.0, 3)],
     [None, None, [(1.0, 2.0, (3,))]]),
    # text in a gap (over no file's speech): the files either side are ambiguous
    ([seg(0.0, 3.0, 1), seg(3.2, 4.8, 9), seg(5.0, 10.0, 2), seg(12.0, 13.0, 3)],
     [None, None, [(1.0, 2.0, (3,))]]),
    # text after the last file's speech: that file is ambiguous
    ([seg(0.0, 3.0, 1), seg(5.0, 10.0, 2), seg(12.0, 13.0, 3), seg(14.0, 16.0, 9)],
     [[(0.5, 3.5, (1,))], [(0.0, 5.0, (2,))], None]),
    # Whisper said nothing over file 2 (as it may near a window's end): file 2 goes alone
    ([seg(0.0, 3.0, 1), seg(5.0, 10.0, 2)], [[(0.5, 3.5, (1,))], [(0.0, 5.0, (2,))], None]),
    # text cut off at the window's end (no closing timestamp) over the last file only: still its own
    ([seg(0.0, 3.0, 1), seg(5.0, 10.0, 2), seg(12.0, 30.0, 3)],
     [[(0.5, 3.5, (1,))], [(0.0, 5.0, (2,))], [(1.0, 2.0, (3,))]]),
    # Whisper stopped 2 s before the end of file 1's speech (its last words lost): file 1 alone
    ([seg(0.0, 4.0, 1), seg(5.0, 8.0, 2), seg(12.0, 13.0, 3)],
     [[(0.5, 3.5, (1,))], None, [(1.0, 2.0, (3,))]]),
    # ...but a segment ending half a second early (a tight timestamp) is still the whole file
    ([seg(0.0, 4.0, 1), seg(5.0, 9.5, 2), seg(12.0, 13.0, 3)],
     [[(0.5, 3.5, (1,))], [(0.0, 4.5, (2,))], [(1.0, 2.0, (3,))]]),
    ([], [None, None, None]),
])
def test_split(segments: list[Timed], expected: list[list[tuple[float, float, tuple[int, ...]]] | None]) -> None:  # noqa: E501
    got = split(WINDOW, segments, 4)
    assert got[3] is None, "a file that is not in the window is never given text"
    assert [None if mine is None else [(s.start, s.end, s.tokens) for s in mine]
            for mine in got[:3]] == expected


def test_a_file_of_two_pieces_is_ambiguous_when_either_is() -> None:
    window = Window((Piece(0, 0.0, 2.0, 0.0), Piece(0, 5.0, 6.0, 4.0), Piece(1, 0.0, 3.0, 7.0)))
    assert split(window, [seg(0.0, 2.0), seg(7.0, 10.0)], 2) == [None, [Timed(0.0, 3.0, (7,))]]
    both = split(window, [seg(0.0, 2.0, 1), seg(4.0, 5.0, 2), seg(7.0, 10.0, 3)], 2)
    assert both == [[Timed(0.0, 2.0, (1,)), Timed(5.0, 6.0, (2,))], [Timed(0.0, 3.0, (3,))]]


def test_transcripts_say_how_many_shared_the_window_and_share_out_the_speech() -> None:
    window = Window((Piece(0, 0.0, 4.0, 0.0, speech_seconds=3.0), Piece(1, 0.0, 2.0, 6.0)))
    segments = [seg(0.0, 1.0, 65), seg(1.0, 4.0, 66), seg(6.0, 8.0, 67)]
    first, second = transcripts(window, segments, 2, lambda tokens: bytes(tokens).decode(), "en")
    assert first is not None and second is not None
    assert first["packed_files"] == second["packed_files"] == 2
    assert [(s["start"], s["end"], s["text"], s.get("speech_seconds")) for s in first["segments"]] == [
        (0.0, 1.0, "A", 0.75), (1.0, 4.0, "B", 2.25)]
    assert [(s["text"], "speech_seconds" in s) for s in second["segments"]] == [("C", False)]
    assert "no_speech_prob" not in first["segments"][0], "the window's figure is no one file's"


@pytest.mark.parametrize(("keys", "message"), [
    ({"gap_seconds": 0.5}, "packing.gap_seconds"),
    ({"max_audio_seconds": 20}, "packing.max_audio_seconds"),
    ({"max_audio_seconds": 0}, "packing.max_audio_seconds"),
    ({"max_files": 0}, "packing.max_files"),
    ({"enabled": "auto"}, "packing.enabled"),
])
def test_config_refuses_packing_values_that_cannot_split_cleanly(keys: dict[str, object],
                                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"packing": keys})


def test_config_packing_defaults_off() -> None:
    assert parse_config({}).packing == Packing(enabled=False, max_files=4, gap_seconds=2.0,
                                               max_audio_seconds=10.0)


def test_a_segment_rounded_to_just_before_its_chunk_still_finds_it() -> None:
    """Times are rounded to the millisecond: a chunk starting at 0.0004 s gets a segment at 0.0."""
    window = Window((Piece(0, 0.0004, 2.0, 0.0, speech_seconds=2.0), Piece(1, 0.0, 2.0, 4.0)))
    first, _second = transcripts(window, [seg(0.0, 2.0, 65), seg(4.0, 6.0, 66)], 2,
                                 lambda tokens: bytes(tokens).decode(), "en")
    assert first is not None
    assert [(s["start"], s["text"], s.get("speech_seconds")) for s in first["segments"]] == [(0.0, "A", 2.0)]
