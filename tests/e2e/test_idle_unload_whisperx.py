"""The idle unload with the real WhisperX engine (bundled tiny.en, CPU): unloading gives memory
back, and the reloaded models transcribe exactly as before, with progress figures on the way."""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.support.corpus import clip, word_error_rate
from tests.support.models import bundled_tiny_en
from transcribed.config import Config, Model
from transcribed.consumer.residency import Residency
from transcribed.engine.base import Request
from transcribed.engine.hardware import Hardware, choose
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.operations.memory import rss_bytes
from transcribed.operations.stats import Stats
from transcribed.transcription.audio import decode

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

ENGLISH = "librispeech/2412-153948-0000.flac"


def test_unloaded_tiny_en_gives_memory_back_and_transcribes_the_same_after_the_reload() -> None:
    """Load, transcribe, unload (the RSS falls), reload (seconds), transcribe again: same text."""
    config = dataclasses.replace(Config(), model=Model(name="tiny.en", idle_unload_seconds=1.0))
    settings = choose(config.model, Hardware(cpu_count=2), bundled_tiny_en(), "bundled")
    engine = WhisperXEngine(config, settings)
    engine.load()
    stats = Stats()
    stats.model_loaded("tiny.en", "cpu", 0.0, settings.batch_size)
    stats.running()
    residency = Residency(config, engine, stats)
    samples = decode(clip(ENGLISH).path).samples
    figures: list[float] = []

    def transcribe() -> str:
        result = engine.transcribe(samples, Request(language="en", file="a.flac"), 4, figures.append)
        return " ".join(segment["text"].strip() for segment in result["segments"])

    before = transcribe()
    loaded_rss = rss_bytes()
    residency.unload()
    unloaded_rss = rss_bytes()
    beats: list[float] = []
    started = time.monotonic()
    seconds = residency.ensure_loaded(lambda: beats.append(time.monotonic()), beat_every=0.05)
    reload_wall = time.monotonic() - started
    after = transcribe()

    assert loaded_rss is not None and unloaded_rss is not None
    assert unloaded_rss < loaded_rss - 20 * 2**20, (loaded_rss, unloaded_rss)  # tiny.en's weights and more
    # The daemon rounds its figure to the millisecond: 0.8299 s of wall time is logged as 0.830.
    assert seconds is not None and 0 < seconds <= reload_wall + 0.0005 and reload_wall < 60
    assert after == before and word_error_rate(clip(ENGLISH).reference, after, "en") < 0.25
    assert figures.count(100.0) == 2, f"each transcription reports up to 100 %: {figures}"
    assert beats or seconds < 0.05, "the consumer beats while the models load again"
    assert stats.state == "running" and residency.resident
