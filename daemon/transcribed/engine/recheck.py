"""Speech a long recording's decode left out, found and decoded again (`vad.recheck_seconds`).

Whisper decoded as whisperx does it (one pass per 30 s window, without timestamps) sometimes
ends a window early or skips a sentence inside it: at a pause before a new voice, after a short
phrase, on quiet speech. The words are simply missing (measured on long recordings built from the
corpus: docs/performance.md). After a batch is decoded, its tokens are aligned to each window's
audio with CTranslate2's cross-attention alignment (`Whisper.align` on the encoder output already
computed: one teacher-forced decoder pass, what faster-whisper's word timestamps use), and the
VAD's speech that no word starts in is found: at least `recheck_seconds` of it between two word
starts (a word's own first `WORD_OWN` s aside), or before the first, or after the last. Each such
region is decoded again on its own (its own window) and checked the same way, down to `DEPTH`
levels; its text goes in at that place, and the chunk's words before and after it become
segments of their own.

The pure parts (`missed`, `words_between`, `assemble`) need no model; `recheck` drives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .decoding import ChunkDecoder, Decoded, batches, calls

#: whisperx works on 16 kHz mono.
SAMPLE_RATE = 16_000
#: The first seconds after a word's start are that word's own (a long word, a slow number).
WORD_OWN = 0.8
#: A region decoded again starts this much before its first speech (the VAD's edge is soft).
LEAD_SECONDS = 0.2
#: Levels of checking: a region decoded again is checked once more, then taken as it is.
DEPTH = 2
#: The encoder's output frames per second (the alignment's time unit).
FRAMES_PER_SECOND = 50
#: Log-mel frames per second, and per 30 s window (the alignment's length limit).
MEL_FRAMES_PER_SECOND = 100
WINDOW_MEL_FRAMES = 3000

Stretches = Sequence[tuple[float, float]]
#: A decoded word and when it starts, in seconds from its window's start.
Word = tuple[str, float]


@dataclass(frozen=True)
class Part:
    """A piece of a chunk's transcript: its time (seconds in the file) and its decode."""

    start: float
    end: float
    out: Decoded


@dataclass(frozen=True)
class Region:
    """Speech no word starts in: after the first `after` words of its chunk, in file seconds."""

    after: int
    start: float
    end: float


def speech_between(stretches: Stretches, start: float, end: float) -> tuple[float, float | None]:
    """Seconds of VAD speech inside [start, end], and where the first of it begins."""
    total, first = 0.0, None
    for a, b in stretches:
        low, high = max(a, start), min(b, end)
        if high > low:
            total += high - low
            first = low if first is None else first
    return total, first


def missed(start: float, end: float, word_starts: Sequence[float], stretches: Stretches,
           gap: float) -> list[Region]:
    """Each stretch of at least `gap` s of VAD speech in the chunk [start, end] in which no word
    starts (`word_starts`: seconds from the chunk's start, in order). A chunk with no words is
    not judged here: Whisper found no speech in it at all, which its own rules decide."""
    if not word_starts or gap <= 0:
        return []
    marks = [start - WORD_OWN, *(start + at for at in word_starts), end]
    regions = []
    for after in range(len(marks) - 1):
        low, high = marks[after] + WORD_OWN, marks[after + 1]
        if high - low < gap:
            continue
        speech, first = speech_between(stretches, low, high)
        if speech >= gap and first is not None:
            regions.append(Region(after, max(start, first - LEAD_SECONDS), high))
    return regions


def words_between(out: Decoded, words: Sequence[Word], first: int, last: int) -> Decoded | None:
    """Words first..last-1 of a chunk's decode as a decode of their own (the chunk's figures
    kept: they describe the window the words came from); None when there are none."""
    text = "".join(word for word, _at in words[first:last]).strip()
    return replace(out, text=" " + text, tokens=()) if text else None


def assemble(start: float, end: float, out: Decoded, words: Sequence[Word], regions: Sequence[Region],
             again: Sequence[Sequence[Part]]) -> list[Part]:
    """A chunk's transcript as parts in time order: its own words up to each region, the region's
    text decoded again (`again[i]` for `regions[i]`), then its words after the last one."""
    if not regions:
        return [Part(start, end, out)]
    parts: list[Part] = []
    done, at = 0, start
    for region, redone in zip(regions, again, strict=True):
        before = words_between(out, words, done, region.after)
        if before is not None:
            parts.append(Part(at, region.start, before))
        parts += redone
        done, at = region.after, region.end
    rest = words_between(out, words, done, len(words))
    if rest is not None:
        parts.append(Part(at, end, rest))
    return parts


def aligned_words(decoder: ChunkDecoder, encoded: np.ndarray, outs: Sequence[Decoded],
                  seconds: Sequence[float], wanted: Sequence[bool]) -> list[list[Word]]:
    """Per chunk (those `wanted` with text), its words and when each starts, from one
    teacher-forced pass over the encoder output already computed (on the CPU one window per call:
    `calls`)."""
    import ctranslate2

    tokenizer = decoder.tokenizer
    rows = [i for i, out in enumerate(outs) if out.tokens and wanted[i]]
    words: list[list[Word]] = [[] for _ in outs]
    if not rows:
        return words
    frames = [max(1, min(WINDOW_MEL_FRAMES, round(seconds[i] * MEL_FRAMES_PER_SECOND))) for i in rows]
    results = []
    for part in calls(decoder.model, "align", len(rows)):
        chosen = rows[part]
        results += decoder.model.model.align(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[chosen])), tokenizer.sot_sequence,
            [list(outs[i].tokens) for i in chosen], frames[part])
    for i, result in zip(rows, results, strict=True):
        texts, pieces = tokenizer.split_to_word_tokens([*outs[i].tokens, tokenizer.eot])
        if len(pieces) <= 1:
            continue
        first_token = np.pad(np.cumsum([len(p) for p in pieces[:-1]]), (1, 0))[:-1]
        token_index = np.array([pair[0] for pair in result.alignments])
        time_index = np.array([pair[1] for pair in result.alignments])
        jumps = np.pad(np.diff(token_index), (1, 0), constant_values=1).astype(bool)
        starts = time_index[jumps][first_token] / FRAMES_PER_SECOND
        words[i] = [(text, float(at)) for text, at in zip(texts[:-1], starts, strict=True)]
    return words


@dataclass(frozen=True)
class Chunks:
    """A batch's chunks as the recheck sees them: each one's file samples, time in the file and
    VAD stretches (empty: not checked)."""

    sources: Sequence[np.ndarray]
    spans: Sequence[tuple[float, float]]
    stretches: Sequence[Stretches]


@dataclass(frozen=True)
class Batching:
    """How chunks are decoded: chunks per model call, and the recheck's gap (0: no recheck)."""

    batch_size: int
    recheck_seconds: float


@dataclass
class Tally:
    """What the recheck did over a job, for its log line: regions decoded again, their seconds."""

    regions: int = 0
    seconds: float = 0.0


def recheck(decoder: ChunkDecoder, pipe: object, chunks: Chunks, encoded: np.ndarray, outs: Sequence[Decoded],
            batching: Batching, tally: Tally, depth: int = DEPTH) -> list[list[Part]]:
    """Each chunk's transcript as parts, with the speech its decode missed decoded again."""
    seconds = [end - start for start, end in chunks.spans]
    words = aligned_words(decoder, encoded, outs, seconds, [bool(s) for s in chunks.stretches])
    redo: list[tuple[int, Region]] = [
        (i, region) for i, ((start, end), out) in enumerate(zip(chunks.spans, outs, strict=True))
        if out.tokens
        for region in missed(start, end, [at for _w, at in words[i]], chunks.stretches[i],
                             batching.recheck_seconds)]
    tally.regions += len(redo)
    tally.seconds += sum(region.end - region.start for _i, region in redo)
    again: list[list[Part]] = []
    for part in batches(len(redo), batching.batch_size):
        owners = [redo[j][0] for j in part]
        spans = [(redo[j][1].start, redo[j][1].end) for j in part]
        sub = Chunks([chunks.sources[i] for i in owners], spans, [chunks.stretches[i] for i in owners])
        features = np.stack([decoder.features(source[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)], pipe)
                             for source, (a, b) in zip(sub.sources, spans, strict=True)])
        enc = decoder.encode(features)
        first = decoder.decode_encoded(enc)
        if depth > 1:
            again += recheck(decoder, pipe, sub, enc, first, batching, tally, depth - 1)
        else:
            again += [[Part(a, b, out)] for (a, b), out in zip(spans, first, strict=True)]
    result = []
    for i, ((start, end), out) in enumerate(zip(chunks.spans, outs, strict=True)):
        mine = [j for j, (owner, _region) in enumerate(redo) if owner == i]
        result.append(assemble(start, end, out, words[i], [redo[j][1] for j in mine],
                               [again[j] for j in mine]))
    return result
