"""What whisperx is loaded with: the environment the libraries read at import, the arguments of
`whisperx.load_model` for a model's settings, the decoding options, and pyannote's telemetry off.

Public so that bench/'s plain whisperx loop and the doctor load exactly what the engine loads
(whisperx_engine.py), instead of a hand copy that drifts.
"""

from __future__ import annotations

import os
from typing import Any

from ..config import Config
from .base import EngineSettings


def keep_libraries_offline_and_private() -> None:
    """Environment the libraries read at import: no telemetry, no tokenizer thread pools, and
    models downloaded over plain HTTP rather than Xet storage (hf_xet is installed, as a
    dependency of huggingface_hub): HTTP is the path the tests run against a local hub, the one
    that resumes a part with a Range request and grows the `.incomplete` file the progress events
    read, and the one every hub mirror serves. HF_HUB_DISABLE_XET=0 set by the user is kept."""
    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")


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


def disable_pyannote_telemetry() -> None:
    try:
        from pyannote.audio.telemetry import set_telemetry_metrics
    except ImportError:
        return
    set_telemetry_metrics(False)
