"""What a running daemon tells the world: systemd's STATUS= line and watchdog, the status file in
the state folder, and /metrics and /healthz, all from one `Stats`.

The consumer's own heartbeat drives them (`on_beat`): it pings the watchdog and, every
REFRESH_SECONDS or at once when the state, the current file or the job counts change, rewrites
STATUS= and the status file. So a consumer stuck in a CUDA call stops all three. GPU memory is
sampled through the engine, and only from the consumer's thread: a CUDA call from another thread
could hang along with a hung GPU.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from .. import logs
from ..config import Config
from ..engine.base import Engine
from ..spool.workers import WorkerId
from .listener import Listener
from .notify import Notifier
from .stats import Stats
from .status_file import StatusFile, forget_dead
from .status_line import describe
from .status_page import StatusPage

#: The STATUS= line and the status file are rewritten at most this often (and on a change).
REFRESH_SECONDS = 2.0

log = logs.get_logger()


class Reporter:
    """STATUS=, the watchdog, the status file and the metrics listener of one daemon."""

    def __init__(self, config: Config, stats: Stats, notifier: Notifier) -> None:
        self.config = config
        self.stats = stats
        self.notifier = notifier
        self.stale_after = config.metrics.stale_after_seconds
        #: Set once the model is loaded: GPU memory is sampled through it.
        self.engine: Engine | None = None
        self.status_file: StatusFile | None = None
        self.metrics: Listener | None = None
        self._next_refresh = 0.0
        self._last_refreshed: tuple[object, ...] = ()
        self._status_write_failed = False

    def start(self, state: Path, worker: WorkerId) -> None:
        """Forget dead daemons' status files, write ours, and open the metrics listener."""
        forgotten = forget_dead(state)
        if forgotten:
            log.info("status.forgot_dead_daemons", workers=forgotten)
        self.status_file = StatusFile(state, worker, metrics=self.config.metrics.listen)
        self.stats.loading()
        self.refresh(force=True)
        if self.config.metrics.listen is not None:
            self.metrics = Listener(self.config.metrics.listen, self.stats, self.stale_after,
                                         worker.name, StatusPage(self.config, worker.name)).start()

    def stop(self) -> None:
        """Close the listener and remove the status file (idempotent; also before os._exit)."""
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.status_file is not None:
            with contextlib.suppress(OSError):
                self.status_file.remove()

    def ready(self) -> None:
        self.notifier.ready(describe(self.snapshot()))
        self.refresh(force=True)

    def stopping(self, announce: bool) -> None:
        """The daemon stops: the state in every report, and STOPPING=1 when a signal asked."""
        self.stats.stopping()
        if announce:
            self.notifier.stopping(describe(self.snapshot()))
        self.refresh(force=True)

    def on_beat(self) -> None:
        """The consumer's heartbeat (its own thread): watchdog ping, then STATUS= and status file."""
        self.notifier.watchdog()
        self.refresh(in_consumer=True)

    def snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot(self.stale_after)

    def refresh(self, force: bool = False, in_consumer: bool = False) -> None:
        """Rewrite STATUS= and the status file when due."""
        snapshot = self.snapshot()
        changed = (snapshot["state"], snapshot["current_file"], tuple(snapshot["jobs"].values()),
                   snapshot["storage"].get("condition"), str(snapshot["paused"]))
        now = time.monotonic()
        if not force and now < self._next_refresh and changed == self._last_refreshed:
            return
        self._next_refresh, self._last_refreshed = now + REFRESH_SECONDS, changed
        if in_consumer and self._sample_gpu_memory():
            snapshot = self.snapshot()
        self.notifier.status(describe(snapshot))
        self._write_status_file(snapshot)

    def _write_status_file(self, snapshot: dict[str, Any]) -> None:
        if self.status_file is None:
            return
        try:
            self.status_file.write(snapshot)
        except (OSError, ValueError) as exc:
            if not self._status_write_failed:
                log.warning("status.write_failed", path=str(self.status_file.path), error=str(exc))
            self._status_write_failed = True
        else:
            self._status_write_failed = False

    def _sample_gpu_memory(self) -> bool:
        if self.engine is None:
            return False
        try:
            memory = self.engine.memory_in_use()
        except Exception:  # noqa: BLE001 - a failing GPU is the consumer's to report, not ours
            return False
        if memory is None:
            return False
        self.stats.gpu_memory(*memory)
        return True
