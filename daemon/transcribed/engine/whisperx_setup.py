"""What whisperx is loaded with: the arguments of `whisperx.load_model` for a model's settings and
the decoding options (the environment the libraries read at import is environment.py).

Public so that bench/'s plain whisperx loop and the doctor load exactly what the engine loads
(whisperx_engine.py), instead of a hand copy that drifts.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from .base import EngineSettings


def load_model_arguments(config: Config, settings: EngineSettings) -> dict[str, Any]:
    """The keyword arguments of `whisperx.load_model` for these settings: exactly what
    `WhisperXEngine.load` passes, public so that bench/'s plain whisperx loop loads the same
    pipeline instead of a hand copy that drifts. The language is the configured one, or "en"
    for a model whose name says it is English-only (a local directory's name does not)."""
    language = "en" if settings.model.endswith(".en") else config.model.language
    return {
        "whisper_arch": settings.model_path,
        "device": settings.device,
        "device_index": settings.device_index,
        "compute_type": settings.compute_type,
        "asr_options": {"beam_size": config.model.beam_size, **decoding_options(config)},
        "vad_method": "pyannote",
        "vad_options": {"vad_onset": config.vad.onset, "vad_offset": config.vad.offset},
        "language": language,
        "threads": settings.cpu_threads,
    }


def decoding_options(config: Config) -> dict[str, Any]:
    """The `model` section's decoding thresholds as whisperx's `asr_options` (they sit in the
    pipeline's options; whisperx's batched decoding never reads them: engine/decoding.py does)."""
    return {key: getattr(config.model, key) for key in (
        "no_speech_threshold", "log_prob_threshold", "compression_ratio_threshold",
        "condition_on_previous_text")}
