"""The engine's own batched decoding (engine/decoding.py) against the real models on the CPU:
whisperx's text by default, the temperature fallback, the previous-text prompt, and language
detection limited to `model.languages`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import bait
from tests.support.corpus import clip, word_error_rate
from tests.support.models import bundled_tiny_en, multilingual_base
from transcribed.config import Config, Model
from transcribed.engine import decoding
from transcribed.engine.base import Request
from transcribed.engine.decoding import ChunkDecoder, Thresholds, encoder_output
from transcribed.engine.hardware import Hardware, choose
from transcribed.engine.recheck import aligned_words
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.transcription.audio import decode

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

ENGLISH = "librispeech/2412-153948-0000.flac"
RUSSIAN = "multilingual/ru_deepspeech_sample.wav"
#: Three recordings one after another, 2 s of silence between: over 30 s, so several chunks.
JOINED = ["librispeech/1088-134315-0000.wav", ENGLISH, "ljspeech/LJ001-0001.flac"]


def _engine(model_dir: str, **model: Any) -> WhisperXEngine:
    config = dataclasses.replace(Config(), model=Model(name=model_dir, **model))
    settings = choose(config.model, Hardware(cpu_count=2), bundled_tiny_en(), "local")
    engine = WhisperXEngine(config, dataclasses.replace(settings, model_path=model_dir))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def tiny() -> WhisperXEngine:
    return _engine(str(bundled_tiny_en()))


def _run(engine: WhisperXEngine, samples: Any, decoding: Thresholds, language: str | None = "en") -> dict:
    return dict(engine.transcribe(samples, Request(language=language, decoding=decoding), 4, lambda _p: None))


def _text(result: dict) -> str:
    return " ".join(s["text"].strip() for s in result["segments"]).strip()


def test_the_default_decoding_is_whisperxs_with_the_no_speech_probability(tiny: WhisperXEngine) -> None:
    """Word for word what whisperx's own transcribe says, plus figures whisperx does not keep."""
    samples = decode(clip(ENGLISH).path).samples
    ours = _run(tiny, samples, Thresholds())
    theirs = tiny.pipeline.transcribe(samples, batch_size=4, language="en")
    assert [s["text"] for s in ours["segments"]] == [s["text"] for s in theirs["segments"]]
    for segment in ours["segments"]:
        assert 0.0 <= segment["no_speech_prob"] < 0.6 and segment["compression_ratio"] > 0
        assert "temperature" not in segment


class _Counting:
    """The real CTranslate2 model, with the temperature of each `generate` call noted."""

    def __init__(self, real: Any) -> None:
        self._real, self.temperatures = real, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.temperatures.append(kwargs.get("sampling_temperature", 0.0) if kwargs.get("beam_size") == 1 else 0.0)
        return self._real.generate(*args, **kwargs)


def test_windows_encoded_one_at_a_time_on_the_cpu_are_the_batchs_numbers(tiny: WhisperXEngine) -> None:
    """encoder_output encodes window by window on the CPU (faster there): the same numbers as
    one call for the whole batch, so the text cannot change with it."""
    import ctranslate2

    samples = np.concatenate([decode(clip(name).path).samples for name in JOINED])
    pipe = tiny.pipeline
    windows = [samples[start:start + 480_000] for start in (0, 160_000, 320_000)]
    features = np.stack([np.asarray(pipe.preprocess({"inputs": w})["inputs"], dtype=np.float32)
                         for w in windows])
    one_call = np.asarray(pipe.model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    assert pipe.model.model.device == "cpu"
    assert np.array_equal(encoder_output(pipe.model, features), one_call)


def _four_windows(tiny: WhisperXEngine) -> tuple[ChunkDecoder, np.ndarray]:
    """A decoder for English on tiny.en's pipeline (its tokenizer as a job sets it), and four
    overlapping 30 s windows of speech encoded."""
    from faster_whisper.tokenizer import Tokenizer

    samples = np.concatenate([decode(clip(name).path).samples for name in JOINED])
    pipe = tiny.pipeline
    pipe.tokenizer = Tokenizer(pipe.model.hf_tokenizer, False, task="transcribe", language="en")
    decoder = ChunkDecoder(pipe, Thresholds())
    windows = [samples[start:start + 480_000] for start in (0, 120_000, 240_000, 360_000)]
    return decoder, decoder.encode(np.stack([decoder.features(w, pipe) for w in windows]))


def test_windows_decoded_two_to_a_call_on_the_cpu_are_the_batchs_tokens(
        tiny: WhisperXEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of four is decoded in two calls of two on the CPU (faster there): the tokens and
    figures of one call for all four."""
    decoder, encoded = _four_windows(tiny)
    model = tiny.pipeline.model
    counting = model.model = _Counting(model.model)
    try:
        in_pairs = decoder.decode_encoded(encoded)
        pairs_calls = len(counting.temperatures)
        monkeypatch.setitem(decoding.CPU_WINDOWS_PER_CALL, "decode", 4)
        in_one = decoder.decode_encoded(encoded)
    finally:
        model.model = counting._real
    assert pairs_calls == 2 and len(counting.temperatures) == 3
    assert in_pairs == in_one and all(out.tokens for out in in_one)


def test_words_aligned_one_window_to_a_call_start_where_the_batchs_do(
        tiny: WhisperXEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recheck's alignment, one window per call on the CPU: the same words, each starting
    within 0.1 s of where one call for the batch puts it (its token padding moves a frame or two),
    far inside the 2 s of unworded speech the recheck looks for."""
    decoder, encoded = _four_windows(tiny)
    outs = decoder.decode_encoded(encoded)
    seconds, wanted = [30.0] * 4, [True] * 4
    one_by_one = aligned_words(decoder, encoded, outs, seconds, wanted)
    monkeypatch.setitem(decoding.CPU_WINDOWS_PER_CALL, "align", 4)
    batched = aligned_words(decoder, encoded, outs, seconds, wanted)
    for mine, theirs in zip(one_by_one, batched, strict=True):
        assert [word for word, _at in mine] == [word for word, _at in theirs] and mine
        assert max(abs(a - b) for (_w, a), (_v, b) in zip(mine, theirs, strict=True)) <= 0.1


def test_a_failing_chunk_is_decoded_again_hotter(tiny: WhisperXEngine, tmp_path: Path) -> None:
    """temperature_fallback with a compression limit every text exceeds: the chunk is decoded at
    every temperature (0, then 0.2 ... 1.0) and the most probable try kept; a chunk that passes
    is decoded once; without the fallback, once whatever its figures."""
    samples = decode(bait.looped_phrase(tmp_path / "loop.wav", times=3)).samples
    model = tiny.pipeline.model
    counting = model.model = _Counting(model.model)
    try:
        failing = _run(tiny, samples, Thresholds(temperature_fallback=True, compression_ratio_threshold=0.1))
        hot, counting.temperatures = counting.temperatures, []
        _run(tiny, samples, Thresholds(temperature_fallback=True))
        passing, counting.temperatures = counting.temperatures, []
        _run(tiny, samples, Thresholds(temperature_fallback=False, compression_ratio_threshold=0.1))
        off = counting.temperatures
    finally:
        model.model = counting._real
    chunks = len(failing["segments"])
    assert hot == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and chunks == 1
    assert passing == [0.0] and off == [0.0]
    assert word_error_rate(" ".join([bait.LOOPED_PHRASE] * 3), _text(failing), "en") < 0.5, _text(failing)


def test_conditioning_on_previous_text_decodes_chunk_after_chunk(tiny: WhisperXEngine) -> None:
    """Several chunks, each prompted with the text before it: still an accurate transcript."""
    gap = np.zeros(2 * 16_000, dtype=np.float32)
    samples = np.concatenate([part for name in JOINED for part in (decode(clip(name).path).samples, gap)])
    reference = " ".join(clip(name).reference for name in JOINED)
    result = _run(tiny, samples, Thresholds(condition_on_previous_text=True))
    assert len(result["segments"]) >= 2
    assert word_error_rate(reference, _text(result), "en") < 0.25, _text(result)


def test_detection_picks_the_most_probable_allowed_language() -> None:
    """Russian speech, model.languages [en, de]: never Russian, one of the two allowed; without
    the list, Russian."""
    samples = decode(clip(RUSSIAN).path).samples
    free = _engine(str(multilingual_base()), language=None)
    speech = free.find_speech(samples)
    assert free.language_of(samples, speech, Request())[0] == "ru"
    limited = _engine(str(multilingual_base()), language=None, languages=("en", "de"))
    language, probability = limited.language_of(samples, speech, Request())
    assert language in ("en", "de") and probability is not None and 0 <= probability < 1
