"""Per-file options that need more than the daemon-wide default: languages by code or name,
translation, word alignment and speakers turned on by a route, library or sidecar while the
daemon-wide key is off, and what an English-only model cannot do. Each is refused at load with
the key named when it cannot work (no model is loaded here)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from transcribed.config import parse_config
from transcribed.config.job_checks import check_english_only_model
from transcribed.errors import BadInput, ConfigError
from transcribed.library.job import library_routes
from transcribed.library.scan import ScanCounts, walk, wanted_languages
from transcribed.transcription.alignment import languages_to_preload
from transcribed.transcription.diarization import Diarizer
from transcribed.transcription.options import effective_options, job_options, read_sidecar
from transcribed.transcription.translation import english_outputs, text_language, wants_english_too

UNKNOWN = "unknown language"


class TestLanguages:
    """Codes and whisperX's names are accepted (German -> de); unknown ones are refused, naming
    the key, wherever a language is written."""

    def test_names_and_codes_become_whisper_codes_in_every_key(self) -> None:
        config = parse_config({
            "model": {"language": "German", "languages": ["EN", "castilian"]},
            "audio": {"track": ["French", "de"]},
            "align": {"model": {"Russian": "/models/ru"}, "preload": ["japanese"]},
            "routes": {"calls": {"language": "Dutch", "audio_track": "italian"}},
            "libraries": [{"path": "/srv/films", "languages": ["German", "english"]}],
        })
        assert (config.model.language, config.model.languages) == ("de", ("en", "es"))
        assert config.audio.track == ("fr", "de")
        assert (config.align.model, config.align.preload) == ({"ru": "/models/ru"}, ("ja",))
        assert (config.routes["calls"].language, config.routes["calls"].audio_track) == ("nl", ("it",))
        assert config.libraries[0].languages == ("de", "en")

    @pytest.mark.parametrize(("data", "key"), [
        ({"model": {"language": "xx"}}, "model.language"),
        ({"model": {"language": "Deutsch"}}, "model.language"),
        ({"model": {"languages": ["en", "zz"]}}, r"model.languages\[1\]"),
        ({"audio": {"track": ["klingon"]}}, r"audio.track\[0\]"),
        ({"align": {"preload": ["qq"]}}, r"align.preload\[0\]"),
        ({"align": {"model": {"xx": "/models/x"}}}, "align.model.xx"),
        ({"routes": {"interviews": {"language": "xx"}}}, "routes.interviews.language"),
        ({"routes": {"interviews": {"audio_track": ["de", "yy"]}}}, r"routes.interviews.audio_track\[1\]"),
        ({"libraries": [{"path": "/srv/films", "languages": ["de", "zz"]}]}, r"libraries\[0\].languages\[1\]"),
        ({"libraries": [{"path": "/srv/films", "language": "Elvish"}]}, r"libraries\[0\].language"),
    ])
    def test_an_unknown_language_is_refused_at_load_naming_the_key(self, data: dict, key: str) -> None:
        with pytest.raises(ConfigError, match=rf"^{key}: {UNKNOWN} "):
            parse_config(data)

    def test_a_language_that_is_no_string_says_what_is_expected(self) -> None:
        with pytest.raises(ConfigError, match="model.language: expected a language .* or null, got 12"):
            parse_config({"model": {"language": 12}})

    def test_a_sidecar_names_a_language_by_its_name(self, tmp_path: Path) -> None:
        (tmp_path / "talk.wav.yaml").write_text("language: German\naudio_track: [french]\n")
        options = read_sidecar(tmp_path / "talk.wav.yaml")
        assert (options.language, options.audio_track) == ("de", ("fr",))

    def test_a_sidecars_unknown_language_is_bad_sidecar_with_the_reason(self, tmp_path: Path) -> None:
        (tmp_path / "talk.wav.yaml").write_text("language: xx\n")
        with pytest.raises(BadInput) as caught:
            read_sidecar(tmp_path / "talk.wav.yaml")
        assert caught.value.kind == "bad_sidecar"
        assert str(caught.value).startswith(f"sidecar talk.wav.yaml: language: {UNKNOWN} 'xx'")


class TestTask:
    """`task` is a daemon-wide key too; routes and sidecars override it."""

    def test_the_daemon_wide_task_is_every_files_default(self) -> None:
        config = parse_config({"model": {"task": "translate"}, "routes": {"own": {"task": "transcribe"}}})
        assert effective_options(config, PurePosixPath("a.wav"), None).task == "translate"
        assert effective_options(config, PurePosixPath("own/a.wav"), None).task == "transcribe"

    def test_a_route_translates_with_the_daemon_wide_default_off(self) -> None:
        config = parse_config({"routes": {"english": {"task": "translate"}}})
        assert config.model.task == "transcribe"
        assert effective_options(config, PurePosixPath("english/a.wav"), None).task == "translate"

    def test_a_wrong_task_is_refused_naming_the_key(self) -> None:
        with pytest.raises(ConfigError, match="model.task: expected one of transcribe, translate"):
            parse_config({"model": {"task": "summarise"}})

    def test_also_english_with_translate_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="routes.en.also_english: task is translate"):
            parse_config({"routes": {"en": {"task": "translate", "also_english": True}}})
        (tmp_path / "a.wav.yaml").write_text("task: translate\nalso_english: true\n")
        with pytest.raises(BadInput, match="sidecar.also_english: task is translate"):
            read_sidecar(tmp_path / "a.wav.yaml")


class TestTranslation:
    """The language of the text, and when an English translation is added."""

    def test_the_text_of_a_translation_is_english(self) -> None:
        assert text_language("de", "translate") == "en"
        assert text_language("de", "transcribe") == "de"

    def test_english_too_only_for_text_in_another_language(self) -> None:
        config = parse_config({"routes": {"films": {"also_english": True}}})
        options = effective_options(config, PurePosixPath("films/a.mkv"), None)
        speech = [{"start": 0.0, "end": 1.0, "text": " Hallo"}]
        assert wants_english_too(options, {"language": "de", "segments": speech})
        assert not wants_english_too(options, {"language": "en", "segments": speech})
        assert not wants_english_too(options, {"language": "de", "segments": []})
        plain = effective_options(config, PurePosixPath("a.mkv"), None)
        assert not wants_english_too(plain, {"language": "de", "segments": speech})

    def test_the_translations_files_have_their_own_suffixes(self, tmp_path: Path) -> None:
        written = {".srt": tmp_path / "a.en.srt", ".json": tmp_path / "a.en.json"}
        assert english_outputs(written) == {".en.srt": tmp_path / "a.en.srt", ".en.json": tmp_path / "a.en.json"}


class TestAlignmentPerFile:
    """`align` per route or sidecar, whatever `align.enabled` says."""

    def test_a_route_turns_words_on_while_the_daemon_wide_key_is_off(self) -> None:
        config = parse_config({"align": {"enabled": False},
                               "routes": {"words": {"align": True, "language": "de"}}})
        assert effective_options(config, PurePosixPath("a.wav"), None).align is False
        assert effective_options(config, PurePosixPath("words/a.wav"), None).align is True
        assert languages_to_preload(config, english_only=False) == ["de"]

    def test_a_sidecar_turns_words_on_or_off(self, tmp_path: Path) -> None:
        config = parse_config({"align": {"enabled": False}})
        (tmp_path / "a.wav.yaml").write_text("align: true\n")
        assert effective_options(config, PurePosixPath("a.wav"), read_sidecar(tmp_path / "a.wav.yaml")).align
        (tmp_path / "a.wav.yaml").write_text("align: false\n")
        on = parse_config({})
        assert effective_options(on, PurePosixPath("a.wav"), read_sidecar(tmp_path / "a.wav.yaml")).align is False

    def test_nothing_is_preloaded_where_no_file_can_be_aligned(self) -> None:
        config = parse_config({"align": {"enabled": False, "preload": ["fr"]}, "model": {"language": "de"},
                               "routes": {"en": {"language": "en", "align": False}}})
        assert languages_to_preload(config, english_only=True) == []

    def test_the_languages_where_words_may_come_are_preloaded(self) -> None:
        config = library_routes(parse_config({
            "align": {"preload": ["fr"]}, "model": {"language": "de"},
            "routes": {"ru": {"language": "ru"}, "ja": {"language": "ja", "align": False},
                       "uk": {"language": "uk", "task": "translate"}},
            "libraries": [{"path": "/srv/shows", "languages": ["it", "pt"]}],
        }))
        assert languages_to_preload(config, english_only=False) == ["fr", "de", "ru", "it", "pt"]


class TestSpeakersPerFile:
    """The diarization pipeline is loaded at start wherever the configuration asks for speakers."""

    @pytest.mark.parametrize(("data", "wanted"), [
        ({}, False),
        ({"diarize": {"enabled": True}}, True),
        ({"routes": {"interviews": {"diarize": True}}}, True),
        ({"routes": {"interviews": {"diarize": False}}}, False),
        ({"libraries": [{"path": "/srv/talks", "diarize": True}]}, True),
    ])
    def test_a_route_or_library_asking_for_speakers_loads_them_at_start(self, data: dict, wanted: bool) -> None:
        assert Diarizer(parse_config(data), "cpu").wanted_at_start() is wanted

    def test_a_route_turns_speakers_on_while_the_daemon_wide_key_is_off(self) -> None:
        config = parse_config({"routes": {"interviews": {"diarize": True}}})
        assert config.diarize.enabled is False
        assert effective_options(config, PurePosixPath("interviews/a.wav"), None).diarize is True


class TestEnglishOnlyModel:
    """What an English-only model cannot do is refused, naming the key (config) or failing the
    job as bad_sidecar (sidecar)."""

    @pytest.mark.parametrize(("data", "key"), [
        ({"model": {"language": "de"}}, "model.language: de, but the model tiny.en is English-only"),
        ({"model": {"task": "translate"}}, "model.task: asks for a translation"),
        ({"routes": {"ru": {"language": "Russian"}}}, "routes.ru.language: ru"),
        ({"routes": {"films": {"also_english": True}}}, "routes.films.also_english: asks for a translation"),
        ({"libraries": [{"path": "/srv/films", "languages": ["de"]}]}, r"libraries\[0\].languages: \[de\]"),
        ({"libraries": [{"path": "/srv/films", "task": "translate"}]}, r"libraries\[0\].task"),
    ])
    def test_the_config_is_refused(self, data: dict, key: str) -> None:
        with pytest.raises(ConfigError, match=key):
            check_english_only_model(library_routes(parse_config(data)), "tiny.en")

    def test_english_and_detection_are_fine(self) -> None:
        check_english_only_model(library_routes(parse_config({
            "model": {"language": "en"}, "routes": {"a": {"language": "English"}},
            "libraries": [{"path": "/srv/films", "languages": ["de", "en"]}]})), "tiny.en")

    def test_a_sidecar_asking_for_german_is_bad_sidecar(self, tmp_path: Path) -> None:
        (tmp_path / "a.wav").write_bytes(b"")
        (tmp_path / "a.wav.yaml").write_text("language: German\n")
        config = parse_config({})
        with pytest.raises(BadInput, match="sidecar a.wav.yaml: language: de, but the model tiny.en") as caught:
            job_options(config, PurePosixPath("a.wav"), tmp_path / "a.wav.yaml", english_only="tiny.en")
        assert caught.value.kind == "bad_sidecar"
        assert job_options(config, PurePosixPath("a.wav"), tmp_path / "a.wav.yaml").language == "de"


class TestLibraryLanguages:
    """A library wants its languages' subtitles, and English too with `also_english`."""

    def test_english_is_wanted_too(self, tmp_path: Path) -> None:
        config = parse_config({"libraries": [{"path": str(tmp_path), "languages": ["de"], "also_english": True}]})
        assert wanted_languages(config.libraries[0]) == ("de", "en")
        (tmp_path / "Film.mkv").write_bytes(b"x")
        (tmp_path / "Film.de.srt").write_text("")
        (tmp_path / "Done.mkv").write_bytes(b"x")
        (tmp_path / "Done.de.srt").write_text("")
        (tmp_path / "Done.en.srt").write_text("")
        found = list(walk(config.libraries[0], frozenset({"mkv"}), ScanCounts()))
        assert [(f.path.name, f.missing) for f in found] == [("Film.mkv", ("en",))]
