"""Per-file options with the real pipeline on the CPU, each with its daemon-wide default off:
speakers and words turned on by a route (loaded at start) or a sidecar (loaded on demand, then
unloaded and reloaded by the idle rules like every model), translation with the multilingual
base model on German recordings (English text, labelled as such, never aligned; a library
writing the spoken language's subtitles and English ones for one film), a language by its name,
and alignment that cannot work refused at start.

The aligners (tiny wav2vec2, English and German letters) and the pyannote pipeline are built
offline by tests/support/models.py: their timings and turns are meaningless, their presence is
not. Whisper's text is real and checked.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.corpus import clip, word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.models import multilingual_base, tiny_aligner, tiny_diarization
from transcribed.config import parse_config
from transcribed.errors import ConfigError
from transcribed.transcription.alignment import Aligner, refuse_unalignable

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

ENGLISH = "librispeech/2412-153948-0000.flac"
GERMAN = "multilingual/de_picovoice_leopard.wav"  # "Der hinter diesem Portal liegenden Raum ..."
GERMAN_TOO = "multilingual/de_picovoice_cheetah.wav"  # "Die Werbung vermittelt einen falschen Eindruck."
GERMAN_ALPHABET = "abcdefghijklmnopqrstuvwxyzäöüß'"
#: Words that mark a text as German, and as English, for texts this short.
GERMAN_WORDS = {"der", "die", "das", "und", "wurde", "einen", "diesem", "als"}
ENGLISH_WORDS = {"the", "a", "an", "is", "was", "of", "this", "that", "as"}


def _result(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-zäöüß']+", text.lower()))


def _timed_words(result: dict) -> list[dict]:
    return [w for s in result["segments"] for w in s.get("words", []) if "start" in w]


def _text(result: dict) -> str:
    return " ".join(s["text"] for s in result["segments"])


def _english_only_config(folders: Folders, **sections: dict) -> Path:
    """tiny.en with alignment and speakers off daemon-wide, their models at hand."""
    return folders.write_config(
        align={"enabled": False, "model": {"en": str(tiny_aligner())}},
        diarize={"enabled": False, "model": str(tiny_diarization()), "max_speakers": 2},
        packing={"enabled": False}, **sections)


def test_routes_turn_speakers_and_words_on_with_the_daemon_wide_keys_off(folders: Folders) -> None:
    """`routes: {interviews: {diarize: true}}` (the docs' example) labels speakers, loaded at start;
    `words: {align: true}` aligns; a file elsewhere gets neither."""
    _english_only_config(folders, routes={"interviews": {"diarize": True}, "words": {"align": True}})
    for folder in ("interviews", "words"):
        (folders.inbox / folder).mkdir(parents=True)
    with DaemonProcess(folders.config) as daemon:
        assert daemon.events().index(daemon.wait_for("diarize.model_loaded")) < daemon.events().index(
            daemon.wait_for("daemon.started"))
        for name in ("interviews/talk.flac", "words/talk.flac", "plain.flac"):
            shutil.copy(clip(ENGLISH).path, folders.inbox / name)
        for name in ("interviews/talk.flac", "words/talk.flac", "plain.flac"):
            wait_until(lambda n=name: (folders.done / n).exists(), 300, f"{name} in done/")
        assert daemon.stop() == 0
    speakers = _result(folders.outbox / "interviews" / "talk.json")
    assert speakers["transcribed"]["speakers"] >= 1
    assert all(s["speaker"].startswith("SPEAKER_") for s in speakers["segments"])
    assert not _timed_words(speakers)
    words = _result(folders.outbox / "words" / "talk.json")
    assert words["transcribed"]["alignment"] == "words" and _timed_words(words)
    assert "speaker" not in words["segments"][0]
    plain = _result(folders.outbox / "plain.json")
    assert not _timed_words(plain) and "speaker" not in plain["segments"][0]
    for result in (speakers, words, plain):
        assert word_error_rate(clip(ENGLISH).reference, _text(result), "en") < 0.3


def test_a_sidecar_loads_speakers_and_words_on_demand_under_the_idle_rules(folders: Folders) -> None:
    """No route asks: a sidecar's `diarize: true, align: true` loads both when its file comes;
    the idle unload releases them with Whisper, and the next file loads them again."""
    _english_only_config(folders, model={"idle_unload_seconds": 2})
    with DaemonProcess(folders.config) as daemon:
        assert daemon.count("diarize.model_loaded") == 0
        (folders.inbox / "asks.flac.yaml").write_text("diarize: true\nalign: true\n")
        shutil.copy(clip(ENGLISH).path, folders.inbox / "asks.flac")
        wait_until(lambda: (folders.done / "asks.flac").exists(), 300, "asks.flac in done/")
        unloaded = daemon.wait_for("model.unloaded", timeout=60)
        shutil.copy(clip(ENGLISH).path, folders.inbox / "later.flac")
        wait_until(lambda: (folders.done / "later.flac").exists(), 300, "later.flac in done/")
        daemon.wait_for("job.moved", file="later.flac")
        assert daemon.stop() == 0
    assert daemon.count("diarize.on_demand") == 1
    assert (unloaded["diarization"], unloaded["aligners"]) == (True, ["en"])
    assert daemon.count("diarize.model_loaded") == 2  # on demand, then again after the unload
    asked = _result(folders.outbox / "asks.json")
    assert asked["transcribed"]["speakers"] >= 1 and _timed_words(asked)
    later = _result(folders.outbox / "later.json")
    assert "speaker" not in later["segments"][0] and not _timed_words(later)
    assert later["transcribed"]["timings"]["model_load"] > 0


@pytest.fixture(scope="module")
def translated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Folders, Path]]:
    """The multilingual base model, task transcribe daemon-wide: a route that translates, one
    naming its language `German`, and a library of a German film with `also_english`."""
    root = tmp_path_factory.mktemp("translation")
    folders, library = Folders(root / "d"), root / "films"
    folders.write_config(
        model={"name": str(multilingual_base())},
        align={"model": {"en": str(tiny_aligner()), "de": str(tiny_aligner(GERMAN_ALPHABET))}},
        routes={"translated": {"task": "translate"}, "german": {"language": "German"}},
        packing={"enabled": False}, watch={"settle_seconds": 0.3, "rescan_seconds": 1})
    data = yaml.safe_load(folders.config.read_text())
    data["libraries"] = [{"path": str(library), "languages": ["de"], "also_english": True}]
    folders.config.write_text(yaml.safe_dump(data))
    film = library / "Film (2020)" / "Film (2020).wav"
    film.parent.mkdir(parents=True)
    shutil.copy(clip(GERMAN_TOO).path, film)
    for folder in ("translated", "german"):
        (folders.inbox / folder).mkdir(parents=True)
    with DaemonProcess(folders.config) as daemon:
        shutil.copy(clip(GERMAN).path, folders.inbox / "translated" / "portal.wav")
        shutil.copy(clip(GERMAN).path, folders.inbox / "german" / "portal.wav")
        for name in ("translated/portal.wav", "german/portal.wav"):
            wait_until(lambda n=name: (folders.done / n).exists(), 300, f"{name} in done/")
        daemon.wait_for("job.moved", timeout=300, file=str(film))
        assert daemon.stop() == 0
    yield folders, film.parent


def test_a_translation_is_english_text_of_german_speech_and_is_not_aligned(
        translated: tuple[Folders, Path]) -> None:
    """task translate on German speech: English text; the JSON says German was spoken and the
    text is English; no word timestamps (none forced from the German aligner, nor the English)."""
    folders, _ = translated
    result = _result(folders.outbox / "translated" / "portal.json")
    assert (result["language"], result["text_language"]) == ("de", "en")
    meta = result["transcribed"]
    assert (meta["language"], meta["text_language"], meta["options"]["task"]) == ("de", "en", "translate")
    assert meta["alignment"] == "off: translated text is not aligned" and not _timed_words(result)
    words = _words(_text(result))
    assert words & ENGLISH_WORDS and not words & GERMAN_WORDS, _text(result)


def test_a_language_named_german_is_transcribed_as_german_and_aligned(translated: tuple[Folders, Path]) -> None:
    """`language: German` in a route is `de`: German text, aligned with the German aligner."""
    folders, _ = translated
    result = _result(folders.outbox / "german" / "portal.json")
    assert (result["language"], result["text_language"]) == ("de", "de")
    assert result["transcribed"]["options"]["language"] == "de"
    assert result["transcribed"]["alignment"] == "words" and _timed_words(result)
    assert word_error_rate(clip(GERMAN).reference, _text(result), "de") < 0.5, _text(result)


def test_a_library_writes_the_spoken_languages_subtitles_and_english_ones(
        translated: tuple[Folders, Path]) -> None:
    """`languages: [de], also_english: true`: `Film (2020).de.srt` in German beside
    `Film (2020).en.srt` in English, each named by the language of its text."""
    _, folder = translated
    assert sorted(p.name for p in folder.iterdir()) == [
        "Film (2020).de.srt", "Film (2020).en.srt", "Film (2020).wav"]
    german = (folder / "Film (2020).de.srt").read_text(encoding="utf-8")
    english = (folder / "Film (2020).en.srt").read_text(encoding="utf-8")
    assert "-->" in german and "-->" in english
    assert word_error_rate(clip(GERMAN_TOO).reference, re.sub(r"^\d+$|^.*-->.*$", "", german, flags=re.M),
                           "de") < 0.5, german
    assert _words(english) & ENGLISH_WORDS and not _words(english) & GERMAN_WORDS, english


def test_alignment_no_model_is_known_for_is_refused_naming_the_key() -> None:
    """`align: true` for Latin, which whisperx has no aligner for and align.model does not name."""
    config = parse_config({"routes": {"latin": {"language": "Latin", "align": True}},
                           "align": {"model": {"de": "/models/de"}}})
    with pytest.raises(ConfigError, match=r"routes\.latin\.align: true, but no alignment model is known for la"):
        refuse_unalignable(config, Aligner(config, "cpu"))
    named = parse_config({"routes": {"latin": {"language": "la", "align": True}},
                          "align": {"model": {"la": "/models/la"}}})
    refuse_unalignable(named, Aligner(named, "cpu"))  # a model named for it: the start goes on
