"""The real engine: a resident WhisperX pipeline (CTranslate2 Whisper + pyannote VAD); with a
route's, library's or sidecar's own model, one Whisper model more per model loaded (resident.py
decides which stay), all sharing the one VAD.

All torch and whisperx imports happen here, lazily, so the CLI's other commands and the fast
tests stay fast. Verified traps handled here (see ../shared/WHISPERX.md):
- a local model directory does not end in ".en", so an English-only model gets language "en"
  explicitly (else whisperx tries language detection on it and fails);
- after a failed job the pipeline keeps the language it detected: each call sets and restores
  the tokenizer itself (`_job_options`);
- pyannote 4 sends telemetry on every VAD call unless PYANNOTE_METRICS_ENABLED=false, which is
  set before pyannote is first imported;
- a CTranslate2 model built on a thread that lives on decodes at half speed on the CPU (libgomp
  stops spinning): every model is built on a thread of its own (openmp.py).

Out of memory: the consumer (transcription/pipeline.py) halves the Whisper batch size and calls
`free_memory`: torch's empty_cache does not touch CTranslate2's own CUDA cache, so the models are
unloaded and reloaded (fast). pyannote's VAD reports its own OOM as a MemoryError naming its
batch size (32), halved here too, and doubled back after a run of successes, like Whisper's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import languages, logs
from ..config import Config, Vad
from ..config.models import ModelChoice
from ..errors import GpuLost
from . import packing
from .audio_windows import speech_inside, speech_window
from .base import EngineSettings, Progress, Request, SpeechChunk, SpeechOf, Transcript
from .catalogue import Catalogue
from .chunks import decode_chunks
from .environment import disable_pyannote_telemetry, keep_libraries_offline_and_private
from .hardware import CPU_BATCH_SIZE, CPU_VAD_BATCH_SIZE
from .oom import BatchGovernor
from .openmp import built_on_a_thread
from .recheck import Batching, Tally
from .shared_window import Silences, transcribe_windows
from .silero import SileroSpeech
from .whisperx_setup import load_model_arguments

log = logs.get_logger()

#: whisperx works on 16 kHz mono.
SAMPLE_RATE = 16_000


class WhisperXEngine:
    """WhisperX's FasterWhisperPipeline, loaded once and used serially; with several models in
    its catalogue, one pipeline per loaded Whisper model, all sharing one VAD."""

    def __init__(self, config: Config, settings: EngineSettings, catalogue: Catalogue | None = None) -> None:
        self.config = config
        self.settings = settings
        self.catalogue = catalogue or Catalogue.single(settings, config.default_model)
        #: The loaded Whisper models' pipelines, and the VAD they share (whisperx's object).
        self._pipes: dict[ModelChoice, Any] = {}
        self._vad: Any = None
        self.multilingual = True
        #: pyannote's segmentation batch size; set from the loaded VAD model.
        self.vad_batch: BatchGovernor | None = None
        #: faster-whisper's Silero, when vad.method is silero (pyannote is then not loaded).
        self._silero: SileroSpeech | None = None
        self._vad_lock = threading.Lock()
        #: The encodings of silence for packed windows (shared_window.py), per loaded model.
        self._silences: dict[ModelChoice, Silences] = {}

    def load(self) -> None:
        """The VAD and the default Whisper model."""
        keep_libraries_offline_and_private()
        import torch
        import whisperx
        import whisperx.asr  # imports pyannote and lightning now, so that...

        logs.quiet_libraries()  # ...the handlers lightning attaches at import are removed here
        disable_pyannote_telemetry()
        torch.set_num_threads(self.settings.cpu_threads)
        arguments = load_model_arguments(self.config, self.settings)
        methods = {self.config.vad.method, self.config.vad.long_vad}
        if "silero" in methods:
            self._silero = SileroSpeech(self.config.vad)
        if "pyannote" not in methods:
            arguments["vad_model"] = self._silero  # whisperx then loads no pyannote model
        with logs.prints_as_logs("whisperx"):
            pipe = built_on_a_thread(lambda: whisperx.load_model(**arguments))
        self._vad = pipe.vad_model
        self._keep(self.catalogue.default, pipe)
        self.multilingual = bool(pipe.model.model.is_multilingual)
        segmentation = self.segmentation()
        if segmentation is not None:
            ceiling = CPU_VAD_BATCH_SIZE if self.settings.device == "cpu" else int(segmentation.batch_size)
            self.vad_batch = BatchGovernor(ceiling, self.config.oom.probe_after_jobs)
        elif self.config.vad.step_seconds != Vad.step_seconds:
            log.warning("engine.vad_step_ignored", reason="vad.step_seconds applies to pyannote only")
        logs.quiet_libraries()
        # The models and the libraries under them are millions of objects that live as long as
        # the process; the decoder runs gc.collect() per file (PyAV needs it), which would walk
        # them all each time (~270 ms per file here). Freezing them keeps that walk short.
        gc.collect()
        gc.freeze()

    def _keep(self, model: ModelChoice, pipe: Any) -> None:
        """A loaded pipeline: an English-only model never needs detection (a local folder's name
        does not say `.en`), and the catalogue learns what the model knows."""
        multilingual = bool(pipe.model.model.is_multilingual)
        if not multilingual and pipe.preset_language != "en":
            pipe.preset_language = "en"
        self.catalogue.multilingual[model] = multilingual
        self._pipes[model] = pipe

    def loaded_models(self) -> list[ModelChoice]:
        return list(self._pipes)

    def load_model(self, model: ModelChoice) -> None:
        """Another Whisper model of the catalogue, sharing the loaded VAD (whisperx's `vad_model`)."""
        if model in self._pipes:
            return
        import whisperx

        arguments = {**load_model_arguments(self.config, self.catalogue.settings_for(model)),
                     "vad_model": self._vad}
        with logs.prints_as_logs("whisperx"):
            pipe = built_on_a_thread(lambda: whisperx.load_model(**arguments))
        self._keep(model, pipe)
        gc.collect()
        gc.freeze()  # as `load`: the per-file gc.collect() does not walk its objects

    def unload_model(self, model: ModelChoice) -> None:
        """One Whisper model's weights and CTranslate2's cache with them; the VAD stays."""
        pipe = self._pipes.pop(model, None)
        self._silences.pop(model, None)
        if pipe is None:
            return
        with contextlib.suppress(RuntimeError):
            pipe.model.model.unload_model()
        del pipe
        self._collect()

    @property
    def pipeline(self) -> Any:
        """The default model's whisperx pipeline (None before `load`): read by the doctor and the
        e2e tests, which wrap its CTranslate2 model to inject the libraries' own failures."""
        return self._pipes.get(self.catalogue.default)

    def _pipe_for(self, request: Request) -> Any:
        model = request.model or self.catalogue.default
        pipe = self._pipes.get(model)
        if pipe is None:
            raise RuntimeError(f"the model {model.describe()} is not loaded (resident.py loads it first)")
        return pipe

    def segmentation(self) -> Any:
        """pyannote's segmentation Inference inside whisperx's VAD (None if whisperx changes shape)."""
        return getattr(getattr(self._vad, "vad_pipeline", None), "_segmentation", None)

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress, speech: list[SpeechChunk] | None = None) -> Transcript:
        """Voice activity detection (unless `speech` was found ahead), language (given or
        detected), then batched decoding."""
        if speech is None:
            speech = self.find_speech(samples)
        language, probability = self.language_of(samples, speech, request)
        request = dataclasses.replace(request, language=language)
        result = self.transcribe_speech([SpeechOf(samples, speech, request.file)], request, batch_size,
                                        progress)[0]
        result["language_probability"] = probability
        return result

    def find_speech(self, samples: np.ndarray) -> list[SpeechChunk]:
        """Speech chunks (start, end in seconds), each at most `vad.chunk_seconds` long.
        Called from the prefetch thread and the consumer: one call at a time (pyannote's
        Inference and its batch size are shared state)."""
        with self._vad_lock:
            return self._find_speech(samples)

    def is_long(self, samples: np.ndarray) -> bool:
        """A long recording (`vad.long_seconds`): its own VAD, and the recheck."""
        return len(samples) >= self.config.vad.long_seconds * SAMPLE_RATE

    def _find_speech(self, samples: np.ndarray) -> list[SpeechChunk]:
        method = self.config.vad.long_vad if self.is_long(samples) else self.config.vad.method
        if self._silero is not None and method == "silero":
            return self._silero.find(samples)
        segmentation = self.segmentation()
        if segmentation is not None:  # pyannote checks step <= window only when it builds the Inference
            vad = self.config.vad
            step = vad.long_step_seconds if self.is_long(samples) else vad.step_seconds
            segmentation.step = min(float(step), float(segmentation.duration))
        if self.vad_batch is not None and segmentation is not None:
            segmentation.batch_size = self.vad_batch.current
        vad = self._vad
        try:
            with logs.prints_as_logs("whisperx"):
                scores = vad({"waveform": vad.preprocess_audio(samples), "sample_rate": SAMPLE_RATE})
                chunks = vad.merge_chunks(scores, self.config.vad.chunk_seconds,
                                          onset=self.config.vad.onset, offset=self.config.vad.offset)
        except MemoryError:
            self._lower_vad_batch()
            raise
        if self.vad_batch is not None:
            self.vad_batch.succeeded()
        return [SpeechChunk(start=c["start"], end=c["end"], speech_seconds=_speech_in(c),
                            stretches=[(float(a), float(b)) for a, b in c.get("segments", [])])
                for c in chunks]

    def language_of(self, samples: np.ndarray, speech: list[SpeechChunk],
                    request: Request) -> tuple[str, float | None]:
        """The job's language and, when detected, its probability.

        An English-only model is always English; a given language is used as it is; otherwise
        Whisper detects it from up to 30 s of speech gathered from the VAD's chunks (not 30 s of
        the file, nor of the first chunk's start onwards: a music intro between chunks does not
        count), picking the most probable of `model.languages` when that is set.
        """
        pipe = self._pipe_for(request)
        if not pipe.model.model.is_multilingual:
            return "en", None
        if request.language:
            return request.language, None
        from whisperx.audio import N_SAMPLES, log_mel_spectrogram

        audio = speech_window(samples, speech, N_SAMPLES)
        mels = pipe.model.feat_kwargs.get("feature_size") or 80
        features = log_mel_spectrogram(audio, n_mels=mels, padding=max(0, N_SAMPLES - audio.shape[0]))
        ranked = pipe.model.model.detect_language(pipe.model.encode(features))[0]
        return languages.most_probable(ranked, self.config.model.languages)

    def transcribe_speech(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress) -> list[Transcript]:
        """Decode the speech chunks of one or more files in shared batches; one result per file.

        All files share `request` (its language must be decided). Chunks of several short
        files fill a batch that one short file alone would leave nearly empty. Each segment
        keeps Whisper's figures for filters.py: avg_logprob, no_speech_prob, compression_ratio,
        and the speech the VAD found under it (engine/decoding.py: whisperx's own call, plus the
        no-speech probability, the temperature fallback and the previous-text prompt).
        """
        from .decoding import ChunkDecoder

        # A translation's English words cannot be aligned to the spoken language's audio.
        gap = self.config.vad.recheck_seconds if request.task == "transcribe" else 0.0
        tally = Tally()
        with self._job_options(request) as pipe, logs.prints_as_logs("whisperx"):
            decoder = ChunkDecoder(pipe, request.decoding)
            results = decode_chunks(decoder, pipe, items, [self.is_long(item.samples) for item in items],
                                    Batching(batch_size, gap), progress, request.language, tally)
        if tally.regions:
            log.info("engine.rechecked", regions=tally.regions, seconds=round(tally.seconds, 1))
        return results

    def transcribe_packed(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress, gap_seconds: float, max_files: int) -> list[Transcript | None]:
        """Short files' speech laid into shared windows (packing.py), each window encoded once
        and each piece decoded on its own from it (engine/shared_window.py); None for each file
        in no window. A request prompted by the text before each chunk is not packed (its
        chunks are decoded one after another)."""
        from .decoding import ChunkDecoder

        if request.decoding.condition_on_previous_text:
            return [None] * len(items)
        windows = packing.layout([speech_inside(item) for item in items], gap_seconds, max_files)
        model = request.model or self.catalogue.default
        with self._job_options(request) as pipe, logs.prints_as_logs("whisperx"):
            if model not in self._silences:  # the encodings of silence, made once per loaded model
                self._silences[model] = Silences.of(pipe.model)
            return transcribe_windows(ChunkDecoder(pipe, request.decoding), pipe, items, windows,
                                      self._silences[model], batch_size, progress, request.language)

    @contextlib.contextmanager
    def _job_options(self, request: Request) -> Iterator[Any]:
        """The request's model's pipeline, with this job's language, task, prompt, hotwords, beam
        size and thresholds, for the duration of one call.

        whisperx keeps the tokenizer (and so a detected language) on the pipeline, and resets it
        only after a successful call: a failed job would leave its language to the next file.
        Setting and restoring both here, whatever happens, closes that trap.
        """
        from faster_whisper.tokenizer import Tokenizer

        pipe = self._pipe_for(request)
        saved_options, saved_tokenizer = pipe.options, pipe.tokenizer
        pipe.tokenizer = Tokenizer(pipe.model.hf_tokenizer, bool(pipe.model.model.is_multilingual),
                                   task=request.task, language=request.language)
        pipe.options = dataclasses.replace(
            saved_options, beam_size=request.beam_size or saved_options.beam_size,
            initial_prompt=request.initial_prompt or saved_options.initial_prompt,
            hotwords=request.hotwords or saved_options.hotwords,
            no_speech_threshold=request.decoding.no_speech_threshold,
            log_prob_threshold=request.decoding.log_prob_threshold,
            compression_ratio_threshold=request.decoding.compression_ratio_threshold,
            condition_on_previous_text=request.decoding.condition_on_previous_text)
        try:
            yield pipe
        finally:
            pipe.options, pipe.tokenizer = saved_options, saved_tokenizer

    def _lower_vad_batch(self) -> None:
        """pyannote re-raises a CUDA OOM as MemoryError("batch_size (32) is probably too large")."""
        if self.vad_batch is None:
            return
        old = self.vad_batch.current
        new = self.vad_batch.lower()
        log.warning("engine.vad_batch_lowered", old_batch_size=old, new_batch_size=new or old)

    def vad_retry_fits(self) -> bool:
        """After pyannote's out-of-memory (its batch already halved in `_find_speech`): while that
        batch is above 1, the retry need not shrink the Whisper batch too."""
        return self.vad_batch is not None and self.vad_batch.current > 1

    def memory_in_use(self) -> tuple[int, int] | None:
        """GPU memory (used, total) of the device the model is on; None on the CPU."""
        if self.settings.device != "cuda":
            return None
        import torch

        free, total = torch.cuda.mem_get_info(self.settings.device_index)
        return int(total - free), int(total)

    def free_memory(self) -> int | None:
        """gc, torch's cache, and CTranslate2's own cache (which empty_cache does not touch):
        each loaded model's weights are dropped and loaded again."""
        gc.collect()
        if self.settings.device != "cuda":
            return None
        import torch

        try:
            for pipe in self._pipes.values():
                pipe.model.model.unload_model()  # the weights, and CTranslate2's CUDA allocator cache
            gc.collect()
            torch.cuda.empty_cache()
            for pipe in self._pipes.values():
                pipe.model.model.load_model()  # again (seconds at most: the OS file cache has them)
            free, _total = torch.cuda.mem_get_info(self.settings.device_index)
        except RuntimeError as exc:
            # Without its weights the engine cannot transcribe; a fresh process can.
            raise GpuLost(f"the model could not be reloaded onto the GPU after freeing memory "
                          f"({type(exc).__name__}: {str(exc).strip()[:200]})") from None
        return int(free)

    def on_cpu(self, model: ModelChoice | None = None) -> WhisperXEngine:
        """`model` (None: the default) on the CPU with int8, for a job that does not fit even at
        batch 1, or a model that does not fit at all."""
        choice = model or self.catalogue.default
        settings = self.catalogue.settings_for(choice)
        cpu_settings = EngineSettings(
            settings.model, settings.model_path, settings.model_source, "cpu", 0, "int8", CPU_BATCH_SIZE,
            settings.cpu_threads, {"device": "out-of-memory fallback for one job"})
        engine = WhisperXEngine(self.config, cpu_settings, Catalogue.single(cpu_settings, choice))
        engine.load()
        return engine

    def unload(self) -> None:
        """Release every pipeline (CTranslate2's Whisper models and pyannote's VAD) and the memory
        they hold, for `model.idle_unload_seconds`; `load` builds the default again. The libraries
        stay imported, so a reload costs the model load alone (measured: docs/performance.md)."""
        pipes = list(self._pipes.values())
        self._pipes.clear()
        self._silences.clear()
        self._vad = None
        for pipe in pipes:
            with contextlib.suppress(RuntimeError):
                pipe.model.model.unload_model()  # the weights, and CTranslate2's CUDA cache with them
        del pipes
        self._collect()

    def _collect(self) -> None:
        """`load` froze the models' objects out of the collector's reach (gc.freeze, for the
        decoder's per-file gc.collect): unfrozen here, or the reference cycles of a released
        model would never be freed; what is still loaded is frozen again."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        if self.settings.device == "cuda":
            import torch

            torch.cuda.empty_cache()  # the VAD's (and the aligners') blocks in torch's cache

    def close(self) -> None:
        self._pipes.clear()
        self._silences.clear()
        self._vad = None
        gc.collect()


def _speech_in(chunk: dict[str, Any]) -> float:
    """The seconds whisperx's merged chunk holds of the VAD's own speech stretches (its gaps out)."""
    return round(float(sum(end - start for start, end in chunk.get("segments", []))), 3)
