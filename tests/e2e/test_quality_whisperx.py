"""Transcript quality with the real WhisperX pipeline (tiny.en, CPU): the right audio track of a
two-track video, and the post-filters on generated noise, music-like tones, a looped phrase and a
silence-padded recording (tests/support/bait.py builds them with espeak-ng, sox and ffmpeg)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import bait
from tests.support.corpus import word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until

pytestmark = pytest.mark.e2e

PADDED_TEXT = "The meeting starts at nine in the morning."
FILES = ["film.mkv", "dubbed/film.mkv", "loop.wav", "noise.wav", "tones.wav", "padded.wav"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Folders]:
    """One daemon: English preferred (audio.track [en]), the dubbed/ route on auto; the default
    filters, with repeats collapsed beyond 4 (the default leaves 8: the corpus has a speaker
    saying one word 5 times, docs/quality.md)."""
    folders = Folders(tmp_path_factory.mktemp("quality"))
    folders.write_config(audio={"track": ["en"]}, routes={"dubbed": {"audio_track": "auto"}},
                         align={"enabled": False}, filters={"max_repeats": 4})
    made = Path(tmp_path_factory.mktemp("made"))
    sources = {
        "film.mkv": bait.two_track_video(made / "film.mkv"),
        "loop.wav": bait.looped_phrase(made / "loop.wav"),
        "noise.wav": bait.pink_noise(made / "noise.wav"),
        "tones.wav": bait.plucked_tones(made / "tones.wav"),
        "padded.wav": bait.padded_with_silence(made / "padded.wav", PADDED_TEXT),
    }
    (folders.inbox / "dubbed").mkdir(parents=True)
    with DaemonProcess(folders.config) as daemon:
        for target in FILES:
            shutil.copy(sources[Path(target).name], folders.inbox / target)
        for target in FILES:
            wait_until(lambda t=target: (folders.done / t).exists(), 300, f"{target} in done/")
        daemon.wait_for("job.moved", file="padded.wav")
        yield folders
        assert daemon.stop() == 0


def _result(folders: Folders, stem: str) -> dict:
    return json.loads((folders.outbox / f"{stem}.json").read_text(encoding="utf-8"))


def _text(result: dict) -> str:
    return " ".join(s["text"].strip() for s in result["segments"]).strip()


def test_the_preferred_language_track_is_transcribed(served: Folders) -> None:
    """audio.track [en]: the English stream, though German is flagged default; and it says so."""
    result = _result(served, "film")
    assert result["transcribed"]["audio_track"] == {
        "stream": 0, "streams": 2, "language": "eng", "reason": "tagged eng: en, the first of en present"}
    assert word_error_rate(bait.ENGLISH_TEXT, _text(result), "en") < 0.3, _text(result)


def test_auto_takes_the_default_stream(served: Folders) -> None:
    """The dubbed/ route on auto: the German stream (flagged default), which English tiny.en
    cannot transcribe as the English sentence."""
    result = _result(served, "dubbed/film")
    assert result["transcribed"]["audio_track"]["stream"] == 1
    assert result["transcribed"]["audio_track"]["reason"] == "the stream flagged default"
    assert word_error_rate(bait.ENGLISH_TEXT, _text(result), "en") > 0.5, _text(result)


def test_a_looped_phrase_is_kept_once(served: Folders) -> None:
    """The phrase spoken 8 times: tiny.en writes it 5 times in a row, more than 4: kept once, counted."""
    result = _result(served, "loop")
    assert word_error_rate(bait.LOOPED_PHRASE, _text(result), "en") == 0.0, _text(result)
    assert result["transcribed"]["filters"]["repeats"] >= 4


@pytest.mark.parametrize("stem", ["noise", "tones"])
def test_noise_and_tones_give_no_text(served: Folders, stem: str) -> None:
    """Pink noise and plucked chords: no text at all (the VAD finds no speech; the filters ran)."""
    result = _result(served, stem)
    assert _text(result) == "" and (served.outbox / f"{stem}.txt").read_text().strip() == ""
    assert set(result["transcribed"]["filters"]) == {"no_speech", "repeats", "outside_speech"}


def test_speech_amid_silence_is_kept_whole(served: Folders) -> None:
    """Ten seconds of silence either side: the sentence is there and nothing was filtered out."""
    result = _result(served, "padded")
    assert word_error_rate(PADDED_TEXT, _text(result), "en") <= 0.25, _text(result)
    assert result["transcribed"]["filters"] == {"no_speech": 0, "repeats": 0, "outside_speech": 0}
    segment = result["segments"][0]
    assert 0.0 <= segment["no_speech_prob"] < 0.6 and segment["speech_seconds"] > 1.0
