"""The real engine: a resident WhisperX pipeline (CTranslate2 Whisper + pyannote VAD).

All torch and whisperx imports happen here, lazily, so the CLI's other commands and the fast
tests stay fast. Verified traps handled here (see ../shared/WHISPERX.md):
- a local model directory does not end in ".en", so an English-only model gets language "en"
  explicitly (else whisperx tries language detection on it and fails);
- after a failed job the pipeline keeps the language it detected: it is reset after each call;
- pyannote 4 sends telemetry on every VAD call unless PYANNOTE_METRICS_ENABLED=false, which is
  set before pyannote is first imported.

Out of memory: the consumer (pipeline.py) halves the Whisper batch size and calls
`free_memory`. torch's empty_cache does not touch CTranslate2's own CUDA cache, so the
CTranslate2 model is unloaded and reloaded (fast). pyannote's VAD reports its own OOM as a
MemoryError naming its batch size (32): that batch size is halved here too, and doubled back
after a run of successes, like the Whisper one.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import numpy as np

from .. import logs
from ..config import Config
from ..errors import GpuLost
from .base import EngineSettings, Progress, Request
from .hardware import CPU_BATCH_SIZE
from .oom import BatchGovernor

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
        #: pyannote's segmentation batch size; set from the loaded VAD model.
        self.vad_batch: BatchGovernor | None = None

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
        segmentation = self._segmentation()
        if segmentation is not None:
            self.vad_batch = BatchGovernor(int(segmentation.batch_size), self.config.oom.probe_after_jobs)
        logs.quiet_libraries()

    def _segmentation(self) -> Any:
        """pyannote's segmentation Inference inside whisperx's VAD (None if whisperx changes shape)."""
        return getattr(getattr(self._pipe.vad_model, "vad_pipeline", None), "_segmentation", None)

    def _fixed_language(self) -> str | None:
        """The configured language, or "en" for a model whose name says it is English-only."""
        if self.settings.model.endswith(".en"):
            return "en"
        return self.config.model.language

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress) -> dict[str, Any]:
        language = request.language if self.multilingual else "en"
        self._apply_vad_batch()
        try:
            with logs.prints_as_logs("whisperx"):
                result: dict[str, Any] = self._pipe.transcribe(
                    samples, batch_size=batch_size, language=language, task=request.task,
                    chunk_size=int(self.config.vad.chunk_seconds), progress_callback=progress)
        except MemoryError:
            self._lower_vad_batch()
            raise
        finally:
            self._forget_detected_language()
        if self.vad_batch is not None:
            self.vad_batch.succeeded()
        return result

    def _apply_vad_batch(self) -> None:
        segmentation = self._segmentation()
        if self.vad_batch is not None and segmentation is not None:
            segmentation.batch_size = self.vad_batch.current

    def _lower_vad_batch(self) -> None:
        """pyannote re-raises a CUDA OOM as MemoryError("batch_size (32) is probably too large")."""
        if self.vad_batch is None:
            return
        old = self.vad_batch.current
        new = self.vad_batch.lower()
        log.warning("engine.vad_batch_lowered", old_batch_size=old, new_batch_size=new or old)

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
        try:
            ct2.unload_model()  # drops the weights and clears CTranslate2's CUDA allocator cache
            gc.collect()
            torch.cuda.empty_cache()
            ct2.load_model()  # the weights again (seconds at most: the OS file cache has them)
            free, _total = torch.cuda.mem_get_info(self.settings.device_index)
        except RuntimeError as exc:
            # Without its weights the engine cannot transcribe; a fresh process can.
            raise GpuLost(f"the model could not be reloaded onto the GPU after freeing memory "
                          f"({type(exc).__name__}: {str(exc).strip()[:200]})") from None
        return int(free)

    def on_cpu(self) -> WhisperXEngine:
        """The same model on the CPU with int8, for a job that does not fit even at batch 1."""
        cpu_settings = EngineSettings(
            self.settings.model, self.settings.model_path, self.settings.model_source, "cpu", 0,
            "int8", CPU_BATCH_SIZE, self.settings.cpu_threads,
            {"device": "out-of-memory fallback for one job"})
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
