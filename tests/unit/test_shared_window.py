"""engine/shared_window.py on small arrays: where each piece's features go in the window, which
encoder frames a piece's decoder keeps, and the encodings of silence made once per floor."""

from __future__ import annotations

import numpy as np

from transcribed.engine.packing import Piece, Window
from transcribed.engine.shared_window import (
    MARGIN_FRAMES,
    WINDOW_MEL_FRAMES,
    Silences,
    floor_of,
    masked,
    own_frames,
    window_features,
)


def padded(value: float, speech_frames: int, floor: float) -> np.ndarray:
    """A chunk's features as whisperx makes them: speech frames, then its floor to 30 s."""
    features = np.full((2, WINDOW_MEL_FRAMES), floor, dtype=np.float32)
    features[:, :speech_frames] = value
    return features


def test_each_piece_lies_at_its_place_followed_by_its_own_silence() -> None:
    window = Window((Piece(0, 0.0, 1.0, 0.0), Piece(1, 0.5, 2.5, 3.0)))
    frames = window_features([padded(5.0, 100, -1.0), padded(7.0, 200, -0.5)], window)
    assert frames.shape == (2, WINDOW_MEL_FRAMES)
    assert (frames[:, :100] == 5.0).all() and (frames[:, 100:300] == -1.0).all()  # its gap: its floor
    assert (frames[:, 300:500] == 7.0).all() and (frames[:, 500:] == -0.5).all()


def test_the_floor_is_the_padding_after_the_speech() -> None:
    assert floor_of(padded(3.0, 250, -0.75)) == -0.75


def test_a_piece_keeps_its_own_frames_and_a_margin_either_side_within_the_window() -> None:
    assert own_frames(Piece(0, 0.0, 2.0, 4.0), 1500) == slice(200 - MARGIN_FRAMES, 300 + MARGIN_FRAMES)
    assert own_frames(Piece(0, 0.0, 1.0, 0.0), 1500) == slice(0, 50 + MARGIN_FRAMES)
    assert own_frames(Piece(0, 0.0, 1.0, 29.5), 1500) == slice(1475 - MARGIN_FRAMES, 1500)


def test_the_decoder_of_a_piece_sees_silence_everywhere_else() -> None:
    encoded = np.arange(1500 * 3, dtype=np.float32).reshape(1500, 3)
    silence = np.full((1500, 3), -9.0, dtype=np.float32)
    view = masked(encoded, Piece(1, 0.0, 1.0, 10.0), silence)
    keep = own_frames(Piece(1, 0.0, 1.0, 10.0), 1500)
    assert (view[keep] == encoded[keep]).all()
    assert (view[: keep.start] == -9.0).all() and (view[keep.stop:] == -9.0).all()
    assert (silence == -9.0).all(), "the silence is not changed for the next piece"


def test_silence_is_encoded_once_per_rounded_floor() -> None:
    seen: list[float] = []

    def encode(batch: np.ndarray) -> np.ndarray:
        seen.append(float(batch[0, 0, 0]))
        assert batch.shape == (1, 80, WINDOW_MEL_FRAMES) and (batch == batch[0, 0, 0]).all()
        return batch[:, :1, :4] + 1.0

    silences = Silences(encode, 80)
    first = silences.at(-0.70)
    assert silences.at(-0.80) is first  # both round to -0.75
    silences.at(-1.1)
    assert seen == [-0.75, -1.0]
