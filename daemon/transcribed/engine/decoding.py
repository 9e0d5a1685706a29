"""Batched Whisper decoding of speech chunks, as whisperx does it, plus what whisperx leaves out.

whisperx's `FasterWhisperPipeline` decodes each chunk once (`WhisperModel.generate_segment_batched`,
whisperx/asr.py): it never reads the thresholds its `asr_options` carry (`no_speech_threshold`,
`log_prob_threshold`, `compression_ratio_threshold`, `condition_on_previous_text`, the
temperatures), and it returns only the text and the average log-probability of each chunk, no
no-speech probability. This module makes the same CTranslate2 call, with the same arguments, so
its text is whisperx's to the token, and asks CTranslate2 for the no-speech probability too
(`return_no_speech_prob`: read from the first decoding step, it does not change the search). On
top, as faster-whisper's sequential `transcribe` does:

- `temperature_fallback`: a chunk whose text compresses more than `compression_ratio_threshold`
  (a loop) or whose average log-probability is below `log_prob_threshold` is decoded again by
  sampling at each further temperature, unless it is silence by the no-speech rule; the first
  passing result is kept, else the best;
- `condition_on_previous_text`: each chunk is prompted with the text before it (the chunks of a
  file are then decoded one at a time, in order).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.schema import Model

#: A decode at or above this temperature does not prompt the next chunk (faster-whisper's
#: `prompt_reset_on_temperature`).
PROMPT_RESET_TEMPERATURE = 0.5
#: Windows per CTranslate2 call on the CPU, by work: a window's result does not depend on the
#: others in its call (the same encoder output and tokens; the recheck's alignment within a frame
#: or two), and a batch's attention matrices and beams outgrow the caches. bench/ct2_cpu.py,
#: ms per window at 1/2/4 per call: tiny.en encode 170/181/227, decode 174/148/175, align
#: 47/56/69; base encode 382/402/465, decode 348/370/413, align 62/77/82 (docs/performance.md).
#: On a GPU a batch is one call.
CPU_WINDOWS_PER_CALL = {"encode": 1, "decode": 2, "align": 1}


@dataclass(frozen=True)
class Thresholds:
    """Whisper's decoding rules for one job (the `model` keys, or a route's, or a sidecar's);
    the defaults are the config's, declared once there."""

    no_speech_threshold: float = Model.no_speech_threshold
    log_prob_threshold: float = Model.log_prob_threshold
    compression_ratio_threshold: float = Model.compression_ratio_threshold
    temperature_fallback: bool = Model.temperature_fallback
    condition_on_previous_text: bool = Model.condition_on_previous_text


@dataclass(frozen=True)
class Decoded:
    """One chunk's text and the figures Whisper's rules read."""

    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float = 0.0

    def is_silence(self, rules: Thresholds) -> bool:
        """Whisper's no-speech rule: the no-speech token likely and the text unlikely."""
        return (self.no_speech_prob > rules.no_speech_threshold
                and self.avg_logprob < rules.log_prob_threshold)

    def needs_fallback(self, rules: Thresholds) -> bool:
        if self.is_silence(rules):
            return False
        return (self.compression_ratio > rules.compression_ratio_threshold
                or self.avg_logprob < rules.log_prob_threshold)


def compression_ratio(text: str) -> float:
    """How much zlib shrinks the text: a looped phrase compresses far more than speech does."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class ChunkDecoder:
    """Decodes mel features of 30 s windows with a whisperx pipeline's model, tokenizer and options."""

    def __init__(self, pipe: Any, rules: Thresholds) -> None:
        self.model, self.tokenizer, self.options = pipe.model, pipe.tokenizer, pipe.options
        self.rules = rules

    def features(self, audio: np.ndarray, pipe: Any) -> np.ndarray:
        """Log-mel features of one chunk, padded to 30 s (whisperx's own `preprocess`)."""
        return np.asarray(pipe.preprocess({"inputs": audio})["inputs"], dtype=np.float32)

    def decode(self, features: np.ndarray, previous: Sequence[Sequence[int]] | None = None) -> list[Decoded]:
        """Decode a batch of chunks (features: batch x mels x frames); `previous`: each chunk's
        earlier text tokens to prompt with (condition_on_previous_text), else the job's prompt."""
        prompts = [self._prompt(previous[i] if previous else ()) for i in range(len(features))]
        return self._decode(features, prompts, self._encoded)

    def _encoded(self, features: np.ndarray) -> Any:
        """The encoder's output as the model takes it: faster-whisper's `encode` on a GPU (kept
        there), `encoder_output`'s window by window on the CPU."""
        import ctranslate2

        if self.model.model.device != "cpu":
            return self.model.encode(features)
        return ctranslate2.StorageView.from_array(encoder_output(self.model, features))

    def encode(self, features: np.ndarray) -> np.ndarray:
        """The encoder's output for a batch of windows (batch x frames x width), on the host."""
        return encoder_output(self.model, features)

    def decode_encoded(self, encoded: np.ndarray) -> list[Decoded]:
        """Decode a batch of chunks from encoder output (`encode`'s, or parts of it), as `decode`."""
        import ctranslate2

        prompts = [self._prompt(()) for _ in range(len(encoded))]
        return self._decode(encoded, prompts,
                            lambda batch: ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)))

    def _decode(self, inputs: np.ndarray, prompts: list[list[int]],
                to_model: Callable[[np.ndarray], Any]) -> list[Decoded]:
        results = self._generate_in_calls(inputs, prompts, 0.0, to_model)
        if not self.rules.temperature_fallback:
            return results
        return self._fall_back(inputs, prompts, results, to_model)

    def _generate_in_calls(self, inputs: np.ndarray, prompts: list[list[int]], temperature: float,
                           to_model: Callable[[np.ndarray], Any]) -> list[Decoded]:
        """`_generate` over the batch, in `calls`."""
        return [result for part in calls(self.model, "decode", len(inputs))
                for result in self._generate(to_model(inputs[part]), prompts[part], temperature)]

    def _fall_back(self, inputs: np.ndarray, prompts: list[list[int]], first: list[Decoded],
                   to_model: Callable[[np.ndarray], Any]) -> list[Decoded]:
        """faster-whisper's rule: decode the failing chunks hotter; keep the first that passes,
        else the most probable of those under the compression limit (else of all)."""
        tries = [[result] for result in first]
        failing = [i for i, r in enumerate(first) if r.needs_fallback(self.rules)]
        for temperature in tuple(self.options.temperatures)[1:]:
            if not failing:
                break
            again = self._generate_in_calls(inputs[failing], [prompts[i] for i in failing],
                                            float(temperature), to_model)
            for i, result in zip(failing, again, strict=True):
                tries[i].append(result)
            failing = [i for i, r in zip(failing, again, strict=True) if r.needs_fallback(self.rules)]
        return [_best(chunk_tries, self.rules) for chunk_tries in tries]

    def _prompt(self, previous: Sequence[int]) -> list[int]:
        tokens: list[int] = []
        if self.options.initial_prompt is not None:
            tokens.extend(self.tokenizer.encode(" " + self.options.initial_prompt.strip()))
        tokens.extend(previous)
        prompt: list[int] = self.model.get_prompt(
            self.tokenizer, tokens, without_timestamps=self.options.without_timestamps,
            prefix=self.options.prefix, hotwords=self.options.hotwords)
        return prompt

    def _generate(self, inputs: Any, prompts: list[list[int]], temperature: float) -> list[Decoded]:
        """whisperx's `generate_segment_batched` call (the same arguments; `inputs` encoded, or
        the encoder's output), with the no-speech probability asked for; at a temperature above
        0, sampling as faster-whisper does."""
        options = self.options
        if temperature > 0:
            search = {"beam_size": 1, "num_hypotheses": options.best_of,
                      "sampling_topk": 0, "sampling_temperature": temperature}
        else:
            search = {"beam_size": options.beam_size, "patience": options.patience}
        results = self.model.model.generate(
            inputs, prompts, length_penalty=options.length_penalty,
            max_length=self.model.max_length, suppress_blank=options.suppress_blank,
            suppress_tokens=options.suppress_tokens, no_repeat_ngram_size=options.no_repeat_ngram_size,
            repetition_penalty=options.repetition_penalty, return_scores=True,
            return_no_speech_prob=True, **search)
        decoded = []
        for result in results:
            tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
            length = len(result.sequences_ids[0])
            logprob = result.scores[0] * (length ** options.length_penalty) / (length + 1)
            text = self.tokenizer.tokenizer.decode_batch([tokens])[0]
            decoded.append(Decoded(text, tuple(tokens), float(logprob), float(result.no_speech_prob),
                                   round(compression_ratio(text), 3), temperature))
        return decoded


def _best(tries: list[Decoded], rules: Thresholds) -> Decoded:
    passing = [t for t in tries if not t.needs_fallback(rules)]
    if passing:
        return passing[0]
    compact = [t for t in tries if t.compression_ratio <= rules.compression_ratio_threshold]
    return max(compact or tries, key=lambda t: t.avg_logprob)


def calls(model: Any, work: str, count: int) -> Iterator[slice]:
    """The slices of `count` windows that faster-whisper's `model` gets one call each for `work`
    (encode, decode, align): CPU_WINDOWS_PER_CALL windows on the CPU, all of them elsewhere."""
    size = CPU_WINDOWS_PER_CALL[work] if model.model.device == "cpu" else max(1, count)
    for start in range(0, count, size):
        yield slice(start, start + size)


def encoder_output(model: Any, features: np.ndarray) -> np.ndarray:
    """faster-whisper's `model`'s encoder output for a batch of windows (batch x mels x frames ->
    batch x frames x width), copied to the host: it depends on the model alone, not on a job.
    On the CPU one window at a time (`calls`; the same numbers, tested)."""
    import ctranslate2

    outputs = [np.asarray(model.model.encode(ctranslate2.StorageView.from_array(
        np.ascontiguousarray(features[part], dtype=np.float32)), to_cpu=True))
        for part in calls(model, "encode", len(features))]
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


def batches(count: int, size: int) -> Iterator[range]:
    """Index ranges of `size` (at least 1) covering `count` items."""
    size = max(1, size)
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


def decode_in_order(decoder: ChunkDecoder, features_of: Callable[[int], np.ndarray],
                    owners: list[int], done: Callable[[int, Decoded], None]) -> None:
    """condition_on_previous_text: chunk by chunk, each prompted with its own file's earlier text
    (`owners[i]`: the file chunk i belongs to), reset after a hot decode as faster-whisper does."""
    history: dict[int, list[int]] = {}
    for index, owner in enumerate(owners):
        previous = history.setdefault(owner, [])
        result = decoder.decode(features_of(index)[None], [previous])[0]
        if result.temperature >= PROMPT_RESET_TEMPERATURE:
            previous.clear()
        else:
            previous.extend(result.tokens)
        done(index, result)
