"""Several Whisper models in one process: which stay loaded, within the budget the catalogue
states (catalogue.py), the least recently used leaving first, and the model a job needs loaded
before its first model call.

Loading one never ends in an out-of-memory error for good: the models it needs room from are
evicted first, by their estimated sizes; and when loading still runs out of memory (the estimate
was short, another program took memory), the least recently used model left is evicted, the
caches emptied and the load tried again (`engine.oom_backoff`, stage `load`), as a transcription
halves its batch. When nothing is left to evict, `ModelDoesNotFit` says so and the pipeline
applies `oom.fallback` (this job on the CPU, or failed as out_of_memory).

Everything here runs on the consumer thread, like every other model call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import logs
from ..config.models import ModelChoice
from ..errors import GpuLost, OutOfMemory
from .base import Engine
from .oom import is_gpu_lost, is_out_of_memory

log = logs.get_logger()


class ModelDoesNotFit(OutOfMemory):
    """A model ran out of memory while loading with no other model left to evict."""


@dataclass
class Switch:
    """A model loaded for a job: what had to leave for it, and how long it all took."""

    model: ModelChoice
    evicted: list[ModelChoice] = field(default_factory=list)
    seconds: float = 0.0
    backoffs: list[dict[str, Any]] = field(default_factory=list)


class ResidentModels:
    """The Whisper models an engine holds, kept within the catalogue's budget (LRU)."""

    def __init__(self, engine: Engine, on_change: Callable[[ResidentModels], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.catalogue = engine.catalogue
        self.on_change = on_change
        self.clock = clock
        #: When each model was last used (the least recently used leaves first).
        self._last_used: dict[ModelChoice, float] = {}
        #: Models loaded for a job so far, and the seconds the last load (with its evictions) took.
        self.switches = 0
        self.last_switch_seconds: float | None = None
        if on_change is not None and self.catalogue.several:
            on_change(self)  # the reports know the resident set from the start

    def loaded(self) -> list[ModelChoice]:
        """The models loaded now, the least recently used first."""
        models = self.engine.loaded_models()
        return sorted(models, key=lambda m: (self._last_used.get(m, 0.0), models.index(m)))

    def describe(self) -> dict[str, Any]:
        """For the reports: the models loaded (least recently used first), their estimated bytes,
        the budget, the loads for a job so far and the seconds the last one took."""
        return {"resident": [m.describe() for m in self.loaded()], "resident_bytes": self.resident_bytes(),
                "budget_bytes": self.catalogue.budget_bytes, "switches": self.switches,
                "last_switch_s": self.last_switch_seconds}

    def resident_bytes(self) -> int:
        """The estimated memory of the models loaded now."""
        return sum(self.catalogue.estimate(m) for m in self.engine.loaded_models())

    def ensure(self, model: ModelChoice | None) -> Switch | None:
        """Make `model` (None: the default) loaded, evicting others first where the budget asks
        or loading runs out of memory; None when it was loaded already."""
        want = model or self.catalogue.default
        if want in self.engine.loaded_models():
            self._last_used[want] = self.clock()
            self._tell()
            return None
        started = self.clock()
        switch = Switch(want)
        need = self.catalogue.estimate(want)
        for old in self.loaded():
            if self.resident_bytes() + need <= self.catalogue.budget_bytes:
                break
            self._evict(old, switch, reason="the budget")
        self._load(want, switch)
        self._last_used[want] = self.clock()
        switch.seconds = round(self.clock() - started, 3)
        self.switches += 1
        self.last_switch_seconds = switch.seconds
        log.info("model.switched", model=want.describe(), evicted=[m.describe() for m in switch.evicted],
                 seconds=switch.seconds, resident=[m.describe() for m in self.loaded()],
                 resident_bytes=self.resident_bytes(), budget_bytes=self.catalogue.budget_bytes)
        self._tell()
        return switch

    def _tell(self) -> None:
        if self.on_change is not None and self.catalogue.several:
            self.on_change(self)

    def _load(self, want: ModelChoice, switch: Switch) -> None:
        """Load, evicting the least recently used on out-of-memory until it fits or none is left."""
        while True:
            error = None
            try:
                self.engine.load_model(want)
            except Exception as exc:
                if is_gpu_lost(exc):
                    raise GpuLost(f"{type(exc).__name__}: {exc}") from None
                if not is_out_of_memory(exc):
                    raise
                error = _first_line(exc)
            if error is None:
                return
            # Outside the except block: the traceback (and the memory its frames hold) is gone.
            victims = self.loaded()
            step: dict[str, Any] = {"stage": "load", "model": want.describe(),
                                    "evicted": victims[0].describe() if victims else None,
                                    "error": error}
            if victims:
                self._evict(victims[0], switch, reason="out of memory while loading")
            step["free_memory_bytes"] = self.engine.free_memory()
            switch.backoffs.append(step)
            log.warning("engine.oom_backoff", **step)
            if not victims:
                raise ModelDoesNotFit(f"the model {want.describe()} ran out of memory while loading, "
                                      f"with no other model left to make room ({error})")

    def _evict(self, model: ModelChoice, switch: Switch, reason: str) -> None:
        self.engine.unload_model(model)
        self._last_used.pop(model, None)
        switch.evicted.append(model)
        log.info("model.evicted", model=model.describe(), reason=reason, for_model=switch.model.describe())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
