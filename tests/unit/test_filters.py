"""The post-filters (filters.py) as tables: what each drops or collapses, and what it keeps."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from transcribed.config import Filters, parse_config
from transcribed.engine.base import Segment, Transcript
from transcribed.transcription import filters
from transcribed.transcription.options import effective_options


def seg(text: str, **figures: float) -> Segment:
    return Segment(start=0.0, end=1.0, text=text, **figures)  # type: ignore[typeddict-item]


class TestNoSpeech:
    """Whisper's own silence rule: both a likely no-speech token and an unlikely text."""

    @pytest.mark.parametrize(("no_speech_prob", "avg_logprob", "dropped"), [
        (0.9, -1.5, True),     # silence by both figures
        (0.9, -0.3, False),    # confident text over a quiet window: kept
        (0.2, -1.5, False),    # speech likely, poor text: kept (a filter does not judge accuracy)
        (0.6, -1.5, False),    # at the threshold is not above it
        (0.61, -1.01, True),
    ])
    def test_the_rule(self, no_speech_prob: float, avg_logprob: float, dropped: bool) -> None:
        kept, count = filters.drop_no_speech(
            [seg(" hello", no_speech_prob=no_speech_prob, avg_logprob=avg_logprob)], 0.6, -1.0)
        assert (count, len(kept)) == ((1, 0) if dropped else (0, 1))

    def test_a_segment_without_the_figures_is_kept(self) -> None:
        """Another engine's segment (no no_speech_prob): nothing to judge by, so it stays."""
        assert filters.drop_no_speech([seg(" hello")], 0.6, -1.0) == ([seg(" hello")], 0)


class TestRepeats:
    """A phrase said more than max_repeats times in a row is kept once."""

    @pytest.mark.parametrize(("text", "expected", "removed"), [
        (" Thank you. Thank you. Thank you. Thank you. Thank you.", " Thank you.", 4),
        (" ha ha ha ha ha ha ha", " ha", 6),
        (" I said no no no no to him", " I said no no no no to him", 0),  # 4 times: not more than 4
        (" the cat sat the cat sat the cat sat the cat sat the cat sat on the mat",
         " the cat sat on the mat", 4),
        (" So. so, SO so so! and then", " So. and then", 4),  # case and punctuation aside
        (" one two three four five six", " one two three four five six", 0),
        ("", "", 0),
    ])
    def test_inside_a_segment(self, text: str, expected: str, removed: int) -> None:
        assert filters.collapse_text(text, 4) == (expected, removed)

    def test_consecutive_identical_segments(self) -> None:
        """Six segments of the same words become one; a run of four (not more than 4) stays."""
        loop = [seg(" Subscribe!") for _ in range(6)] + [seg(" bye")]
        kept, removed = filters.collapse_repeats(loop, 4)
        assert ([s["text"] for s in kept], removed) == ([" Subscribe!", " bye"], 5)
        four = [seg(" yes") for _ in range(4)]
        assert filters.collapse_repeats(four, 4) == (four, 0)

    def test_empty_segments_are_not_a_loop(self) -> None:
        empty = [seg("") for _ in range(6)]
        assert filters.collapse_repeats(empty, 4) == (empty, 0)


class TestOutsideSpeech:
    """More words than the VAD's speech under a segment can carry: text over music or silence."""

    @pytest.mark.parametrize(("text", "speech_seconds", "dropped"), [
        (" one two three four five six seven", 1.0, True),   # 7 words in 1 s of speech
        (" one two three", 1.0, False),                      # 3 words per second: speech
        (" hello there", 0.0, True),                         # words where the VAD heard nothing
        ("", 0.0, False),                                    # no words, nothing to drop
    ])
    def test_the_rate(self, text: str, speech_seconds: float, dropped: bool) -> None:
        kept, count = filters.drop_outside_speech([seg(text, speech_seconds=speech_seconds)], 6.0)
        assert count == int(dropped) and len(kept) == 1 - int(dropped)

    def test_a_segment_without_vad_figures_is_kept(self) -> None:
        assert filters.drop_outside_speech([seg(" a b c d e f g h")], 6.0)[1] == 0


def test_apply_counts_what_each_filter_removed() -> None:
    """One transcript through every filter: the counts name the filter that removed each part."""
    result = Transcript(language="en", segments=[
        seg(" Thanks for watching!", no_speech_prob=0.95, avg_logprob=-1.4, speech_seconds=2.0),
        seg(" la la la la la la", no_speech_prob=0.1, avg_logprob=-0.5, speech_seconds=2.0),
        seg(" many words in no time at all here", no_speech_prob=0.1, avg_logprob=-0.5,
            speech_seconds=0.5),
        seg(" a real sentence", no_speech_prob=0.1, avg_logprob=-0.2, speech_seconds=1.5),
    ])
    rules = filters.FilterRules(max_repeats=4, max_words_per_speech_second=6.0)
    out, counts = filters.apply(result, rules)
    assert [s["text"] for s in out["segments"]] == [" la", " a real sentence"]
    assert counts == {"no_speech": 1, "repeats": 5, "outside_speech": 1}
    assert out["language"] == "en" and len(result["segments"]) == 4  # the input is left alone


def test_all_off_changes_nothing() -> None:
    result = Transcript(language="en", segments=[seg(" la la la la la la", no_speech_prob=0.99,
                                                     avg_logprob=-3.0)])
    out, counts = filters.apply(result, filters.FilterRules(no_speech=False, max_repeats=None))
    assert out == result and counts == {"no_speech": 0, "repeats": 0, "outside_speech": 0}


def test_the_rules_come_from_the_config_and_the_jobs_thresholds() -> None:
    """filters.* from the config; the thresholds from the model section, a route over it."""
    config = parse_config({"filters": {"no_speech": False, "max_repeats": 2},
                           "model": {"no_speech_threshold": 0.7},
                           "routes": {"noisy": {"log_prob_threshold": -0.5}}})
    options = effective_options(config, PurePosixPath("noisy/a.wav"), None)
    rules = filters.FilterRules.of(config.filters, options)
    assert rules == filters.FilterRules(no_speech=False, no_speech_threshold=0.7, log_prob_threshold=-0.5,
                                        max_repeats=2, max_words_per_speech_second=None)
    assert Filters() == parse_config({}).filters
