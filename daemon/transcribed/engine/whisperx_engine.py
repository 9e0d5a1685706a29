"""The real engine: a resident WhisperX pipeline (CTranslate2 Whisper + pyannote VAD).

All torch and whisperx imports happen here, lazily, so the CLI's other commands and the fast
tests stay fast. Verified traps handled here (see ../shared/WHISPERX.md):
- a local model directory does not end in ".en", so an English-only model gets language "en"
  explicitly (else whisperx tries language detection on it and fails);
- after a failed job the pipeline keeps the language it detected: it is reset after each call;
- pyannote 4 sends telemetry on every VAD call unless PYANNOTE_METRICS_ENABLED=false, which is
  set before pyannote is first imported.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import numpy as np

from .. import logs
from ..config import Config
from .base import EngineSettings, Progress, Request

log = logs.get_logger()


def keep_libraries_offline_and_private() -> None:
    """Environment the libraries read at import: no telemetry, no tokenizer thread pools."""
    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class WhisperXEngine:
    """WhisperX's FasterWhisperPipeline, loaded once and used serially."""

    def __init__(self, config: Config, settings: EngineSettings) -> None:
        self.config = config
        self.settings = settings
        self._pipe: Any = None
        self.multilingual = True

    def load(self) -> None:
        keep_libraries_offline_and_private()
        import torch
        import whisperx
        import whisperx.asr  # noqa: F401 - imports pyannote and lightning now, so that...

        logs.quiet_libraries()  # ...the handlers lightning attaches at import are removed here
        _disable_pyannote_telemetry()
        torch.set_num_threads(self.settings.cpu_threads)
        with logs.prints_as_logs("whisperx"):
            self._pipe = whisperx.load_model(
                self.settings.model_path,
                self.settings.device,
                device_index=self.settings.device_index,
                compute_type=self.settings.compute_type,
                asr_options={"beam_size": self.config.model.beam_size},
                vad_method="pyannote",
                vad_options={"vad_onset": self.config.vad.onset, "vad_offset": self.config.vad.offset},
                language=self._fixed_language(),
                threads=self.settings.cpu_threads,
            )
        self.multilingual = bool(self._pipe.model.model.is_multilingual)
        if not self.multilingual and self._pipe.preset_language != "en":
            self._pipe.preset_language = "en"  # an English-only model never needs detection
        logs.quiet_libraries()

    def _fixed_language(self) -> str | None:
        """The configured language, or "en" for a model whose name says it is English-only."""
        if self.settings.model.endswith(".en"):
            return "en"
        return self.config.model.language

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress) -> dict[str, Any]:
        language = request.language if self.multilingual else "en"
        try:
            with logs.prints_as_logs("whisperx"):
                return self._pipe.transcribe(
                    samples, batch_size=batch_size, language=language, task=request.task,
                    chunk_size=int(self.config.vad.chunk_seconds), progress_callback=progress)
        finally:
            self._forget_detected_language()

    def _forget_detected_language(self) -> None:
        """whisperx resets the tokenizer only after a successful call; a failed one leaves the
        detected language behind for the next file. Reset it whatever happened."""
        if self._pipe.preset_language is None:
            self._pipe.tokenizer = None

    def free_memory(self) -> int | None:
        """gc, torch's cache, and CTranslate2's own cache (which empty_cache does not touch)."""
        gc.collect()
        if self.settings.device != "cuda":
            return None
        import torch

        ct2 = self._pipe.model.model
        ct2.unload_model()  # clears CTranslate2's CUDA allocator cache...
        ct2.load_model()  # ...and reloads the weights (fast)
        torch.cuda.empty_cache()
        free, _total = torch.cuda.mem_get_info(self.settings.device_index)
        return int(free)

    def on_cpu(self) -> WhisperXEngine:
        cpu_settings = EngineSettings(
            self.settings.model, self.settings.model_path, self.settings.model_source, "cpu", 0,
            "int8", 1, self.settings.cpu_threads, {"device": "out-of-memory fallback"})
        engine = WhisperXEngine(self.config, cpu_settings)
        engine.load()
        return engine

    def close(self) -> None:
        self._pipe = None
        gc.collect()


def _disable_pyannote_telemetry() -> None:
    try:
        from pyannote.audio.telemetry import set_telemetry_metrics
    except ImportError:
        return
    set_telemetry_metrics(False)
