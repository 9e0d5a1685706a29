"""Per-job options: routes by inbox subfolder, sidecar files, and their order."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from transcribed.config import parse_config
from transcribed.errors import BadInput
from transcribed.spool.sidecars import sidecar_next_to
from transcribed.transcription.options import effective_options, read_sidecar, route_for

CONFIG = parse_config({
    "model": {"language": "en"},
    "routes": {"ru": {"language": "ru"}, "ru/calls": {"diarize": True, "max_speakers": 2}},
})


def test_a_route_applies_to_files_below_its_folder() -> None:
    """inbox/ru/a.wav takes the ru route; inbox/a.wav and inbox/rus/a.wav do not."""
    assert route_for(CONFIG, PurePosixPath("ru/a.wav")).language == "ru"
    assert route_for(CONFIG, PurePosixPath("a.wav")).language is None
    assert route_for(CONFIG, PurePosixPath("rus/a.wav")).language is None


def test_the_deepest_route_wins() -> None:
    """inbox/ru/calls/x.wav takes ru/calls, which says nothing of language, so the config's stays."""
    options = effective_options(CONFIG, PurePosixPath("ru/calls/x.wav"), None)
    assert options.diarize is True and options.max_speakers == 2
    assert options.language == "en"


def test_a_sidecar_overrides_route_and_config(tmp_path: Path) -> None:
    """Config < route < sidecar."""
    audio = tmp_path / "talk.mp3"
    audio.write_bytes(b"")
    sidecar = tmp_path / "talk.mp3.yaml"
    sidecar.write_text("language: de\nformats: [json, srt]\ninitial_prompt: Grüße aus Köln\n")
    assert sidecar_next_to(audio) == sidecar
    options = effective_options(CONFIG, PurePosixPath("ru/talk.mp3"), read_sidecar(sidecar))
    assert (options.language, options.formats, options.initial_prompt) == ("de", ("json", "srt"),
                                                                           "Grüße aus Köln")


def test_a_json_sidecar_is_read_too(tmp_path: Path) -> None:
    """talk.wav.json works like talk.wav.yaml."""
    (tmp_path / "talk.wav.json").write_text('{"task": "translate", "min_speakers": 2}')
    options = read_sidecar(tmp_path / "talk.wav.json")
    assert (options.task, options.min_speakers) == ("translate", 2)


@pytest.mark.parametrize(("text", "message"), [
    ("languag: de\n", "sidecar talk.wav.yaml: languag: unknown key (did you mean 'language'?)"),
    ("task: summarise\n", "sidecar talk.wav.yaml: task: expected one of transcribe, translate"),
    ("formats: [docx]\n", "sidecar talk.wav.yaml: sidecar.formats: expected some of"),
    ("min_speakers: 3\nmax_speakers: 2\n", "must not exceed"),
    ("language: [de\n", "cannot be read"),
])
def test_a_bad_sidecar_is_bad_input_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    """A wrong sidecar fails its job with a clear message, like a wrong config."""
    sidecar = tmp_path / "talk.wav.yaml"
    sidecar.write_text(text)
    with pytest.raises(BadInput) as caught:
        read_sidecar(sidecar)
    assert caught.value.kind == "bad_sidecar"
    assert message in str(caught.value)
