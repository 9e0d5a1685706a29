"""Choosing a file's audio stream (audio.track), the language table it uses, the new config keys,
and the language detection's pure parts (allowed languages, speech gathered for detection)."""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np
import pytest

from transcribed import languages
from transcribed.config import parse_config, parse_options
from transcribed.engine.audio_windows import speech_window
from transcribed.languages import most_probable as most_probable_language
from transcribed.errors import BadInput, ConfigError
from transcribed.transcription.tracks import Stream, choose_track
from transcribed.transcription.options import effective_options

#: An English stream, then a German one flagged default (a dubbed film's usual layout).
FILM = [Stream(0, "eng"), Stream(1, "ger", default=True)]


class TestChooseTrack:
    """auto, a number, or languages in the user's order; the reason says which rule chose."""

    @pytest.mark.parametrize(("streams", "setting", "number", "reason"), [
        (FILM, "auto", 1, "the stream flagged default"),
        ([Stream(0, "eng"), Stream(1, "ger")], "auto", 0, "the first audio stream (none is flagged default)"),
        ([Stream(0, None)], "auto", 0, "the only audio stream"),
        (FILM, 0, 0, "audio.track is 0"),
        (FILM, ("en",), 0, "tagged eng: en, the first of en present"),
        (FILM, ("de", "en"), 1, "tagged ger: de, the first of de, en present"),
        (FILM, ("fr", "en"), 0, "tagged eng: en, the first of fr, en present"),
        ([Stream(0, "eng"), Stream(1, "deu")], ("de",), 1, "tagged deu: de, the first of de present"),
        (FILM, ("fr",), 1, "no stream in fr (the file has eng, ger): the stream flagged default"),
        ([Stream(0, "und"), Stream(1, None)], ("en",), 0,
         "no stream in en (the file has und, untagged): the first audio stream (none is flagged default)"),
    ])
    def test_the_choice_and_its_reason(self, streams: list[Stream], setting: object, number: int,
                                       reason: str) -> None:
        track = choose_track(streams, setting)  # type: ignore[arg-type]
        assert (track.number, track.reason, track.streams) == (number, reason, len(streams))
        assert track.language == streams[number].language

    def test_of_two_streams_in_one_language_the_default_one(self) -> None:
        """Commentary first, the film's own English track flagged default: the default wins."""
        streams = [Stream(0, "eng"), Stream(1, "eng", default=True), Stream(2, "fre")]
        assert choose_track(streams, ("en",)).number == 1

    def test_a_number_past_the_streams_fails_the_job(self) -> None:
        with pytest.raises(BadInput, match="audio.track is 2, but the file has 2 audio streams") as caught:
            choose_track(FILM, 2)
        assert caught.value.kind == "no_such_track"


class TestLanguageTags:
    """Containers' tags (639-2/B and /T, or two letters, with regions) read as Whisper's codes."""

    @pytest.mark.parametrize(("tag", "code"), [
        ("eng", "en"), ("ger", "de"), ("deu", "de"), ("GER", "de"), ("fre", "fr"), ("fra", "fr"),
        ("chi", "zh"), ("zho", "zh"), ("de", "de"), ("pt-BR", "pt"), ("en_US", "en"),
        ("und", None), ("", None), (None, None), ("qaa", None), ("jav", "jw"),
    ])
    def test_code_of_tag(self, tag: str | None, code: str | None) -> None:
        assert languages.code_of_tag(tag) == code

    def test_every_whisper_language_is_in_the_table(self) -> None:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        assert set(_LANGUAGE_CODES) <= set(languages.ISO_639_2)


class TestKeys:
    """audio.track, model.languages and the decoding thresholds: read, checked, layered per job."""

    @pytest.mark.parametrize(("value", "parsed"), [
        ("auto", "auto"), (1, 1), ("de", ("de",)), (["de", "en"], ("de", "en")),
    ])
    def test_audio_track_values(self, value: object, parsed: object) -> None:
        assert parse_config({"audio": {"track": value}}).audio.track == parsed

    @pytest.mark.parametrize(("data", "message"), [
        ({"audio": {"track": -1}}, "audio.track: expected auto, a stream number"),
        ({"audio": {"track": ["klingon"]}}, r"audio.track\[0\]: unknown language 'klingon'"),
        ({"model": {"languages": ["en", "xx"]}}, r"model.languages\[1\]: unknown language 'xx'"),
        ({"model": {"no_speech_threshold": 1.5}}, "model.no_speech_threshold: expected a probability"),
        ({"model": {"log_prob_threshold": 0.5}}, "model.log_prob_threshold: expected 0 or less"),
        ({"model": {"compression_ratio_threshold": 0}}, "model.compression_ratio_threshold: expected"),
        ({"routes": {"a": {"audio_track": -2}}}, "routes.a.audio_track: expected auto"),
        ({"routes": {"a": {"no_speech_threshold": 2}}}, "routes.a.no_speech_threshold: expected"),
        ({"filters": {"max_repeats": 0}}, "filters.max_repeats: expected a positive integer"),
        ({"filters": {"max_words_per_speech_second": -1}}, "filters.max_words_per_speech_second"),
    ])
    def test_wrong_values_name_the_key(self, data: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_config(data)

    def test_a_sidecar_over_a_route_over_the_config(self) -> None:
        config = parse_config({"audio": {"track": ["de"]},
                               "model": {"no_speech_threshold": 0.5, "condition_on_previous_text": True},
                               "routes": {"films": {"audio_track": ["en"], "temperature_fallback": True}}})
        sidecar = parse_options({"audio_track": 1, "log_prob_threshold": -0.8})
        plain = effective_options(config, PurePosixPath("a.mkv"), None)
        routed = effective_options(config, PurePosixPath("films/a.mkv"), None)
        both = effective_options(config, PurePosixPath("films/a.mkv"), sidecar)
        assert (plain.audio_track, routed.audio_track, both.audio_track) == (("de",), ("en",), 1)
        assert (plain.temperature_fallback, routed.temperature_fallback) == (False, True)
        assert (both.no_speech_threshold, both.log_prob_threshold, both.condition_on_previous_text) == (
            0.5, -0.8, True)


class TestDetection:
    """model.languages: the most probable allowed one; speech gathered from the VAD's chunks."""

    RANKED = [("<|en|>", 0.6), ("<|de|>", 0.3), ("<|nl|>", 0.1)]

    @pytest.mark.parametrize(("allowed", "expected"), [
        ((), ("en", 0.6)), (("de", "nl"), ("de", 0.3)), (("nl",), ("nl", 0.1)),
    ])
    def test_most_probable_allowed(self, allowed: tuple[str, ...], expected: tuple[str, float]) -> None:
        assert most_probable_language(self.RANKED, allowed) == expected

    def test_speech_is_gathered_across_chunks_and_the_gaps_left_out(self) -> None:
        """A 40 s music intro between two chunks counts for nothing; 30 s cap over the chunks."""
        rate = 16_000
        samples = np.zeros(120 * rate, dtype=np.float32)
        samples[5 * rate:15 * rate] = 1.0     # speech 5-15 s
        samples[55 * rate:95 * rate] = 2.0    # speech 55-95 s, after 40 s of "music"
        speech = [{"start": 5.0, "end": 15.0}, {"start": 55.0, "end": 95.0}]
        window = speech_window(samples, speech, 30 * rate)  # type: ignore[arg-type]
        assert len(window) == 30 * rate
        assert (window[:10 * rate] == 1.0).all() and (window[10 * rate:] == 2.0).all()

    def test_no_speech_found_uses_the_files_start(self) -> None:
        samples = np.arange(100, dtype=np.float32)
        assert (speech_window(samples, [], 10) == samples[:10]).all()
