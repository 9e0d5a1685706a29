"""One job's stages: decode, transcribe (backing off on out-of-memory), write the outputs.

The pipeline knows nothing of folders beyond the job's own staging folder; the consumer decides
what its outcome means for the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..engine.base import Engine, Request, SpeechChunk, SpeechOf, Transcript
from ..engine.decoding import Thresholds
from ..engine.oom import BatchGovernor, is_gpu_lost, is_out_of_memory
from ..errors import FailedIn, GpuLost, OutOfMemory, StageFailed, StorageFault
from ..logs import get_logger
from ..operations.stats import Stats
from ..spool.jobs import Job
from ..spool.sidecars import sidecar_next_to
from . import filters, translation
from .alignment import Aligner
from .audio import Audio, decode_input
from .diarization import Diarizer
from .later_stages import align_words, label_speakers
from .metadata import Metadata, Run, job_metadata
from .options import DECODING_KEYS, Effective, job_options
from .outputs import plain_result, write_outputs
from .progress_feed import ProgressFeed

log = get_logger()


@dataclass
class Finished:
    """A transcribed job: its staged outputs (suffix -> path) and its metadata."""

    outputs: dict[str, Path]
    metadata: Metadata


@dataclass
class Prepared:
    """A job decoded and ready for the model; its speech found ahead (prefetch) or so that it can
    share a model call (batching)."""

    job: Job
    options: Effective
    audio: Audio
    request: Request
    started: float
    state: Run
    speech: list[SpeechChunk] | None = None
    probability: float | None = None


class Pipeline:
    """Turns a claimed job's source into staged outputs, with the resident engine."""

    def __init__(self, config: Config, engine: Engine, heartbeat: Callable[[], None],
                 worker_name: str = "", stats: Stats | None = None,
                 aligner: Aligner | None = None, diarizer: Diarizer | None = None,
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.config = config
        self.stats = stats or Stats()
        self.aligner = aligner
        self.diarizer = diarizer
        self.engine = engine
        self.heartbeat = heartbeat
        self.worker_name = worker_name
        self.governor = BatchGovernor(engine.settings.batch_size, config.oom.probe_after_jobs)
        self.run_state = Run()
        #: The running job's progress: the reports, the log, the CLI's bar, the heartbeat.
        self.progress = ProgressFeed(self.stats, config.log.progress_seconds, heartbeat, on_progress)
        #: Seconds the models took to load again before the next job (after an idle unload):
        #: that job's `model_load` timing.
        self.pending_model_load: float | None = None

    def run(self, job: Job) -> Finished:
        """Decode, transcribe, write the plain transcript, then align and diarize and rewrite."""
        return self.finish(self.prepare(job))

    def prepare(self, job: Job) -> Prepared:
        """Read the job's options and decode its audio. No model call: this may run on the
        prefetch thread beside a transcription (consumer/prefetch.py)."""
        self.run_state = Run()
        started = time.monotonic()
        with self._stage("options"):
            options = self._options(job)
        with self._stage("decode"):
            audio = decode_input(job.source, self.config.input, options.audio_track)
        log.info("job.decoded", audio_s=round(audio.seconds, 3), declared_s=audio.declared_seconds,
                 offset_s=audio.offset_seconds, truncated=audio.truncated,
                 seconds=self.run_state.timings["decode"])
        self.progress.track(job.id, audio.seconds, started)
        request = Request(language=options.language, task=options.task, file=job.relpath.name,
                          initial_prompt=options.initial_prompt, hotwords=options.hotwords,
                          decoding=Thresholds(**{key: getattr(options, key) for key in DECODING_KEYS}))
        return Prepared(job, options, audio, request, started, self.run_state)

    def find_speech(self, prepared: Prepared) -> Prepared:
        """Voice activity detection. No Whisper call: this may run on the prefetch thread too."""
        with self._stage("vad"):
            prepared.speech = self.engine.find_speech(prepared.audio.samples)
        return prepared

    def decide_language(self, prepared: Prepared) -> Prepared:
        """The given language, or the one Whisper detects in the first speech (a model call: on
        the consumer thread only), so that the job can share a model call with others."""
        with self._stage("language"):
            language, prepared.probability = self.engine.language_of(
                prepared.audio.samples, prepared.speech or [], prepared.request)
        prepared.request = dataclasses.replace(prepared.request, language=language)
        return prepared

    def transcribe_together(self, group: list[Prepared]) -> list[Transcript]:
        """One model call for the speech of several prepared jobs that share a request."""
        batch_size = self.governor.current
        started = time.monotonic()
        self.progress.track(group[0].job.id, sum(p.audio.seconds for p in group), started).model_started()
        self.heartbeat()
        try:
            results = self.engine.transcribe_speech(
                [SpeechOf(p.audio.samples, p.speech or [], p.job.relpath.name) for p in group],
                group[0].request, batch_size, self.progress.update)
        except Exception as exc:
            _raise_if_gpu_lost(exc)
            raise
        seconds = round(time.monotonic() - started, 3)
        for prepared, result in zip(group, results, strict=True):
            result["language_probability"] = prepared.probability
            prepared.state.batch_size, prepared.state.device = batch_size, self.engine.settings.device
            prepared.state.timings["transcribe"] = seconds
            prepared.state.notes["shared_batch_files"] = len(group)
        return results

    def transcribe_packed(self, group: list[Prepared]) -> list[Transcript | None]:
        """Prepared jobs that share a request, their speech packed into shared Whisper windows
        (engine/packing.py); None for each one not packed or not clearly split (transcribed alone)."""
        packing = self.config.packing
        batch_size = self.governor.current
        started = time.monotonic()
        self.progress.track(group[0].job.id, sum(p.audio.seconds for p in group), started).model_started()
        self.heartbeat()
        try:
            results = self.engine.transcribe_packed(
                [SpeechOf(p.audio.samples, p.speech or [], p.job.relpath.name) for p in group],
                group[0].request, batch_size, self.progress.update, packing.gap_seconds, packing.max_files)
        except Exception as exc:
            _raise_if_gpu_lost(exc)
            raise
        seconds = round(time.monotonic() - started, 3)
        for prepared, result in zip(group, results, strict=True):
            if result is not None:
                result["language_probability"] = prepared.probability
                prepared.state.batch_size, prepared.state.device = batch_size, self.engine.settings.device
                prepared.state.timings["transcribe"] = seconds
                prepared.state.notes["packed_files"] = result.pop("packed_files", 1)
                prepared.state.notes["packed_gap_seconds"] = packing.gap_seconds
        return results

    def finish(self, prepared: Prepared, result: Transcript | None = None) -> Finished:
        """Transcribe (unless `result` came from a shared call), write, align, diarize, rewrite."""
        self.run_state = prepared.state
        job, audio, options, started = prepared.job, prepared.audio, prepared.options, prepared.started
        if self.pending_model_load is not None:
            self.run_state.timings["model_load"], self.pending_model_load = self.pending_model_load, None
        tracker = self.progress.track(job.id, audio.seconds, started)
        if result is not None:
            tracker.update(100.0)  # its speech was decoded in a shared call
        if result is None:
            with self._stage("transcribe"):
                result = self._transcribe(audio, prepared.request, prepared.speech)
            if not self.run_state.backoffs:
                self.governor.succeeded()
        result = self._filtered(plain_result(result), options)
        if result.get("language_probability") is not None:
            log.info("job.language_detected", language=result["language"],
                     probability=result["language_probability"])
        result["text_language"] = translation.text_language(result["language"], options.task)
        if options.task == "translate" and options.align is not False:
            self.run_state.notes["alignment"] = translation.NOT_ALIGNED
        written, metadata, refused = self._write_stage(job, audio, result, options, started)
        try:
            later = self._later_stages(result, audio, options, written)
        except StageFailed as failed:
            if refused is None:
                raise
            refused.resume = functools.partial(self.write_later, job, result, metadata,
                                               options.formats, failed)
            raise FailedIn("write", refused) from None
        if later is not result:
            later["text_language"] = result["text_language"]
        if later is not result or refused is not None:
            written, metadata, refused = self._write_stage(job, audio, later, options, started)
            if refused is not None:
                refused.resume = functools.partial(self.write_later, job, later, metadata, options.formats)
                raise FailedIn("write", refused)
        if translation.wants_english_too(options, later):
            written = {**written, **self._english_too(prepared, later, written)}
        return Finished(written, self._metadata(job, audio, later, options, started))

    def _english_too(self, prepared: Prepared, spoken: Transcript, kept: dict[str, Path]) -> dict[str, Path]:
        """`also_english`: Whisper again over the same speech, translating (translation.py)."""
        job, options = prepared.job, prepared.options
        request = translation.translation_request(prepared.request, spoken)

        def translate() -> Transcript:
            english = self._transcribe(prepared.audio, request, prepared.speech)
            english, self.run_state.notes["translation"] = translation.finish_translation(
                english, self.config, options, self.run_state.speaker_turns)
            return english

        with self._stage("translate"):
            english = self._guarded("translate", kept, translate)
        with self._stage("write"):
            metadata = self._metadata(job, prepared.audio, english, options, prepared.started)
            written = write_outputs(english, metadata, self.config.outputs, job.staging,
                                    f"{job.stem}.{translation.TRANSLATION_LANGUAGE}", options.formats,
                                    offset_seconds=prepared.audio.offset_seconds)
        return translation.english_outputs(written)

    def write_later(self, job: Job, result: Transcript, metadata: Metadata,
                    formats: tuple[str, ...] | None, failed: StageFailed | None = None) -> Finished:
        """Write a finished transcript a full or read-only disk refused, once storage takes writes
        again (the job's `resume`: it is not transcribed again). After a later stage failed, that
        failure is raised then, the plain transcript kept. Refused again: resumable again."""
        try:
            written = write_outputs(plain_result(result), metadata, self.config.outputs, job.staging,
                                    job.stem, formats, offset_seconds=metadata["audio_offset_seconds"])
        except StorageFault as fault:
            fault.resume = functools.partial(self.write_later, job, result, metadata, formats, failed)
            raise
        if failed is not None:
            failed.kept = written
            raise failed
        return Finished(written, metadata)

    def _filtered(self, result: Transcript, options: Effective) -> Transcript:
        """The post-filters (filters.py) over the plain transcript; what each removed goes into
        the metadata and, when anything was, the log (job.filtered)."""
        filtered, counts = filters.apply(result, filters.FilterRules.of(self.config.filters, options))
        self.run_state.notes["filters"] = counts
        if any(counts.values()):
            log.info("job.filtered", **counts)
        return filtered

    def _options(self, job: Job) -> Effective:
        english_only = None if self.engine.multilingual else self.engine.settings.model
        return job_options(self.config, job.relpath, sidecar_next_to(job.source), english_only)

    def _write_stage(self, job: Job, audio: Audio, result: Transcript, options: Effective,
                     started: float) -> tuple[dict[str, Path], Metadata, StorageFault | None]:
        """The write stage: the outputs written and their metadata. A full or read-only disk is
        returned, not raised (the later stages may still run; their work is kept either way)."""
        metadata = self._metadata(job, audio, result, options, started)
        try:
            with self._stage("write"):
                written = write_outputs(plain_result(result), metadata, self.config.outputs,
                                        job.staging, job.stem, options.formats,
                                        offset_seconds=audio.offset_seconds)
        except FailedIn as exc:
            if not isinstance(exc.error, StorageFault):
                raise
            return {}, metadata, exc.error
        return written, metadata, None

    def _later_stages(self, result: Transcript, audio: Audio, options: Effective,
                      kept: dict[str, Path]) -> Transcript:
        """Alignment, then diarization; a failure keeps the plain transcript (StageFailed).

        A translation is not aligned: its English words were never spoken, and forcing them onto
        the speech gives timings of nothing (measured: docs/languages.md); whisperX's CLI turns
        alignment off for translation too."""
        state = self.run_state
        if options.align is not False and options.task != "translate" and result["segments"]:
            with self._stage("align"):
                result = self._guarded(
                    "align", kept, lambda: align_words(self.aligner, result, audio, options, state))
        if options.diarize and result["segments"]:
            with self._stage("diarize"):
                result = self._guarded(
                    "diarize", kept, lambda: label_speakers(self.diarizer, result, audio, options, state))
        return result

    def _guarded(self, stage: str, kept: dict[str, Path], run: Callable[[], Transcript]) -> Transcript:
        """Run a stage after transcription: retry once after freeing memory on OOM, and turn any
        failure into StageFailed carrying the outputs already written."""
        for attempt in (1, 2):
            error = None
            try:
                return run()
            except Exception as exc:  # noqa: BLE001 - classified here, re-raised as StageFailed
                _raise_if_gpu_lost(exc)
                error = _first_line(exc)
                out_of_memory = is_out_of_memory(exc)
            if not (out_of_memory and attempt == 1):
                raise StageFailed(stage, error, kept)
            free = self.engine.free_memory()
            self.stats.oom_backoff(None)
            step = {"stage": stage, "old_batch_size": None, "new_batch_size": None,
                    "free_memory_bytes": free, "error": error}
            self.run_state.backoffs.append(step)
            log.warning("engine.oom_backoff", **step)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Time a stage, and name it on whatever it raises (FailedIn), for the consumer's report."""
        self.run_state.stage = name
        self.heartbeat()
        started = time.monotonic()
        try:
            yield
        except FailedIn:
            raise
        except Exception as exc:
            raise FailedIn(name, exc) from exc
        finally:
            self.run_state.timings[name] = round(time.monotonic() - started, 3)

    def _transcribe(self, audio: Audio, request: Request,
                    speech: list[SpeechChunk] | None) -> Transcript:
        """Transcribe (finding the speech first unless it is known), halving the batch size on
        out-of-memory; at 1, apply `oom.fallback`."""
        engine, fallback = self.engine, None
        self.progress.model_started()
        while True:
            batch_size = self.governor.current if fallback is None else fallback.settings.batch_size
            error = None
            try:
                result = engine.transcribe(audio.samples, request, batch_size, self.progress.update, speech)
            except Exception as exc:
                _raise_if_gpu_lost(exc)
                if not is_out_of_memory(exc) or fallback is not None:
                    raise
                error = _first_line(exc)
                stage = "vad" if isinstance(exc, MemoryError) else "transcribe"
            if error is None:
                self.run_state.batch_size, self.run_state.device = batch_size, engine.settings.device
                if fallback is not None:
                    fallback.close()
                return result
            # Outside the except block: the traceback (and the GPU memory its frames hold) is gone.
            fallback = self._back_off(stage, batch_size, error)
            engine = fallback or engine

    def _back_off(self, stage: str, batch_size: int, error: str) -> Engine | None:
        free = self.engine.free_memory()
        if stage == "vad" and self.engine.vad_retry_fits():
            smaller: int | None = batch_size  # the engine halved pyannote's own batch: retry with it
        else:
            smaller = self.governor.lower()
        step = {"stage": stage, "old_batch_size": batch_size, "new_batch_size": smaller,
                "free_memory_bytes": free, "error": error}
        self.run_state.backoffs.append(step)
        self.stats.oom_backoff(smaller)
        log.warning("engine.oom_backoff", **step)
        if smaller is not None:
            return None
        if self.config.oom.fallback == "fail":
            raise OutOfMemory(f"out of memory even at batch size 1 ({error}); oom.fallback is fail")
        log.warning("engine.cpu_fallback", reason="out of memory at batch size 1")
        self.run_state.backoffs.append({"stage": stage, "fallback": "cpu"})
        return self.engine.on_cpu()

    def _metadata(self, job: Job, audio: Audio, result: Transcript, options: Effective,
                  started: float) -> Metadata:
        return job_metadata(job, audio, result, options, started, self.engine.settings,
                            self.run_state, self.worker_name)


def _raise_if_gpu_lost(exc: BaseException) -> None:
    """A lost GPU is no job's fault and no retry helps: it ends the daemon (see oom.py)."""
    if is_gpu_lost(exc):
        raise GpuLost(f"{type(exc).__name__}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    """An error as one readable line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
