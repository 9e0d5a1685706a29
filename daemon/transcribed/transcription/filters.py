"""Post-filters against Whisper's hallucinations: text it invents over music, noise and silence,
and a phrase it repeats in a loop. Pure functions over a transcript's segments; what each
dropped is counted in the job's metadata (`filters`). docs/quality.md says what each drops and
how the defaults were measured on the corpus (bench/filters.py).

- `no_speech`: a segment Whisper itself judges silence (its no-speech probability above
  `no_speech_threshold` and its average log-probability below `log_prob_threshold`: the rule
  faster-whisper applies, which whisperx's batched decoding skips) is dropped.
- `repeats`: a phrase said more than `max_repeats` times in a row, inside a segment or as
  consecutive identical segments, is kept once.
- `outside_speech`: a segment with more words than `max_words_per_speech_second` per second of
  speech the VAD found under it is text over music or silence, and is dropped.

They run on the plain transcript, before alignment and diarization, so those never see what was
dropped. A segment that lacks a figure (another engine's) is kept by the rule that reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import Filters
from ..engine.base import Segment, Transcript
from .options import Effective

#: Characters ignored when comparing words (a phrase repeats whatever its punctuation or case).
_PUNCTUATION = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class FilterRules:
    """Which filters run for one job and their limits."""

    no_speech: bool = True
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    max_repeats: int | None = 8
    max_words_per_speech_second: float | None = None

    @classmethod
    def of(cls, filters: Filters, options: Effective) -> FilterRules:
        """The config's `filters` with the job's thresholds (the model's, a route's, a sidecar's)."""
        return cls(filters.no_speech, options.no_speech_threshold, options.log_prob_threshold,
                   filters.max_repeats, filters.max_words_per_speech_second)


def apply(result: Transcript, rules: FilterRules) -> tuple[Transcript, dict[str, int]]:
    """The transcript with every enabled filter applied, and how much each one removed:
    segments for no_speech and outside_speech, repetitions for repeats."""
    segments = list(result["segments"])
    counts = {"no_speech": 0, "repeats": 0, "outside_speech": 0}
    if rules.no_speech:
        segments, counts["no_speech"] = drop_no_speech(
            segments, rules.no_speech_threshold, rules.log_prob_threshold)
    if rules.max_words_per_speech_second is not None:
        segments, counts["outside_speech"] = drop_outside_speech(segments, rules.max_words_per_speech_second)
    if rules.max_repeats is not None:
        segments, counts["repeats"] = collapse_repeats(segments, rules.max_repeats)
    return Transcript(**{**result, "segments": segments}), counts


def drop_no_speech(segments: list[Segment], no_speech_threshold: float,
                   log_prob_threshold: float) -> tuple[list[Segment], int]:
    """Segments without those Whisper calls silence: no-speech probability above the threshold
    and average log-probability below the other (both, as in Whisper: a confident text over a
    likely-silent window is kept)."""
    kept = [s for s in segments
            if not (s.get("no_speech_prob", 0.0) > no_speech_threshold
                    and s.get("avg_logprob", 0.0) < log_prob_threshold)]
    return kept, len(segments) - len(kept)


def drop_outside_speech(segments: list[Segment], max_words_per_second: float) -> tuple[list[Segment], int]:
    """Segments without those holding more words than the VAD's speech under them can carry
    (fast speech is 3-4 words per second): text Whisper read into music, noise or silence."""
    def too_dense(segment: Segment) -> bool:
        speech = segment.get("speech_seconds")
        if speech is None:
            return False
        words = len(segment["text"].split())
        return words > 0 and (speech <= 0 or words / speech > max_words_per_second)

    kept = [s for s in segments if not too_dense(s)]
    return kept, len(segments) - len(kept)


def collapse_repeats(segments: list[Segment], max_repeats: int) -> tuple[list[Segment], int]:
    """A phrase said more than `max_repeats` times in a row kept once: inside each segment's
    text, then across consecutive segments of the same text; returns how many repetitions went."""
    removed = 0
    collapsed = []
    for segment in segments:
        text, count = collapse_text(segment["text"], max_repeats)
        removed += count
        collapsed.append(Segment(**{**segment, "text": text}) if count else segment)
    kept: list[Segment] = []
    index = 0
    while index < len(collapsed):
        words = _words(collapsed[index]["text"])
        end = index + 1
        while words and end < len(collapsed) and _words(collapsed[end]["text"]) == words:
            end += 1
        if end - index > max_repeats:
            kept.append(collapsed[index])
            removed += end - index - 1
        else:
            kept.extend(collapsed[index:end])
        index = end
    return kept, removed


def collapse_text(text: str, max_repeats: int) -> tuple[str, int]:
    """`text` with each phrase repeated more than `max_repeats` times in a row said once, and how
    many repetitions were removed. Words compare without case and punctuation; the shortest
    repeating phrase at each place wins ("ha ha ha ha ha" is "ha"; "thank you. thank you. ..."
    is "thank you.")."""
    words = text.split()
    keys = [_PUNCTUATION.sub("", w.lower()) for w in words]
    out: list[str] = []
    removed = 0
    index = 0
    while index < len(words):
        length, run = _repeat_at(keys, index, max_repeats)
        if length:
            out.extend(words[index:index + length])
            removed += run - 1
            index += length * run
        else:
            out.append(words[index])
            index += 1
    if not removed:
        return text, 0
    leading = " " if text.startswith(" ") else ""
    return leading + " ".join(out), removed


def _repeat_at(keys: list[str], index: int, max_repeats: int) -> tuple[int, int]:
    """The shortest phrase starting at `index` that repeats more than `max_repeats` times in a
    row, and how many times it does; (0, 0) when none does."""
    longest = (len(keys) - index) // (max_repeats + 1)
    for length in range(1, longest + 1):
        phrase = keys[index:index + length]
        if not any(phrase):
            continue
        run = 1
        while keys[index + run * length: index + (run + 1) * length] == phrase:
            run += 1
        if run > max_repeats:
            return length, run
    return 0, 0


def _words(text: str) -> list[str]:
    return [key for key in (_PUNCTUATION.sub("", w.lower()) for w in text.split()) if key]
