"""Giving the GPU back when idle (`model.idle_unload_seconds`, off by default).

After that long with nothing to do, the consumer releases every model (Whisper and its VAD, the
alignment models, the diarization pipeline) and empties the CUDA caches, so another program can
have the memory; the next file loads them again before it starts. All of it runs on the consumer
thread, like every other CUDA call of the daemon.

While unloaded the daemon is healthy (/healthz 200, state `unloaded`): its consumer keeps beating
from the idle wait. A reload runs on a thread of its own while the consumer keeps beating, so the
watchdog and /healthz do not take a slow load for a stuck consumer; a load still going after
`metrics.stale_after_seconds` stops the beats, and then it is reported stuck like any other hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import logs
from ..config import Config
from ..engine.base import Engine
from ..operations.memory import return_freed_heap, rss_bytes
from ..operations.stats import Stats
from ..transcription.alignment import Aligner
from ..transcription.diarization import Diarizer

log = logs.get_logger()


class Residency:
    """Whether the models are loaded, and the idle clock that unloads them."""

    def __init__(self, config: Config, engine: Engine, stats: Stats, aligner: Aligner | None = None,
                 diarizer: Diarizer | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = config.model.idle_unload_seconds
        self.stale_after = config.metrics.stale_after_seconds
        self.engine = engine
        self.stats = stats
        self.aligner = aligner
        self.diarizer = diarizer
        self.clock = clock
        self.resident = True
        self._idle_since: float | None = None
        self._aligner_languages: list[str] = []
        self._diarizer_loaded = False

    def idle(self, nothing_waits: bool, after: float | None = None) -> float | None:
        """Called from the consumer's idle wait. Unloads the models once they have been idle long
        enough (`after`, else `model.idle_unload_seconds`: a paused daemon's own delay); returns
        the seconds until that is due (for the wait; 0 right after unloading, so that the reports
        say so at once), or None."""
        after = after if after is not None else self.after
        if after is None or not self.resident or not nothing_waits:
            self._idle_since = None
            return None
        now = self.clock()
        if self._idle_since is None:
            self._idle_since = now
        idle_for = now - self._idle_since
        if idle_for < after:
            return after - idle_for
        self.unload(idle_for)
        return 0.0

    def busy(self) -> None:
        """A job begins: the idle clock starts again after it."""
        self._idle_since = None

    def unload(self, idle_for: float = 0.0) -> None:
        """Release every model and the memory it held; `model.unloaded` says how much."""
        rss_before, gpu_before = rss_bytes(), self._gpu_used()
        if self.aligner is not None:
            self._aligner_languages = self.aligner.release()
        if self.diarizer is not None:
            self._diarizer_loaded = self.diarizer.release()
        self.engine.unload()  # last: it collects the garbage and empties the CUDA caches
        return_freed_heap()
        self.resident = False
        rss_after, gpu_after = rss_bytes(), self._gpu_used()
        self.stats.models_unloaded()
        log.info("model.unloaded", idle_s=round(idle_for, 1), model=self.engine.settings.model,
                 **_freed("rss", rss_before, rss_after), **_freed("gpu_used", gpu_before, gpu_after),
                 aligners=self._aligner_languages, diarization=self._diarizer_loaded)

    def ensure_loaded(self, beat: Callable[[], None], beat_every: float) -> float | None:
        """Load the models again if they were unloaded; their seconds, or None if they were
        resident. The consumer beats meanwhile (see the module's docstring)."""
        self.busy()
        if self.resident:
            return None
        settings = self.engine.settings
        log.info("model.loading", model=settings.model, path=settings.model_path,
                 device=settings.device, compute_type=settings.compute_type,
                 reason="a file arrived after the idle unload")
        self.stats.models_reloading()
        started = self.clock()
        _run_beating(self._load_all, beat, beat_every, stop_beating_after=self.stale_after)
        seconds = round(self.clock() - started, 3)
        self.resident = True
        self.stats.models_reloaded()
        log.info("model.loaded", model=settings.model, seconds=seconds, device=settings.device,
                 compute_type=settings.compute_type, reason="reload after the idle unload",
                 rss_bytes=rss_bytes())
        return seconds

    def _load_all(self) -> None:
        self.engine.load()
        if self.aligner is not None and self._aligner_languages:
            self.aligner.reload(self._aligner_languages)
        if self.diarizer is not None and self._diarizer_loaded:
            self.diarizer.load()

    def _gpu_used(self) -> int | None:
        try:
            memory = self.engine.memory_in_use()
        except Exception:  # noqa: BLE001 - a figure for the log only; a failing GPU shows elsewhere
            return None
        return None if memory is None else memory[0]


def _freed(name: str, before: int | None, after: int | None) -> dict[str, Any]:
    """`<name>_before_bytes`, `<name>_after_bytes` and `<name>_freed_bytes`, where known."""
    if before is None or after is None:
        return {}
    return {f"{name}_before_bytes": before, f"{name}_after_bytes": after,
            f"{name}_freed_bytes": before - after}


def _run_beating(work: Callable[[], None], beat: Callable[[], None], beat_every: float,
                 stop_beating_after: float) -> None:
    """Run `work` on a thread of its own, beating every `beat_every` seconds until it ends (or
    until `stop_beating_after` seconds have passed); its exception is raised here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consumer thread below
            failure.append(exc)

    reloader = threading.Thread(target=run, name="model-reloader", daemon=True)
    started = time.monotonic()
    reloader.start()
    while reloader.is_alive():
        reloader.join(timeout=beat_every)
        if reloader.is_alive() and time.monotonic() - started < stop_beating_after:
            beat()
    if failure:
        raise failure[0]
