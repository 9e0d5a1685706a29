"""A fake engine for fast tests and demos: the whole Engine Protocol, deterministic text, scriptable
faults.

Audio is still decoded for real before it gets here, so bad input fails for real. What it
replaces is only the model: it answers "fake transcript of NAME, 3.2 s" at once (or after
`delay` seconds, or `delays[NAME]`), and can be told to run out of memory above a batch size, to
lose the GPU, to raise for a given file, to kill its own process with SIGKILL on a given file
(a file that crashes the daemon), or to hang on one (a stuck consumer), so the real back-off,
failure, recovery and health handling run around it. `model_bytes` of real memory stand for its
weights, which `unload` (the idle unload) gives back and `load` takes again. Like the real
engine, `transcribe` is speech finding plus one `transcribe_speech` call, so cross-file batching
and the prefetch run the same consumer code against it.
Several models (a route's, library's or sidecar's `model`) are names in its catalogue: loading
one takes `model_load_seconds[name]` and may be scripted to run out of memory, and every model
call says which model it ran with (`models_used`), so the residency and the order of jobs run
the real code around it.
`transcribed run --engine fake` takes these settings as JSON from $TRANSCRIBED_FAKE.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Config
from ..config.models import ModelChoice
from . import packing
from .base import EngineSettings, Progress, Request, SpeechChunk, SpeechOf, Transcript
from .catalogue import Catalogue, memory_budget
from .hardware import Hardware

SAMPLE_RATE = 16_000


@dataclass
class FakeEngine:
    """Scripted stand-in for WhisperXEngine."""

    settings: EngineSettings = field(default_factory=lambda: EngineSettings(
        "fake", "", "fake", "cpu", 0, "int8", 4, 1, {"engine": "fake"}))
    #: Seconds each transcription takes (to test shutdown and crashes mid-job).
    delay: float = 0.0
    #: Raise CTranslate2's CUDA out-of-memory error when asked for a larger batch than this.
    oom_above_batch: int | None = None
    #: File name -> message of a RuntimeError raised when that file is transcribed.
    fail: dict[str, str] = field(default_factory=dict)
    #: Raise a CUDA "unknown error" (a lost GPU) for files with these names.
    lose_gpu_on: tuple[str, ...] = ()
    #: File name -> seconds that file takes (instead of `delay`).
    delays: dict[str, float] = field(default_factory=dict)
    #: Kill the whole process with SIGKILL while transcribing files with these names.
    crash_on: tuple[str, ...] = ()
    #: Never return (and never report progress) while transcribing files with these names.
    hang_on: tuple[str, ...] = ()
    #: Every model call: (the files it carried, joined by "+", batch size).
    calls: list[tuple[str, int]] = field(default_factory=list)
    #: Every packed window (transcribe_packed): the files it carried, joined by "+".
    packed_windows: list[str] = field(default_factory=list)
    #: Files whose speech was found ahead (by the prefetch) and handed in.
    given_speech: list[str] = field(default_factory=list)
    multilingual: bool = True
    #: Seconds `load` takes (a large model loading: to test a stop during start-up).
    load_seconds: float = 0.0
    #: Find the configured model first, as the real engine does (bundled, a folder, the cache, or
    #: a download from the hub): for the tests of downloading; the fake never loads it.
    find_model: bool = False
    #: Bytes of memory `load` takes and `unload` gives back (real pages, so the RSS shows them).
    model_bytes: int = 0
    #: Fail every `load` after the first (a GPU another program filled while the models were out).
    fail_reload: bool = False
    loaded: bool = False
    #: How often `load` and `unload` ran.
    loads: int = 0
    unloads: int = 0
    #: The models it may run (`catalogue`; None: its own settings' model alone; `for_config` sets
    #: the config's).
    models: Catalogue | None = field(default=None, repr=False)
    #: Seconds loading each model (by name) takes with `load_model`.
    model_load_seconds: dict[str, float] = field(default_factory=dict)
    #: Models (by name) whose loading runs out of memory: always, or while another model is loaded.
    oom_loading: tuple[str, ...] = ()
    oom_loading_beside: tuple[str, ...] = ()
    #: Every model loaded and unloaded with load_model/unload_model, and the model of each call.
    model_loads: list[str] = field(default_factory=list)
    model_unloads: list[str] = field(default_factory=list)
    models_used: list[str] = field(default_factory=list)
    _models: list[ModelChoice] = field(default_factory=list, repr=False)
    _weights: np.ndarray | None = field(default=None, repr=False)
    _released: bool = field(default=False, repr=False)

    @property
    def catalogue(self) -> Catalogue:
        if self.models is None:
            self.models = Catalogue.single(self.settings)
        return self.models

    @catalogue.setter
    def catalogue(self, catalogue: Catalogue) -> None:
        self.models = catalogue

    @classmethod
    def from_environment(cls) -> FakeEngine:
        """Build one from $TRANSCRIBED_FAKE (JSON with the fields above)."""
        options: dict[str, Any] = json.loads(os.environ.get("TRANSCRIBED_FAKE", "{}") or "{}")
        for key in ("lose_gpu_on", "crash_on", "hang_on", "oom_loading", "oom_loading_beside"):
            if key in options:
                options[key] = tuple(options[key])
        return cls(**options)

    def for_config(self, config: Config, cpu_limit: int) -> FakeEngine:
        """Every model `config` names in its catalogue: the default one with this engine's own
        settings (model "fake"), each other as those settings under its name (sized by the name:
        engine/models.py's table); and the budget, as the real engine decides it."""
        settings = {choice: dataclasses.replace(
            self.settings, model=choice.name, model_path="",
            compute_type=self.settings.compute_type if choice.compute_type == "auto" else choice.compute_type)
            for choice in config.named_models()}
        settings[config.default_model] = self.settings
        self.catalogue = Catalogue(config.default_model, settings)
        self.catalogue.budget_bytes, self.catalogue.budget_reason = memory_budget(
            config, self.catalogue, Hardware(), cpu_limit)
        return self

    def load(self) -> None:
        time.sleep(self.load_seconds)
        if self.fail_reload and self.loads:
            raise RuntimeError("CUDA failed with error out of memory (the fake's scripted reload failure)")
        if self.model_bytes:
            self._weights = np.ones(self.model_bytes, dtype=np.uint8)  # touched: resident
        self.loaded, self._released = True, False
        self.loads += 1
        self._models = [self.catalogue.default]
        self.catalogue.multilingual[self.catalogue.default] = self.multilingual

    def unload(self) -> None:
        self._weights = None
        self.loaded, self._released = False, True
        self.unloads += 1
        self._models = []

    def loaded_models(self) -> list[ModelChoice]:
        return list(self._models)

    def load_model(self, model: ModelChoice) -> None:
        if model in self._models:
            return
        time.sleep(self.model_load_seconds.get(model.name, 0.0))
        if model.name in self.oom_loading or (model.name in self.oom_loading_beside and self._models):
            raise RuntimeError("CUDA failed with error out of memory (the fake's scripted load)")
        self._models.append(model)
        self.model_loads.append(model.name)

    def unload_model(self, model: ModelChoice) -> None:
        if model in self._models:
            self._models.remove(model)
            self.model_unloads.append(model.name)

    def _model_of(self, request: Request) -> str:
        """The request's model, which must be loaded (as the real engine requires)."""
        model = request.model or self.catalogue.default
        if model not in self._models and self.loaded:
            raise RuntimeError(f"the model {model.describe()} is not loaded")
        return model.name

    def find_speech(self, samples: np.ndarray) -> list[SpeechChunk]:
        """All of the audio as one chunk, or none when it is silent."""
        if _silent(samples):
            return []
        return [SpeechChunk(start=0.0, end=round(len(samples) / SAMPLE_RATE, 3))]

    def language_of(self, samples: np.ndarray, speech: list[SpeechChunk],
                    request: Request) -> tuple[str, float | None]:
        """The given language, else English (a fake detection, with no probability)."""
        return request.language or "en", None

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress, speech: list[SpeechChunk] | None = None) -> Transcript:
        if speech is not None:
            self.given_speech.append(request.file)
        else:
            speech = self.find_speech(samples)
        return self.transcribe_speech([SpeechOf(samples, speech, request.file)], request,
                                      batch_size, progress)[0]

    def transcribe_speech(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress) -> list[Transcript]:
        """One scripted model call for the files of `items`; each gets its own fake text."""
        if self._released:
            raise RuntimeError("the fake model was unloaded and not loaded again")
        self.models_used.append(self._model_of(request))
        self.calls.append(("+".join(item.file for item in items), batch_size))
        for item in items:
            self._script(item.file, batch_size)
        self._work(sum(self.delays.get(item.file, self.delay) for item in items), progress)
        return [self._text(item, request) for item in items]

    def transcribe_packed(self, items: list[SpeechOf], request: Request, batch_size: int,
                          progress: Progress, gap_seconds: float, max_files: int) -> list[Transcript | None]:
        """The real layout (packing.py) over a scripted decode: one call per window; each file in
        a window gets its text alone, saying how many files shared the window; None for the rest."""
        if self._released:
            raise RuntimeError("the fake model was unloaded and not loaded again")
        self.models_used.append(self._model_of(request))
        results: list[Transcript | None] = [None] * len(items)
        for window in packing.layout([item.speech for item in items], gap_seconds, max_files):
            names = [items[file].file for file in window.files]
            self.packed_windows.append("+".join(names))
            for name in names:
                self._script(name, batch_size)
            self._work(sum(self.delays.get(name, self.delay) for name in names), progress)
            for file in window.files:
                results[file] = Transcript(**self._text(items[file], request), packed_files=len(window.files))
        return results

    def _script(self, file: str, batch_size: int) -> None:
        """The faults scripted for `file`."""
        if file in self.lose_gpu_on:
            raise RuntimeError("CUDA failed with error unknown error")
        if self.oom_above_batch is not None and batch_size > self.oom_above_batch:
            raise RuntimeError("CUDA failed with error out of memory")
        if file in self.fail:
            raise RuntimeError(self.fail[file])
        if file in self.crash_on:
            os.kill(os.getpid(), signal.SIGKILL)
        while file in self.hang_on:
            time.sleep(1)

    def _text(self, item: SpeechOf, request: Request) -> Transcript:
        language = request.language or "en"
        if not item.speech:
            return Transcript(segments=[], language=language)
        seconds = len(item.samples) / SAMPLE_RATE
        name = item.file.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return Transcript(segments=[{"start": 0.0, "end": round(seconds, 3),
                                     "text": f" fake transcript of {name}, {seconds:.1f} s"}],
                          language=language)

    def _work(self, delay: float, progress: Progress) -> None:
        steps = max(1, int(delay / 0.1))
        for step in range(steps):
            if delay:
                time.sleep(delay / steps)
            progress(100.0 * (step + 1) / steps)

    def vad_retry_fits(self) -> bool:
        return False

    def free_memory(self) -> int | None:
        return None

    def memory_in_use(self) -> tuple[int, int] | None:
        return None

    def on_cpu(self, model: ModelChoice | None = None) -> FakeEngine:
        choice = model or self.catalogue.default
        name = self.catalogue.settings_for(choice).model
        settings = EngineSettings(name, "", "fake", "cpu", 0, "int8", 1, 1, {"device": "fallback"})
        return FakeEngine(settings=settings, delay=self.delay, fail=self.fail, calls=self.calls,
                          delays=self.delays, crash_on=self.crash_on, hang_on=self.hang_on,
                          given_speech=self.given_speech, loaded=True, models_used=self.models_used,
                          models=Catalogue.single(settings, choice), _models=[choice])

    def close(self) -> None:
        self.loaded = False


def _silent(samples: np.ndarray) -> bool:
    return bool(max(samples.max(initial=0.0), -samples.min(initial=0.0)) <= 1e-3)  # no |x| copy
