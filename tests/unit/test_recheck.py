"""engine/recheck.py: speech no decoded word starts in, found, and the text decoded again put in place."""

from __future__ import annotations

import pytest

from transcribed.engine.decoding import Decoded
from transcribed.engine.recheck import Part, Region, assemble, missed, speech_between, words_between

CHUNK = Decoded(" one two three four", (1, 2, 3, 4), -0.2, 0.01, 1.1)
WORDS = [(" one", 0.5), (" two", 1.0), (" three", 9.0), (" four", 9.5)]


def test_speech_between_counts_only_the_vad_stretches_inside_the_span() -> None:
    stretches = [(0.0, 2.0), (3.0, 6.0), (8.0, 9.0)]
    assert speech_between(stretches, 1.0, 5.0) == (3.0, 1.0)
    assert speech_between(stretches, 6.5, 7.5) == (0.0, None)


def test_speech_that_no_word_starts_in_is_found_between_two_words() -> None:
    """Words start at 0.5, 1.0, 9.0, 9.5 s of a chunk at 100 s; the VAD heard speech from 102 to
    108 s: from the end of "two"'s own 0.8 s to "three", 6 s of speech no word starts in."""
    regions = missed(100.0, 110.0, [at for _w, at in WORDS], [(100.4, 101.8), (102.0, 108.0), (109.0, 110.0)],
                     gap=2.0)
    assert regions == [Region(after=2, start=pytest.approx(101.8), end=109.0)]


def test_a_pause_is_not_missed_speech_and_neither_is_less_than_the_gap() -> None:
    words = [at for _w, at in WORDS]
    assert missed(100.0, 110.0, words, [(100.4, 101.8), (109.0, 110.0)], gap=2.0) == []  # silence between
    assert missed(100.0, 110.0, words, [(104.0, 105.5)], gap=2.0) == []  # 1.5 s of speech only
    assert missed(100.0, 110.0, words, [(102.0, 108.0)], gap=0.0) == []  # the recheck is off


def test_speech_after_the_last_word_and_before_the_first_is_found_too() -> None:
    after = missed(0.0, 30.0, [0.5, 1.0], [(0.0, 1.5), (5.0, 25.0)], gap=2.0)
    assert after == [Region(after=2, start=pytest.approx(4.8), end=30.0)]
    before = missed(0.0, 30.0, [20.0], [(1.0, 6.0), (19.8, 21.0)], gap=2.0)
    assert before == [Region(after=0, start=pytest.approx(0.8), end=20.0)]


def test_a_chunk_without_words_is_left_to_whispers_own_no_speech_rule() -> None:
    assert missed(0.0, 30.0, [], [(0.0, 30.0)], gap=2.0) == []


def test_the_text_decoded_again_goes_in_between_the_words_around_it() -> None:
    region = Region(after=2, start=101.8, end=109.0)
    again = [Part(101.8, 109.0, Decoded(" lost words here", (7, 8), -0.3, 0.02, 1.0))]

    parts = assemble(100.0, 110.0, CHUNK, WORDS, [region], [again])

    assert [(p.start, p.end, p.out.text) for p in parts] == [
        (100.0, 101.8, " one two"), (101.8, 109.0, " lost words here"), (109.0, 110.0, " three four")]
    assert parts[0].out.avg_logprob == CHUNK.avg_logprob  # the window's figures, for the filters


def test_a_region_at_the_end_leaves_no_empty_part_after_it() -> None:
    region = Region(after=4, start=110.0, end=120.0)
    again = [Part(110.0, 115.0, Decoded(" end", (9,), -0.1, 0.0, 1.0)), Part(115.0, 120.0, CHUNK)]

    parts = assemble(100.0, 120.0, CHUNK, WORDS, [region], [again])

    assert [(p.start, p.end, p.out.text) for p in parts] == [
        (100.0, 110.0, " one two three four"), (110.0, 115.0, " end"), (115.0, 120.0, CHUNK.text)]


def test_a_chunk_with_nothing_missed_is_its_own_decode_unchanged() -> None:
    assert assemble(0.0, 30.0, CHUNK, WORDS, [], []) == [Part(0.0, 30.0, CHUNK)]


def test_words_between_gives_none_for_no_words() -> None:
    assert words_between(CHUNK, WORDS, 2, 2) is None
    part = words_between(CHUNK, WORDS, 1, 3)
    assert part is not None and part.text == " two three" and part.tokens == ()
