"""Vocabulary (initial_prompt, hotwords, a words file) and subtitle layout per route, library and
sidecar over the daemon's own: which a file gets, and what is refused, naming the key."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest
from structlog.testing import capture_logs

from transcribed.config import load_config, parse_config
from transcribed.config.vocabulary import MAX_WORDS_FILE_BYTES, WordsFiles
from transcribed.errors import BadInput, ConfigError
from transcribed.transcription.options import effective_options, job_options, read_sidecar


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "transcribed.yaml"
    path.write_text("folders: {inbox: in, outbox: out, done: done, failed: failed, state: state}\n" + text)
    return path


class TestVocabulary:
    """The daemon's words for every file, a route's or library's instead, a sidecar's over both."""

    def test_the_daemons_words_apply_where_nothing_else_is_said(self, tmp_path: Path) -> None:
        (tmp_path / "office.txt").write_text("# our people\nAbigail Claflin\n\nSubiaco\n  HbA1c  \n")
        config = load_config(write_config(tmp_path, """
model: {initial_prompt: "Minutes of the board.", hotwords: "Montreal Forced Aligner",
        hotwords_file: office.txt}
routes:
  music: {hotwords: "Pannartz"}
  clinic: {hotwords_file: office.txt}
"""))
        plain = effective_options(config, PurePosixPath("memo.wav"), None)
        assert plain.initial_prompt == "Minutes of the board."
        assert plain.hotwords == "Montreal Forced Aligner, Abigail Claflin, Subiaco, HbA1c"
        assert effective_options(config, PurePosixPath("music/a.wav"), None).hotwords == "Pannartz"
        assert effective_options(config, PurePosixPath("clinic/a.wav"), None).hotwords == \
            "Abigail Claflin, Subiaco, HbA1c"

    def test_a_sidecar_sets_its_own_words(self, tmp_path: Path) -> None:
        config = parse_config({"model": {"hotwords": "Dashwood", "initial_prompt": "A novel."},
                               "routes": {"a": {"hotwords": "Frere"}}})
        (tmp_path / "x.wav.yaml").write_text("hotwords: Sweynheim\ninitial_prompt: Printing history.\n")
        options = effective_options(config, PurePosixPath("a/x.wav"), read_sidecar(tmp_path / "x.wav.yaml"))
        assert (options.hotwords, options.initial_prompt) == ("Sweynheim", "Printing history.")

    def test_nothing_set_is_nothing_sent(self) -> None:
        """Unset, no prompt and no hotwords reach Whisper: its decoding is the plain one."""
        options = effective_options(parse_config({}), PurePosixPath("a.wav"), None)
        assert options.initial_prompt is None and options.hotwords is None

    @pytest.mark.parametrize(("setup", "message"), [
        (lambda d: None, r"model.hotwords_file: cannot read .*missing.txt"),
        (lambda d: (d / "missing.txt").write_text("# only a comment\n\n"), "holds no words"),
        (lambda d: (d / "missing.txt").write_bytes(b"\xff\xfe\x00"), "is not UTF-8 text"),
        (lambda d: (d / "missing.txt").write_text("w\n" * MAX_WORDS_FILE_BYTES), "at most"),
    ])
    def test_a_words_file_that_cannot_be_used_stops_the_start(self, tmp_path: Path, setup, message: str) -> None:
        setup(tmp_path)
        with pytest.raises(ConfigError, match=message):
            load_config(write_config(tmp_path, "model: {hotwords_file: missing.txt}\n"))

    def test_a_routes_words_file_is_named_by_its_key(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"routes\.clinic\.hotwords_file: cannot read"):
            load_config(write_config(tmp_path, "routes: {clinic: {hotwords_file: gone.txt}}\n"))

    def test_a_changed_file_is_read_again_and_an_unreadable_one_keeps_its_last_words(self, tmp_path: Path) -> None:
        words = tmp_path / "words.txt"
        words.write_text("Claflin\n")
        files = WordsFiles()
        assert files.words(words, "k") == "Claflin"
        words.write_text("Claflin\nSubiaco\n")
        os.utime(words, ns=(10**18, 10**18))
        assert files.words(words, "k") == "Claflin, Subiaco"
        words.unlink()
        assert files.words(words, "k") == "Claflin, Subiaco" and words in files.unreadable

    def test_the_log_says_once_that_a_words_file_went_away(self, tmp_path: Path) -> None:
        words = tmp_path / "gone-later.txt"
        words.write_text("Frere\n")
        config = load_config(write_config(tmp_path, f"model: {{hotwords_file: {words}}}\n"))
        assert effective_options(config, PurePosixPath("a.wav"), None).hotwords == "Frere"
        words.unlink()
        with capture_logs() as logged:
            for _ in range(3):
                assert effective_options(config, PurePosixPath("a.wav"), None).hotwords == "Frere"
        assert [e["event"] for e in logged] == ["vocabulary.unreadable"]

    def test_a_sidecar_cannot_name_a_words_file(self, tmp_path: Path) -> None:
        (tmp_path / "x.wav.yaml").write_text("hotwords_file: /etc/passwd\n")
        with pytest.raises(BadInput, match="unknown key"):
            read_sidecar(tmp_path / "x.wav.yaml")


class TestLayout:
    """Subtitle line width, line count and highlighted words: daemon-wide, per route or sidecar."""

    CONFIG = parse_config({"outputs": {"max_line_width": 42, "formats": ["json", "srt", "aud"]},
                           "routes": {"tv": {"max_line_width": 32, "max_line_count": 2},
                                      "karaoke": {"highlight_words": True, "formats": ["srt", "vtt"]}}})

    def test_each_place_lays_its_subtitles_out_its_way(self) -> None:
        plain = effective_options(self.CONFIG, PurePosixPath("a.wav"), None).outputs()
        tv = effective_options(self.CONFIG, PurePosixPath("tv/a.mkv"), None).outputs()
        karaoke = effective_options(self.CONFIG, PurePosixPath("karaoke/a.mp3"), None).outputs()
        assert (plain.max_line_width, plain.max_line_count, plain.formats) == (42, None, ("json", "srt", "aud"))
        assert (tv.max_line_width, tv.max_line_count) == (32, 2)
        assert karaoke.highlight_words and karaoke.max_line_width == 42 and karaoke.formats == ("srt", "vtt")

    def test_a_sidecars_line_count_uses_the_width_around_it(self, tmp_path: Path) -> None:
        (tmp_path / "a.wav.yaml").write_text("max_line_count: 1\n")
        assert job_options(self.CONFIG, PurePosixPath("a.wav"), tmp_path / "a.wav.yaml").max_line_count == 1
        with pytest.raises(BadInput, match="max_line_count: has no effect without max_line_width"):
            job_options(parse_config({}), PurePosixPath("a.wav"), tmp_path / "a.wav.yaml")

    @pytest.mark.parametrize(("data", "message"), [
        ({"outputs": {"max_line_count": 2}}, "outputs.max_line_count: has no effect without max_line_width"),
        ({"routes": {"tv": {"max_line_count": 2}}}, "routes.tv.max_line_count: has no effect"),
        ({"routes": {"tv": {"max_line_width": 0}}}, "routes.tv.max_line_width: expected a positive integer"),
        ({"outputs": {"formats": ["srt", "audacity"]}}, "outputs.formats: expected some of json, txt, srt, vtt, tsv, aud"),
        ({"libraries": [{"path": "/m", "formats": ["aud"]}]}, r"libraries\[0\].formats: expected some of srt, vtt"),
    ])
    def test_bad_layouts_are_refused_naming_the_key(self, data: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_config(data)

    def test_a_routes_line_count_may_rely_on_the_daemons_width(self) -> None:
        parse_config({"outputs": {"max_line_width": 40}, "routes": {"tv": {"max_line_count": 2}}})
