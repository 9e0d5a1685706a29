"""packing.py as tables: which files share a window and where each file's speech goes in it."""

from __future__ import annotations

import pytest

from transcribed.config import Packing, parse_config
from transcribed.engine.base import SpeechChunk
from transcribed.engine.packing import Window, layout
from transcribed.errors import ConfigError


def chunk(start: float, end: float) -> SpeechChunk:
    return SpeechChunk(start=start, end=end)


def placed(windows: list[Window]) -> list[list[tuple[int, float, float]]]:
    return [[(p.file, p.at, round(p.until, 3)) for p in w.pieces] for w in windows]


@pytest.mark.parametrize(("speech", "gap", "max_files", "expected"), [
    # three short files fit one window, spaced evenly: the 21 s left shared out, 7 s after each
    ([[chunk(0.5, 3.5)], [chunk(0.0, 5.0)], [chunk(1.0, 2.0)]], 2.0, 4,
     [[(0, 0.0, 3.0), (1, 10.0, 15.0), (2, 22.0, 23.0)]]),
    # a file that would end past 30 s starts the next window (a last window of one is not kept)
    ([[chunk(0, 9)], [chunk(0, 9)], [chunk(0, 9.5)], [chunk(0, 9)], [chunk(0, 9.5)]], 2.0, 8,
     [[(0, 0.0, 9.0), (1, 15.0, 24.0)], [(2, 0.0, 9.5), (3, 15.25, 24.25)]]),
    # ...and one that would end at 30 s exactly fits (then spaced: 4 s left, 1.333 s after each)
    ([[chunk(0, 9)], [chunk(0, 9)], [chunk(0, 8)]], 2.0, 8,
     [[(0, 0.0, 9.0), (1, 10.333, 19.333), (2, 20.667, 28.667)]]),
    # max_files closes a window; the last window, of one file, is not kept
    ([[chunk(0, 1)], [chunk(0, 1)], [chunk(0, 1)]], 1.0, 2, [[(0, 0.0, 1.0), (1, 15.0, 16.0)]]),
    # a file without speech is in no window; its neighbours still share one
    ([[chunk(0, 2)], [], [chunk(0, 2)]], 2.0, 4, [[(0, 0.0, 2.0), (2, 15.0, 17.0)]]),
    # a file with more speech than one window holds is in no window
    ([[chunk(0, 2)], [chunk(0, 30.5)], [chunk(0, 2)]], 2.0, 4, [[(0, 0.0, 2.0), (2, 15.0, 17.0)]]),
    # a file's two chunks stay together, a gap between them too
    ([[chunk(0, 2), chunk(5, 6)], [chunk(0, 3)]], 2.0, 4,
     [[(0, 0.0, 2.0), (0, 10.0, 11.0), (1, 19.0, 22.0)]]),
    # one file alone: nothing to pack
    ([[chunk(0, 5)]], 2.0, 4, []),
])
def test_layout(speech: list[list[SpeechChunk]], gap: float, max_files: int,
                expected: list[list[tuple[int, float, float]]]) -> None:
    assert placed(layout(speech, gap, max_files)) == expected


@pytest.mark.parametrize(("keys", "message"), [
    ({"gap_seconds": 0.5}, "packing.gap_seconds"),
    ({"max_audio_seconds": 20}, "packing.max_audio_seconds"),
    ({"max_audio_seconds": 0}, "packing.max_audio_seconds"),
    ({"max_files": 0}, "packing.max_files"),
    ({"enabled": "sometimes"}, "packing.enabled"),
])
def test_config_refuses_packing_values_that_cannot_split_cleanly(keys: dict[str, object],
                                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"packing": keys})


def test_config_packing_defaults_to_auto() -> None:
    assert parse_config({}).packing == Packing(enabled="auto", max_files=4, gap_seconds=2.0,
                                               max_audio_seconds=10.0)
