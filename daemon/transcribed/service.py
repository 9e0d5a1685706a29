"""The daemon: wiring, start-up order, signals and a clean stop.

Start: folders and this worker's lease, then the model (before the first job), then the
watcher, then READY=1. The consumer runs in its own thread; the main thread only waits for
signals. First SIGTERM/SIGINT: stop taking files and let the current job finish within
`daemon.shutdown_grace_seconds`, else put its file back in the inbox; a second signal does that
at once. Then exit 0. A lost GPU puts the file back and exits 3, so systemd or Docker restarts
the daemon on a fresh CUDA context.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType

from . import __version__, logs
from .config import Config
from .engine.base import Engine
from .errors import GpuLost
from .notify import Notifier
from .spool import Spool
from .stats import Stats
from .watcher import Arrivals, start_observer
from .worker import Worker

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_GPU_LOST = 3

log = logs.get_logger()


def build_engine(config: Config, kind: str = "whisperx") -> Engine:
    """The engine the config asks for, with every `auto` decided (and the reasons logged)."""
    if kind == "fake":
        from .engine.fake import FakeEngine

        return FakeEngine.from_environment()
    from .engine.hardware import choose, probe
    from .engine.models import resolve_model
    from .engine.whisperx_engine import WhisperXEngine, keep_libraries_offline_and_private

    keep_libraries_offline_and_private()
    resolved = resolve_model(config.model.name, config.model.download_dir)
    hardware = probe(config.model.device_index)
    settings = choose(config.model, hardware, resolved.path, resolved.source)
    log.info("engine.settings", **settings.describe(), reasons=settings.reasons,
             gpu=hardware.gpu_name, gpu_total_bytes=hardware.total_bytes,
             gpu_free_bytes=hardware.free_bytes)
    return WhisperXEngine(config, settings)


class Service:
    """One daemon process: a spool, a resident engine, a watcher and the consumer thread."""

    def __init__(self, config: Config, engine_kind: str = "whisperx") -> None:
        self.config = config
        self.engine_kind = engine_kind
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.signals = 0
        self.notifier = Notifier()
        self.consumer_error: BaseException | None = None
        self.stats = Stats()

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        log.info("daemon.starting", version=__version__, pid=os.getpid(),
                 config=str(self.config.source) if self.config.source else None)
        spool = Spool(self.config)
        spool.prepare()
        engine = build_engine(self.config, self.engine_kind)
        self._load(engine)
        arrivals = Arrivals(self.config.watch.settle_seconds)
        worker = Worker(self.config, spool, engine, arrivals, self.wake, on_beat=self._on_beat,
                        stats=self.stats)
        self.worker = worker
        observer = start_observer(self.config.folders.inbox, self.config.watch, arrivals, self.wake)
        lease = threading.Thread(target=self._renew_lease, args=(spool,), name="lease", daemon=True)
        lease.start()
        consumer = threading.Thread(target=self._consume, args=(worker,), name="consumer", daemon=True)
        self._install_signal_handlers()
        consumer.start()
        self.notifier.ready(self._status_line(worker))
        log.info("daemon.started", worker=spool.worker.name, inbox=str(self.config.folders.inbox))
        self._wait_for(consumer, worker)
        observer.stop()
        observer.join(timeout=5)
        code = self._exit_code()
        if not consumer.is_alive():
            spool.retire()
            engine.close()
        log.info("daemon.stopped", exit_code=code, jobs=worker.counts)
        if consumer.is_alive():
            # The abandoned job is still inside the engine (C++ code cannot be interrupted);
            # its file is back in the inbox, so end the process without waiting for it.
            sys.stdout.flush()
            os._exit(code)
        return code

    def _load(self, engine: Engine) -> None:
        settings = engine.settings
        log.info("model.loading", model=settings.model, path=settings.model_path,
                 device=settings.device, compute_type=settings.compute_type)
        started = time.monotonic()
        engine.load()
        seconds = round(time.monotonic() - started, 3)
        self.stats.model_loaded(settings.model, settings.device, seconds, settings.batch_size)
        log.info("model.loaded", model=settings.model, seconds=seconds,
                 device=settings.device, compute_type=settings.compute_type,
                 batch_size=settings.batch_size, cpu_threads=settings.cpu_threads)

    def _consume(self, worker: Worker) -> None:
        try:
            worker.run(self.stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread's exit code
            self.consumer_error = exc
            if not isinstance(exc, GpuLost):
                log.critical("daemon.consumer_crashed", error=f"{type(exc).__name__}: {exc}",
                             exc_info=True)
        finally:
            self.stop.set()

    def _wait_for(self, consumer: threading.Thread, worker: Worker) -> None:
        deadline = None
        while consumer.is_alive():
            consumer.join(timeout=0.2)
            if self.stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.config.daemon.shutdown_grace_seconds
                if self.signals:
                    log.info("daemon.stopping", grace_s=self.config.daemon.shutdown_grace_seconds,
                             current=str(worker.current.relpath) if worker.current else None)
                    self.notifier.stopping()
            if deadline is not None and (time.monotonic() >= deadline or self.signals >= 2):
                worker.abandon_current()
                consumer.join(timeout=1.0)
                return

    def _exit_code(self) -> int:
        if isinstance(self.consumer_error, GpuLost):
            return EXIT_GPU_LOST
        return EXIT_ERROR if self.consumer_error is not None else EXIT_OK

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags here: logging happens in the main loop.
        self.signals += 1
        self.stop.set()
        self.wake.set()

    def _on_beat(self) -> None:
        self.notifier.watchdog()

    def _renew_lease(self, spool: Spool) -> None:
        interval = self.config.daemon.lease_seconds / 4
        while not self.stop.wait(interval):
            try:
                spool.renew_lease()
            except OSError as exc:
                log.warning("spool.lease_renewal_failed", error=str(exc))

    def _status_line(self, worker: Worker) -> str:
        current = worker.current.relpath if worker.current else "idle"
        return (f"{current}; done {worker.counts['done']}, failed {worker.counts['failed']}")
