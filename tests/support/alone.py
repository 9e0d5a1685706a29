"""What the real WhisperX engine says for a clip on its own, one file at a time with the daemon's
default settings: the reference the e2e tests of shared batches and of files prepared ahead
compare each file's text with."""

from __future__ import annotations

from pathlib import Path

from tests.support.corpus import clip
from transcribed.config import Config
from transcribed.engine.base import Request
from transcribed.engine.hardware import Hardware, choose
from transcribed.engine.models import bundled_model_path
from transcribed.engine.whisperx_engine import WhisperXEngine
from transcribed.transcription.audio import decode

#: Five short English clips from ../shared/corpus.
SHORT_CLIPS = ["librispeech/1988-24833-0000.flac", "librispeech/3752-4944-0000.flac",
               "ljspeech/LJ001-0004.flac", "misc_en/cmu_arctic_a0024.wav", "cmu_sphinx/goforward.wav"]


def texts_alone(names: list[str]) -> dict[str, str]:
    """Each clip's text from the engine one file at a time, with the daemon's settings."""
    return {stem: " ".join(s["text"].strip() for s in segments)
            for stem, segments in segments_alone(names).items()}


def segments_alone(names: list[str]) -> dict[str, list[dict]]:
    """Each clip's segments from the engine one file at a time, with the daemon's settings."""
    config = Config()
    engine = WhisperXEngine(config, choose(config.model, Hardware(cpu_count=2),
                                           bundled_model_path(), "bundled"))
    engine.load()
    segments = {}
    for name in names:
        result = engine.transcribe(decode(clip(name).path).samples, Request(language="en"), 4,
                                   lambda _p: None)
        segments[Path(name).stem] = list(result["segments"])
    return segments
