"""A long recording's speech that Whisper's window left out, found and decoded again
(engine/recheck.py, `vad.recheck_seconds`), with the real engine and the bundled tiny.en.

The stretch is a piece of a long recording built from the corpus (tests/support/long_recordings.py,
seed 2: the recording bench/long_recording.py calls `s2`), cut where one of its chunks starts: the
end of one LibriSpeech sentence, then two other voices. Decoded as whisperx decodes a chunk (one
30 s window, no timestamps), tiny.en writes the first sentence and stops; the two sentences after
it are missing. The recheck aligns the decoded words to the audio, finds 10 s of speech in which
no word starts, decodes it on its own and puts its text after the first sentence.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.support.corpus import word_error_rate
from tests.support.long_recordings import SAMPLE_RATE, shuffled
from tests.support.models import bundled_tiny_en
from transcribed.config import Config
from transcribed.engine.base import Request
from transcribed.engine.hardware import Hardware, choose
from transcribed.engine.whisperx_engine import WhisperXEngine

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

#: The cut of the seed-2 recording (seconds), and the clips whose speech lies wholly inside it.
CUT = (168.9, 191.0)
MISSED = ["LJ001-0026.flac", "cards_004.wav", "1988-24833-0000.flac"]
FIRST = "the narrative would be tedious to him and painful to myself"


def _engine(recheck_seconds: float) -> WhisperXEngine:
    """The default config but every file counted as long (the cut is 22 s)."""
    config = Config()
    config = dataclasses.replace(config, vad=dataclasses.replace(config.vad, long_seconds=0.0,
                                                                 recheck_seconds=recheck_seconds))
    settings = choose(config.model, Hardware(cpu_count=2), bundled_tiny_en(), "local")
    engine = WhisperXEngine(config, dataclasses.replace(settings, model_path=str(bundled_tiny_en())))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def piece() -> tuple[Any, str]:
    recording = shuffled(2)
    inside = recording.inside(*CUT)
    assert [p.clip.path.name for p in inside] == MISSED, "the corpus changed: the recording is not the one measured"
    return (recording.samples[int(CUT[0] * SAMPLE_RATE):int(CUT[1] * SAMPLE_RATE)],
            " ".join(p.clip.reference for p in inside))


def _segments(engine: WhisperXEngine, samples: Any) -> list[dict[str, Any]]:
    result = engine.transcribe(samples, Request(language="en"), 4, lambda _p: None)
    return [dict(s) for s in result["segments"]]


def _text(segments: list[dict[str, Any]]) -> str:
    return " ".join(s["text"].strip() for s in segments)


def test_the_speech_a_window_left_out_is_decoded_again_and_put_after_the_words_before_it(
        piece: tuple[Any, str]) -> None:
    samples, missed_reference = piece
    plain = _segments(_engine(0.0), samples)
    checked = _segments(_engine(2.0), samples)

    # Without the recheck, the chunk's text is the first sentence alone: the clips after it are lost.
    assert word_error_rate(missed_reference, _text(plain).lower().replace(FIRST, ""), "en") > 0.8, plain
    # With it, their words are there, after the first sentence, in segments in time order.
    text = _text(checked)
    assert text.lower().startswith(FIRST), text
    assert word_error_rate(missed_reference, text[len(FIRST) + 1:], "en") < 0.35, text
    assert len(checked) > len(plain)
    starts = [s["start"] for s in checked]
    assert starts == sorted(starts) and all(s["end"] <= CUT[1] - CUT[0] + 0.5 for s in checked), checked
    assert "kittens" in checked[-1]["text"], checked
