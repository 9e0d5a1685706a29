"""The daemon: wiring, start-up order, signals and a clean stop.

Start: folders and this worker's lease, then the model (before the first job), then the
watcher, then READY=1. The consumer runs in its own thread; the main thread only waits for
signals. First SIGTERM/SIGINT: stop taking files and let the current job finish within
`daemon.shutdown_grace_seconds`, else put its file back in the inbox; a second signal does that
at once. Then exit 0. A lost GPU puts the file back and exits 3, so systemd or Docker restarts
the daemon on a fresh CUDA context.

Reporting: the consumer's own heartbeat pings systemd's watchdog and (every REFRESH_SECONDS, or
at once when a job starts or ends) refreshes the STATUS= line and this daemon's status file, so
a consumer stuck in a CUDA call stops all three. The optional metrics listener serves /metrics
and /healthz from the same `Stats`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType

from . import __version__, logs
from .alignment import Aligner
from .config import Config
from .diarization import Diarizer
from .engine.base import Engine
from .errors import GpuLost
from .metrics import MetricsServer
from .notify import Notifier
from .spool import Spool
from .stats import Stats, describe
from .status import StatusFile, forget_dead
from .watcher import Arrivals, start_observer
from .worker import Worker

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_GPU_LOST = 3

#: An idle consumer still beats this often (it wakes up to do it).
IDLE_BEAT_SECONDS = 5.0

#: The STATUS= line and the status file are rewritten at most this often (and when a job starts or ends).
REFRESH_SECONDS = 2.0

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


def load_later_stages(config: Config, engine: Engine) -> tuple[Aligner, Diarizer]:
    """The alignment models for the languages known at start, and the diarization pipeline."""
    device = engine.settings.device
    aligner = Aligner(config, device)
    languages = [*config.align.preload, *(o.language for o in config.routes.values() if o.language)]
    if config.model.language:
        languages.append(config.model.language)
    if not getattr(engine, "multilingual", True) or engine.settings.model.endswith(".en"):
        languages.append("en")
    aligner.preload(languages)
    diarizer = Diarizer(config, device)
    diarizer.load()
    return aligner, diarizer


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
        self.stale_after = config.metrics.stale_after_seconds
        self.status_file: StatusFile | None = None
        self.metrics: MetricsServer | None = None
        self._next_refresh = 0.0
        self._last_refreshed: tuple[object, ...] = ()
        self._status_write_failed = False
        self._device_index = config.model.device_index

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        log.info("daemon.starting", version=__version__, pid=os.getpid(),
                 config=str(self.config.source) if self.config.source else None)
        spool = Spool(self.config)
        spool.prepare()
        try:
            self._start_reporting(spool)
            return self._serve(spool)
        finally:
            self._stop_reporting()

    def _serve(self, spool: Spool) -> int:
        engine = build_engine(self.config, self.engine_kind)
        self._load(engine)
        # The fake engine's text has no timing worth aligning: no later stages for it.
        aligner, diarizer = (load_later_stages(self.config, engine) if self.engine_kind != "fake"
                             else (None, None))
        arrivals = Arrivals(self.config.watch.settle_seconds)
        worker = Worker(self.config, spool, engine, arrivals, self.wake, on_beat=self._on_beat,
                        stats=self.stats, aligner=aligner, diarizer=diarizer,
                        beat_interval=self._idle_beat_interval())
        self.worker = worker
        observer = start_observer(self.config.folders.inbox, self.config.watch, arrivals, self.wake)
        lease = threading.Thread(target=self._renew_lease, args=(spool,), name="lease", daemon=True)
        lease.start()
        consumer = threading.Thread(target=self._consume, args=(worker,), name="consumer", daemon=True)
        self._install_signal_handlers()
        self.stats.running()
        consumer.start()
        self.notifier.ready(describe(self.stats.snapshot(self.stale_after)))
        self._refresh(force=True)
        log.info("daemon.started", worker=spool.worker.name, inbox=str(self.config.folders.inbox),
                 overlap=worker.prefetch is not None, batching=worker.batching)
        self._wait_for(consumer, worker)
        observer.stop()
        observer.join(timeout=5)
        code = self._exit_code()
        if not consumer.is_alive():
            spool.retire()
            engine.close()
        log.info("daemon.stopped", exit_code=code, jobs=dict(self.stats.jobs))
        if consumer.is_alive():
            # The abandoned job is still inside the engine (C++ code cannot be interrupted);
            # its file is back in the inbox, so end the process without waiting for it.
            self._stop_reporting()
            sys.stdout.flush()
            os._exit(code)
        return code

    def _idle_beat_interval(self) -> float:
        """How often an idle consumer beats: every 5 s, or often enough for systemd's watchdog."""
        interval = self.notifier.watchdog_interval
        return min(IDLE_BEAT_SECONDS, interval / 2) if interval else IDLE_BEAT_SECONDS

    def _load(self, engine: Engine) -> None:
        settings = engine.settings
        log.info("model.loading", model=settings.model, path=settings.model_path,
                 device=settings.device, compute_type=settings.compute_type)
        started = time.monotonic()
        engine.load()
        seconds = round(time.monotonic() - started, 3)
        self.stats.model_loaded(settings.model, settings.device, seconds, settings.batch_size)
        self._device_index = settings.device_index
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
                self._begin_stopping(worker)
            if deadline is not None and (time.monotonic() >= deadline or self.signals >= 2):
                worker.abandon_current()
                consumer.join(timeout=1.0)
                return
        if deadline is None:  # the consumer was quicker to stop than this loop was to notice
            self._begin_stopping(worker)

    def _begin_stopping(self, worker: Worker) -> None:
        self.stats.stopping()
        if self.signals:
            log.info("daemon.stopping", grace_s=self.config.daemon.shutdown_grace_seconds,
                     current=str(worker.current.relpath) if worker.current else None)
            self.notifier.stopping(describe(self.stats.snapshot(self.stale_after)))
        self._refresh(force=True)

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
        """The consumer's heartbeat (its own thread): watchdog ping, then STATUS= and status file."""
        self.notifier.watchdog()
        self._refresh(in_consumer=True)

    def _renew_lease(self, spool: Spool) -> None:
        interval = self.config.daemon.lease_seconds / 4
        while not self.stop.wait(interval):
            try:
                spool.renew_lease()
            except OSError as exc:
                log.warning("spool.lease_renewal_failed", error=str(exc))

    # --- reporting: STATUS=, the status file, /metrics and /healthz ------------------------------

    def _start_reporting(self, spool: Spool) -> None:
        state = self.config.folders.state
        forgotten = forget_dead(state)
        if forgotten:
            log.info("status.forgot_dead_daemons", workers=forgotten)
        self.status_file = StatusFile(state, spool.worker, metrics=self.config.metrics.listen)
        self.stats.loading()
        self._refresh(force=True)
        if self.config.metrics.listen is not None:
            self.metrics = MetricsServer(self.config.metrics.listen, self.stats, self.stale_after,
                                         spool.worker.name).start()

    def _stop_reporting(self) -> None:
        """Close the listener and remove the status file (idempotent; also before os._exit)."""
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.status_file is not None:
            with contextlib.suppress(OSError):
                self.status_file.remove()

    def _refresh(self, force: bool = False, in_consumer: bool = False) -> None:
        """Rewrite STATUS= and the status file when due: every REFRESH_SECONDS, or on a change of
        state, current file or job counts. GPU memory is sampled only from the consumer's thread:
        a CUDA call from the main thread could hang it along with a hung GPU."""
        snapshot = self.stats.snapshot(self.stale_after)
        changed = (snapshot["state"], snapshot["current_file"], tuple(snapshot["jobs"].values()))
        now = time.monotonic()
        if not force and now < self._next_refresh and changed == self._last_refreshed:
            return
        self._next_refresh, self._last_refreshed = now + REFRESH_SECONDS, changed
        if in_consumer and self._sample_gpu_memory():
            snapshot = self.stats.snapshot(self.stale_after)
        self.notifier.status(describe(snapshot))
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
        if self.stats.device != "cuda" or "torch" not in sys.modules:
            return False
        try:
            import torch

            free, total = torch.cuda.mem_get_info(self._device_index)
        except Exception:  # noqa: BLE001 - a failing GPU is the consumer's to report, not ours
            return False
        self.stats.gpu_memory(int(total - free), int(total))
        return True
