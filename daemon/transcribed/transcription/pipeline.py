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

from ..config import Config, Outputs
from ..config.models import ModelChoice
from ..engine.base import Engine, Request, SpeechChunk, SpeechOf, Transcript
from ..engine.decoding import Thresholds
from ..engine.oom import BatchGovernor, is_out_of_memory
from ..engine.resident import ResidentModels
from ..errors import FailedIn, OutOfMemory, StageFailed, StorageFault
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
from .whisper import Whisper, first_line, raise_if_gpu_lost

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

    def __init__(self, config: Config, engine: Engine, heartbeat: Callable[[], None],  # noqa: PLR0913 - wired by the consumer and the CLI
                 worker_name: str = "", stats: Stats | None = None,
                 aligner: Aligner | None = None, diarizer: Diarizer | None = None,
                 on_progress: Callable[[float], None] | None = None, *,
                 resident: ResidentModels | None = None) -> None:
        self.config = config
        self.stats = stats or Stats()
        self.aligner = aligner
        self.diarizer = diarizer
        self.engine = engine
        self.heartbeat = heartbeat
        self.worker_name = worker_name
        #: The model each job runs with, its batch size and its out-of-memory back-off.
        self.whisper = Whisper(config, engine, self.stats, resident)
        self.run_state = Run()
        #: The running job's progress: the reports, the log, the CLI's bar, the heartbeat.
        self.progress = ProgressFeed(self.stats, config.log.progress_seconds, heartbeat, on_progress)
        #: Seconds the models took to load again before the next job (after an idle unload):
        #: that job's `model_load` timing.
        self.pending_model_load: float | None = None

    @property
    def governor(self) -> BatchGovernor:
        """The default model's batch size now (each model has its own: `whisper.governor`)."""
        return self.whisper.governor(None)

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
                          decoding=Thresholds(**{key: getattr(options, key) for key in DECODING_KEYS}),
                          model=self._model(options), beam_size=options.beam_size)
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
            cpu = self.whisper.ready(prepared.request, prepared.state)
            language, prepared.probability = (cpu or self.engine).language_of(
                prepared.audio.samples, prepared.speech or [], prepared.request)
            if cpu is not None:
                cpu.close()
        prepared.request = dataclasses.replace(prepared.request, language=language)
        return prepared

    def transcribe_together(self, group: list[Prepared]) -> list[Transcript]:
        """One model call for the speech of several prepared jobs that share a request."""
        self._model_resident(group[0])
        batch_size = self.whisper.governor(group[0].request.model).current
        started = time.monotonic()
        self.progress.track(group[0].job.id, sum(p.audio.seconds for p in group), started).model_started()
        self.heartbeat()
        try:
            results = self.engine.transcribe_speech(
                [SpeechOf(p.audio.samples, p.speech or [], p.job.relpath.name) for p in group],
                group[0].request, batch_size, self.progress.update)
        except Exception as exc:
            raise_if_gpu_lost(exc)
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
        self._model_resident(group[0])
        batch_size = self.whisper.governor(group[0].request.model).current
        started = time.monotonic()
        self.progress.track(group[0].job.id, sum(p.audio.seconds for p in group), started).model_started()
        self.heartbeat()
        try:
            results = self.engine.transcribe_packed(
                [SpeechOf(p.audio.samples, p.speech or [], p.job.relpath.name) for p in group],
                group[0].request, batch_size, self.progress.update, packing.gap_seconds, packing.max_files)
        except Exception as exc:
            raise_if_gpu_lost(exc)
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
                self.whisper.governor(prepared.request.model).succeeded()
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
                                               options.outputs(), failed)
            raise FailedIn("write", refused) from None
        if later is not result:
            later["text_language"] = result["text_language"]
        if later is not result or refused is not None:
            written, metadata, refused = self._write_stage(job, audio, later, options, started)
            if refused is not None:
                refused.resume = functools.partial(self.write_later, job, later, metadata, options.outputs())
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
            written = write_outputs(english, metadata, options.outputs(), job.staging,
                                    f"{job.stem}.{translation.TRANSLATION_LANGUAGE}",
                                    offset_seconds=prepared.audio.offset_seconds)
        return translation.english_outputs(written)

    def write_later(self, job: Job, result: Transcript, metadata: Metadata,
                    outputs: Outputs, failed: StageFailed | None = None) -> Finished:
        """Write a finished transcript a full or read-only disk refused, once storage takes writes
        again (the job's `resume`: it is not transcribed again). After a later stage failed, that
        failure is raised then, the plain transcript kept. Refused again: resumable again."""
        try:
            written = write_outputs(plain_result(result), metadata, outputs, job.staging, job.stem,
                                    offset_seconds=metadata["audio_offset_seconds"])
        except StorageFault as fault:
            fault.resume = functools.partial(self.write_later, job, result, metadata, outputs, failed)
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
        return job_options(self.config, job.relpath, sidecar_next_to(job.source), offer=self.engine.catalogue)

    def _write_stage(self, job: Job, audio: Audio, result: Transcript, options: Effective,
                     started: float) -> tuple[dict[str, Path], Metadata, StorageFault | None]:
        """The write stage: the outputs written and their metadata. A full or read-only disk is
        returned, not raised (the later stages may still run; their work is kept either way)."""
        metadata = self._metadata(job, audio, result, options, started)
        try:
            with self._stage("write"):
                written = write_outputs(plain_result(result), metadata, options.outputs(),
                                        job.staging, job.stem, offset_seconds=audio.offset_seconds)
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
                raise_if_gpu_lost(exc)
                error = first_line(exc)
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
        """Transcribe with the request's model (loaded first), backing off on out-of-memory."""
        self.progress.model_started()
        engine = self.whisper.ready(request, self.run_state)
        return self.whisper.transcribe(audio, request, speech, self.run_state, self.progress.update, engine)

    def _model_resident(self, prepared: Prepared) -> None:
        """A shared call's model loaded; one that does not fit leaves each file to run alone."""
        cpu = self.whisper.ready(prepared.request, prepared.state)
        if cpu is not None:
            cpu.close()
            raise OutOfMemory("the model does not fit in memory: each file runs alone")

    def _model(self, options: Effective) -> ModelChoice | None:
        """The job's model for the engine: None for the daemon's own (the engine's default)."""
        return None if options.model == self.config.default_model else options.model

    def _metadata(self, job: Job, audio: Audio, result: Transcript, options: Effective,
                  started: float) -> Metadata:
        return job_metadata(job, audio, result, options, started, self.whisper.settings(self._model(options)),
                            self.run_state, self.worker_name)
