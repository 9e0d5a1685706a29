"""Whisper for one job: its model loaded first (engine/resident.py: within the budget, the least
recently used leaving), the batch size that backs off on out-of-memory (one per model: each has
its own), the CPU fallback at batch size 1 (`oom.fallback`), and the settings its metadata names.

A model that does not fit even alone (`ModelDoesNotFit`) is an out-of-memory error like one at
batch size 1: with `oom.fallback: cpu` this job runs on a CPU copy of that model, else it fails
as out_of_memory.
"""

from __future__ import annotations

from ..config import Config
from ..config.models import ModelChoice
from ..engine.base import Engine, EngineSettings, Progress, Request, SpeechChunk, Transcript
from ..engine.oom import BatchGovernor, is_gpu_lost, is_out_of_memory
from ..engine.resident import ModelDoesNotFit, ResidentModels
from ..errors import GpuLost, OutOfMemory
from ..logs import get_logger
from ..operations.stats import Stats
from .audio import Audio
from .metadata import Run

log = get_logger()


class Whisper:
    """The Whisper calls of a pipeline: which model, which batch size, which engine."""

    def __init__(self, config: Config, engine: Engine, stats: Stats,
                 resident: ResidentModels | None = None) -> None:
        self.config = config
        self.engine = engine
        self.stats = stats
        #: Shared with the consumer's other pipeline (decoding ahead): one set per engine.
        self.resident = resident or ResidentModels(engine)
        self._governors: dict[ModelChoice, BatchGovernor] = {}

    def governor(self, model: ModelChoice | None) -> BatchGovernor:
        """The batch size `model` (None: the default) runs with now, halved on out-of-memory."""
        key = model or self.engine.catalogue.default
        if key not in self._governors:
            self._governors[key] = BatchGovernor(self.settings(model).batch_size,
                                                 self.config.oom.probe_after_jobs)
        return self._governors[key]

    def settings(self, model: ModelChoice | None) -> EngineSettings:
        return self.engine.catalogue.settings_for(model)

    def ready(self, request: Request, state: Run) -> Engine | None:
        """Load the request's model if it is not (its seconds are the job's `model_switch`);
        None when the resident engine runs it, else a CPU copy of it for this job alone (it does
        not fit even alone, and `oom.fallback` is cpu), which the caller closes."""
        try:
            switch = self.resident.ensure(request.model)
        except ModelDoesNotFit as exc:
            self.stats.oom_backoff(None)
            state.backoffs.append({"stage": "load", "model": (request.model or self.engine.catalogue.default)
                                   .describe(), "error": str(exc)})
            if self.config.oom.fallback == "fail":
                raise OutOfMemory(f"{exc}; oom.fallback is fail") from None
            log.warning("engine.cpu_fallback", reason="the model does not fit in memory even alone")
            state.backoffs.append({"stage": "load", "fallback": "cpu"})
            return self.engine.on_cpu(request.model)
        if switch is not None:
            state.timings["model_switch"] = switch.seconds
            state.backoffs += switch.backoffs
            for _ in switch.backoffs:
                self.stats.oom_backoff(None)
        return None

    def transcribe(self, audio: Audio, request: Request, speech: list[SpeechChunk] | None, state: Run,
                   progress: Progress, engine: Engine | None = None) -> Transcript:
        """Transcribe (finding the speech first unless it is known), halving the batch size on
        out-of-memory; at 1, apply `oom.fallback`. `engine`: a CPU copy `ready` gave, else the
        resident engine."""
        governor = self.governor(request.model)
        fallback = engine
        engine = engine or self.engine
        while True:
            batch_size = governor.current if fallback is None else fallback.settings.batch_size
            error = None
            try:
                result = engine.transcribe(audio.samples, request, batch_size, progress, speech)
            except Exception as exc:
                raise_if_gpu_lost(exc)
                if not is_out_of_memory(exc) or fallback is not None:
                    raise
                error = first_line(exc)
                stage = "vad" if isinstance(exc, MemoryError) else "transcribe"
            if error is None:
                state.batch_size, state.device = batch_size, engine.settings.device
                if fallback is not None:
                    fallback.close()
                return result
            # Outside the except block: the traceback (and the GPU memory its frames hold) is gone.
            fallback = self._back_off(governor, request.model, stage, batch_size, error, state)
            engine = fallback or engine

    def _back_off(self, governor: BatchGovernor, model: ModelChoice | None, stage: str, batch_size: int,
                  error: str, state: Run) -> Engine | None:
        free = self.engine.free_memory()
        if stage == "vad" and self.engine.vad_retry_fits():
            smaller: int | None = batch_size  # the engine halved pyannote's own batch: retry with it
        else:
            smaller = governor.lower()
        step = {"stage": stage, "old_batch_size": batch_size, "new_batch_size": smaller,
                "free_memory_bytes": free, "error": error}
        state.backoffs.append(step)
        self.stats.oom_backoff(smaller)
        log.warning("engine.oom_backoff", **step)
        if smaller is not None:
            return None
        if self.config.oom.fallback == "fail":
            raise OutOfMemory(f"out of memory even at batch size 1 ({error}); oom.fallback is fail")
        log.warning("engine.cpu_fallback", reason="out of memory at batch size 1")
        state.backoffs.append({"stage": stage, "fallback": "cpu"})
        return self.engine.on_cpu(model)


def raise_if_gpu_lost(exc: BaseException) -> None:
    """A lost GPU is no job's fault and no retry helps: it ends the daemon (see oom.py)."""
    if is_gpu_lost(exc):
        raise GpuLost(f"{type(exc).__name__}: {exc}") from None


def first_line(exc: BaseException) -> str:
    """An error as one readable line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
