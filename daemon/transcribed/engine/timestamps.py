"""Whisper decoding WITH timestamp tokens, for windows that hold several files' speech (packing.py).

whisperx decodes without timestamps (its prompt ends in <|notimestamps|>), so one chunk is one
segment. A packed window needs Whisper's own timestamps to be split back per file: the same
CTranslate2 call as engine/decoding.py's (the same search options), with a prompt that asks for
timestamps, as faster-whisper's sequential `transcribe` does. The first timestamp is held to the
first second (`max_initial_timestamp_index`, CTranslate2's default of 50 steps), where the first
file's speech starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .decoding import ChunkDecoder


@dataclass(frozen=True)
class TimedDecode:
    """One window's tokens, timestamps included (ids from `timestamp_begin` on), end token out."""

    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float


def decode_timed(decoder: ChunkDecoder, features: np.ndarray) -> list[TimedDecode]:
    """Decode a batch of windows (batch x mels x frames) greedily or by beam, as whisperx's
    options say, with timestamps; no temperature fallback (a packed file that needs one is not
    packed: the worker leaves such requests alone)."""
    options, model, tokenizer = decoder.options, decoder.model, decoder.tokenizer
    prompt = _timestamp_prompt(decoder)
    results = model.model.generate(
        model.encode(features), [prompt] * len(features), length_penalty=options.length_penalty,
        max_length=model.max_length, suppress_blank=options.suppress_blank,
        suppress_tokens=options.suppress_tokens, no_repeat_ngram_size=options.no_repeat_ngram_size,
        repetition_penalty=options.repetition_penalty, return_scores=True, return_no_speech_prob=True,
        beam_size=options.beam_size, patience=options.patience)
    decoded = []
    for result in results:
        sequence = result.sequences_ids[0]
        tokens = tuple(t for t in sequence if t != tokenizer.eot)
        length = len(sequence)
        logprob = result.scores[0] * (length ** options.length_penalty) / (length + 1)
        decoded.append(TimedDecode(tokens, float(logprob), float(result.no_speech_prob)))
    return decoded


def _timestamp_prompt(decoder: ChunkDecoder) -> list[int]:
    """The job's prompt (initial prompt, hotwords, prefix) without <|notimestamps|>."""
    options, tokenizer = decoder.options, decoder.tokenizer
    previous: list[int] = []
    if options.initial_prompt is not None:
        previous = list(tokenizer.encode(" " + options.initial_prompt.strip()))
    prompt: list[int] = decoder.model.get_prompt(
        tokenizer, previous, without_timestamps=False, prefix=options.prefix, hotwords=options.hotwords)
    return prompt


def text_of(tokenizer: Any, tokens: tuple[int, ...]) -> str:
    """Text tokens as text, as engine/decoding.py decodes a chunk's (the same tokenizer call)."""
    text: str = tokenizer.tokenizer.decode_batch([list(tokens)])[0]
    return text
