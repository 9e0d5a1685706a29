"""The real engine: a resident WhisperX pipeline (CTranslate2 Whisper + pyannote VAD).

All torch and whisperx imports happen here, lazily, so the CLI's other commands and the fast
tests stay fast. Verified traps handled here (see ../shared/WHISPERX.md):
- a local model directory does not end in ".en", so an English-only model gets language "en"
  explicitly (else whisperx tries language detection on it and fails);
- after a failed job the pipeline keeps the language it detected: each call sets and restores
  the tokenizer itself (`_job_options`);
- pyannote 4 sends telemetry on every VAD call unless PYANNOTE_METRICS_ENABLED=false, which is
  set before pyannote is first imported.

Out of memory: the consumer (transcription/pipeline.py) halves the Whisper batch size and calls
`free_memory`. torch's empty_cache does not touch CTranslate2's own CUDA cache, so the
CTranslate2 model is unloaded and reloaded (fast). pyannote's VAD reports its own OOM as a
MemoryError naming its batch size (32): that batch size is halved here too, and doubled back
after a run of successes, like the Whisper one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import logs
from ..config import Config, Vad
from ..errors import GpuLost
from . import packing
from .audio_windows import piece_audio, speech_inside, speech_window
from .base import EngineSettings, Progress, Request, SpeechChunk, SpeechOf, Transcript
from .chunks import decode_chunks
from .environment import disable_pyannote_telemetry, keep_libraries_offline_and_private
from .hardware import CPU_BATCH_SIZE
from .oom import BatchGovernor
from .recheck import Batching
from .shared_window import Silences, decode_pieces, packed_transcript, window_features
from .silero import SileroSpeech

log = logs.get_logger()

#: whisperx works on 16 kHz mono.
SAMPLE_RATE = 16_000


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


class WhisperXEngine:
    """WhisperX's FasterWhisperPipeline, loaded once and used serially."""

    def __init__(self, config: Config, settings: EngineSettings) -> None:
        self.config = config
        self.settings = settings
        self._pipe: Any = None
        self.multilingual = True
        #: pyannote's segmentation batch size; set from the loaded VAD model.
        self.vad_batch: BatchGovernor | None = None
        #: faster-whisper's Silero, when vad.method is silero (pyannote is then not loaded).
        self._silero: SileroSpeech | None = None
        self._vad_lock = threading.Lock()
        #: The encodings of silence for packed windows (shared_window.py), while the model is loaded.
        self._silences: Silences | None = None

    def load(self) -> None:
        keep_libraries_offline_and_private()
        import torch
        import whisperx
        import whisperx.asr  # imports pyannote and lightning now, so that...

        logs.quiet_libraries()  # ...the handlers lightning attaches at import are removed here
        disable_pyannote_telemetry()
        torch.set_num_threads(self.settings.cpu_threads)
        arguments = load_model_arguments(self.config, self.settings)
        methods = {self.config.vad.method, self.config.vad.long_method}
        if "silero" in methods:
            self._silero = SileroSpeech(self.config.vad)
        if "pyannote" not in methods:
            arguments["vad_model"] = self._silero  # whisperx then loads no pyannote model
        with logs.prints_as_logs("whisperx"):
            self._pipe = whisperx.load_model(**arguments)
        self.multilingual = bool(self._pipe.model.model.is_multilingual)
        if not self.multilingual and self._pipe.preset_language != "en":
            self._pipe.preset_language = "en"  # an English-only model never needs detection
        segmentation = self.segmentation()
        if segmentation is not None:
            # pyannote checks step <= window only when it builds the Inference; keep that rule.
            segmentation.step = min(float(self.config.vad.step_seconds), float(segmentation.duration))
            self.vad_batch = BatchGovernor(int(segmentation.batch_size), self.config.oom.probe_after_jobs)
        elif self.config.vad.step_seconds != Vad.step_seconds:
            log.warning("engine.vad_step_ignored", reason="vad.step_seconds applies to pyannote only")
        logs.quiet_libraries()
        # The models and the libraries under them are millions of objects that live as long as
        # the process; the decoder runs gc.collect() per file (PyAV needs it), which would walk
        # them all each time (~270 ms per file here). Freezing them keeps that walk short.
        gc.collect()
        gc.freeze()

    @property
    def pipeline(self) -> Any:
        """The loaded whisperx pipeline (None before `load`): read by the doctor and the e2e
        tests, which wrap its CTranslate2 model to inject the libraries' own failures."""
        return self._pipe

    def segmentation(self) -> Any:
        """pyannote's segmentation Inference inside whisperx's VAD (None if whisperx changes shape)."""
        return getattr(getattr(self._pipe.vad_model, "vad_pipeline", None), "_segmentation", None)

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
        vad = self.config.vad
        method = vad.long_method if self.is_long(samples) else vad.method
        if self._silero is not None and method == "silero":
            return self._silero.find(samples)
        self._apply_vad_batch()
        vad = self._pipe.vad_model
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
        if not self.multilingual:
            return "en", None
        if request.language:
            return request.language, None
        from whisperx.audio import N_SAMPLES, log_mel_spectrogram

        audio = speech_window(samples, speech, N_SAMPLES)
        mels = self._pipe.model.feat_kwargs.get("feature_size") or 80
        features = log_mel_spectrogram(audio, n_mels=mels, padding=max(0, N_SAMPLES - audio.shape[0]))
        ranked = self._pipe.model.model.detect_language(self._pipe.model.encode(features))[0]
        return most_probable_language(ranked, self.config.model.languages)

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
        with self._job_options(request), logs.prints_as_logs("whisperx"):
            decoder = ChunkDecoder(self._pipe, request.decoding)
            return decode_chunks(decoder, self._pipe, items, [self.is_long(item.samples) for item in items],
                                 Batching(batch_size, gap), progress, request.language)

    def transcribe_packed(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress, gap_seconds: float, max_files: int) -> list[Transcript | None]:
        """Short files' speech laid into shared windows (packing.py), each window encoded once
        and each piece decoded on its own from it (engine/shared_window.py); None for each file
        in no window. A request prompted by the text before each chunk is not packed (its
        chunks are decoded one after another)."""
        from .decoding import ChunkDecoder, batches

        results: list[Transcript | None] = [None] * len(items)
        if request.decoding.condition_on_previous_text:
            return results
        windows = packing.layout([speech_inside(item) for item in items], gap_seconds, max_files)
        with self._job_options(request), logs.prints_as_logs("whisperx"):
            decoder = ChunkDecoder(self._pipe, request.decoding)
            for batch in batches(len(windows), batch_size):
                features = [[decoder.features(piece_audio(items, p), self._pipe) for p in windows[i].pieces]
                            for i in batch]
                encoded = decoder.encode(np.stack([window_features(f, windows[i])
                                                   for f, i in zip(features, batch, strict=True)]))
                for row, i in enumerate(batch):
                    outs = decode_pieces(decoder, windows[i], encoded[row], features[row],
                                         self._silences_for_model(), batch_size)
                    for file in windows[i].files:
                        results[file] = packed_transcript(windows[i], outs, file, request.language)
                progress(100.0 * batch.stop / len(windows))
        return results

    def _silences_for_model(self) -> Silences:
        """The encodings of silence packed pieces are decoded against, made once per loaded model."""
        self._silences = self._silences or Silences.of(self._pipe.model)
        return self._silences

    @contextlib.contextmanager
    def _job_options(self, request: Request) -> Iterator[None]:
        """This job's language, task, prompt, hotwords and thresholds, for the duration of one call.

        whisperx keeps the tokenizer (and so a detected language) on the pipeline, and resets it
        only after a successful call: a failed job would leave its language to the next file.
        Setting and restoring both here, whatever happens, closes that trap.
        """
        from faster_whisper.tokenizer import Tokenizer

        pipe = self._pipe
        saved_options, saved_tokenizer = pipe.options, pipe.tokenizer
        pipe.tokenizer = Tokenizer(pipe.model.hf_tokenizer, self.multilingual, task=request.task,
                                   language=request.language)
        pipe.options = dataclasses.replace(
            saved_options,
            initial_prompt=request.initial_prompt or saved_options.initial_prompt,
            hotwords=request.hotwords or saved_options.hotwords,
            no_speech_threshold=request.decoding.no_speech_threshold,
            log_prob_threshold=request.decoding.log_prob_threshold,
            compression_ratio_threshold=request.decoding.compression_ratio_threshold,
            condition_on_previous_text=request.decoding.condition_on_previous_text)
        try:
            yield
        finally:
            pipe.options, pipe.tokenizer = saved_options, saved_tokenizer

    def _apply_vad_batch(self) -> None:
        segmentation = self.segmentation()
        if self.vad_batch is not None and segmentation is not None:
            segmentation.batch_size = self.vad_batch.current

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

    def unload(self) -> None:
        """Release the pipeline (CTranslate2's Whisper and pyannote's VAD) and the memory it holds,
        for `model.idle_unload_seconds`; `load` builds it again. The libraries stay imported, so
        a reload costs the model load alone (measured: docs/performance.md).

        `load` froze the models' objects out of the collector's reach (gc.freeze, for the
        decoder's per-file gc.collect): they are unfrozen here, or their reference cycles would
        never be freed."""
        pipe, self._pipe, self._silences = self._pipe, None, None
        if pipe is not None:
            with contextlib.suppress(RuntimeError):
                pipe.model.model.unload_model()  # the weights, and CTranslate2's CUDA cache with them
        del pipe
        gc.unfreeze()
        gc.collect()
        if self.settings.device == "cuda":
            import torch

            torch.cuda.empty_cache()  # the VAD's (and the aligners') blocks in torch's cache

    def close(self) -> None:
        self._pipe, self._silences = None, None
        gc.collect()


def _speech_in(chunk: dict[str, Any]) -> float:
    """The seconds whisperx's merged chunk holds of the VAD's own speech stretches (its gaps out)."""
    return round(float(sum(end - start for start, end in chunk.get("segments", []))), 3)


def most_probable_language(ranked: list[tuple[str, float]],
                           allowed: tuple[str, ...]) -> tuple[str, float | None]:
    """The most probable language of CTranslate2's ranking (`[("<|de|>", 0.9), ...]`, every
    language token, most probable first), among `allowed` when that is not empty."""
    for token, probability in ranked:
        code = token[2:-2]
        if not allowed or code in allowed:
            return code, round(float(probability), 3)
    return allowed[0], None  # unreachable for Whisper's languages: the ranking holds them all
