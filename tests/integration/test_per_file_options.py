"""Per-file options with real daemons and the fake engine, where only the wiring matters:
languages by name, unknown ones refused (config: exit 2 naming the key; sidecar: bad_sidecar),
translation labelled by the language of its text, an English translation beside a transcript
(inbox and library), and what an English-only model cannot do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav

pytestmark = pytest.mark.usefixtures("corpus")

SHORT = corpus_dir() / "cmu_sphinx" / "goforward.wav"
ENGLISH_ONLY = {"TRANSCRIBED_FAKE": json.dumps({"multilingual": False})}


def _deliver(folders: Folders, name: str, sidecar: str) -> None:
    """The sidecar first, then the audio renamed into place."""
    (folders.inbox / f"{name}.yaml").write_text(sidecar)
    shutil.copy(SHORT, folders.inbox / f".{name}.part")
    (folders.inbox / f".{name}.part").rename(folders.inbox / name)


def _result(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_sidecars_name_languages_translate_and_add_english(folders: Folders) -> None:
    """`language: German` is de; `language: xx` fails its job as bad_sidecar naming the key; a
    translation says the spoken language and English text, unaligned; `also_english` puts
    `<stem>.en.*` beside the transcript."""
    folders.write_config(outputs={"formats": ["json", "srt"]})
    with DaemonProcess(folders.config, engine="fake") as daemon:
        _deliver(folders, "named.wav", "language: German\n")
        _deliver(folders, "unknown.wav", "language: xx\n")
        _deliver(folders, "translated.wav", "task: translate\nlanguage: de\n")
        _deliver(folders, "both.wav", "also_english: true\nlanguage: fr\n")
        for name in ("named.wav", "translated.wav", "both.wav"):
            wait_until(lambda n=name: (folders.done / n).exists(), 60, f"{name} in done/")
        wait_until(lambda: (folders.failed / "unknown.wav.error.json").exists(), 60, "the report")
        daemon.wait_for("job.moved", file="both.wav")
        assert daemon.stop() == 0
    named = _result(folders.outbox / "named.json")
    assert (named["language"], named["transcribed"]["options"]["language"]) == ("de", "de")
    report = _result(folders.failed / "unknown.wav.error.json")
    assert report["error_kind"] == "bad_sidecar"
    assert "sidecar unknown.wav.yaml: language: unknown language 'xx'" in report["error"]
    translated = _result(folders.outbox / "translated.json")
    assert (translated["language"], translated["text_language"]) == ("de", "en")
    assert translated["transcribed"]["text_language"] == "en"
    assert translated["transcribed"]["alignment"] == "off: translated text is not aligned"
    assert [n for n in folders.files(folders.outbox) if n.startswith("both.")] == [
        "both.en.json", "both.en.srt", "both.json", "both.log.jsonl", "both.srt"]
    spoken, english = _result(folders.outbox / "both.json"), _result(folders.outbox / "both.en.json")
    assert (spoken["language"], spoken["text_language"]) == ("fr", "fr")
    assert (english["language"], english["text_language"]) == ("fr", "en")
    assert english["transcribed"]["translation"]["segments"] == len(english["segments"]) == 1


def test_an_unknown_language_in_the_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    """`routes: {de: {language: Deutsch}}`: whisperX does not know the name; nothing starts."""
    config = tmp_path / "transcribed.yaml"
    config.write_text(yaml.safe_dump({"routes": {"de": {"language": "Deutsch"}}}))
    done = subprocess.run([sys.executable, "-m", "transcribed", "config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "routes.de.language: unknown language 'Deutsch'" in done.stderr


def test_an_english_only_model_refuses_another_language_at_start(folders: Folders) -> None:
    """A route asking for German on an English-only model: exit 2, the key named, nothing taken."""
    folders.write_config(routes={"de": {"language": "de"}})
    shutil.copy(SHORT, folders.inbox / "waiting.wav")
    done = subprocess.run([sys.executable, "-m", "transcribed", "run", "--config", str(folders.config),
                           "--engine", "fake"], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **ENGLISH_ONLY})
    assert done.returncode == 2, done.stderr
    assert "routes.de.language: de, but the model fake is English-only" in done.stderr
    assert folders.files(folders.inbox) == ["waiting.wav"]


def test_an_english_only_model_fails_a_sidecar_asking_for_a_translation(folders: Folders) -> None:
    """The sidecar's job goes to failed/ as bad_sidecar with the reason; the next file is done."""
    with DaemonProcess(folders.config, engine="fake", env=ENGLISH_ONLY):
        _deliver(folders, "asks.wav", "task: translate\n")
        wait_until(lambda: (folders.failed / "asks.wav.error.json").exists(), 60, "the report")
        shutil.copy(SHORT, folders.inbox / "plain.wav")
        wait_until(lambda: (folders.done / "plain.wav").exists(), 60, "plain.wav in done/")
    report = _result(folders.failed / "asks.wav.error.json")
    assert report["error_kind"] == "bad_sidecar"
    assert "sidecar asks.wav.yaml: task: asks for a translation, but the model fake is English-only" in report["error"]


def test_library_subtitles_are_named_by_the_language_of_their_text(tmp_path: Path) -> None:
    """A library of German films with `also_english` gets `.de.srt` and `.en.srt` beside each; one
    that translates gets `.en.srt` only, though the films speak German."""
    folders = Folders(tmp_path / "d")
    both, english = tmp_path / "both", tmp_path / "english"
    for film in (both / "Film (2001)", english / "Film (2002)"):
        film.mkdir(parents=True)
    write_tone_wav(both / "Film (2001)" / "Film (2001).wav", seconds=1.0)
    write_tone_wav(english / "Film (2002)" / "Film (2002).wav", seconds=1.0, frequency=660.0)  # another film
    folders.write_config(watch={"settle_seconds": 0.3, "rescan_seconds": 1})
    data = yaml.safe_load(folders.config.read_text())
    data["libraries"] = [{"path": str(both), "languages": ["German"], "also_english": True},
                         {"path": str(english), "task": "translate", "language": "de"}]
    folders.config.write_text(yaml.safe_dump(data))
    with DaemonProcess(folders.config, engine="fake") as daemon:
        for film in (both / "Film (2001)" / "Film (2001).wav", english / "Film (2002)" / "Film (2002).wav"):
            daemon.wait_for("job.moved", timeout=60, file=str(film))
        assert daemon.stop() == 0
    assert sorted(p.name for p in (both / "Film (2001)").iterdir()) == [
        "Film (2001).de.srt", "Film (2001).en.srt", "Film (2001).wav"]
    assert sorted(p.name for p in (english / "Film (2002)").iterdir()) == [
        "Film (2002).en.srt", "Film (2002).wav"]
    results = folders.state / "library" / "results"
    spoken = [_result(p) for p in results.glob("*.json") if not p.name.endswith(".en.json")]
    assert sorted((r["language"], r["text_language"]) for r in spoken) == [("de", "de"), ("de", "en")]
    (translation,) = [_result(p) for p in results.glob("*.en.json")]
    assert (translation["language"], translation["text_language"]) == ("de", "en")
