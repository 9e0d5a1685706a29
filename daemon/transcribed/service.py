"""The daemon: wiring, start-up order, signals and a clean stop.

Start: signal handlers first (a stop asked at any moment is honoured), then the folders and this
worker's lease, the reports (operations/reporter.py), the model (loaded on a thread of its own, so that a
SIGTERM during a long load still stops the daemon at once: nothing is claimed yet, so nothing can
be lost), the watcher, READY=1. The consumer runs in its own thread; the main thread only waits
for signals. First SIGTERM/SIGINT: stop taking files and let the current job finish within
`daemon.shutdown_grace_seconds`, else put its file back in the inbox; a second signal does that
at once. Then exit 0. A lost GPU puts the files back and exits 3, so systemd or Docker restarts
the daemon on a fresh CUDA context.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING

from . import __version__, logs
from .config import Config
from .config.checks import parse_umask
from .config.job_checks import check_english_only_models
from .consumer.loop import Consumer
from .engine.base import Engine
from .errors import GpuLost
from .hooks import Hooks
from .intake.arrivals import Arrivals
from .intake.source import InboxSource
from .intake.watcher import start_observer
from .library.job import library_routes
from .library.source import LibrarySource
from .operations.notify import Notifier
from .operations.reporter import Reporter
from .operations.stats import Stats
from .retention import Keeper
from .spool.folder import WorkFolder
from .spool.seam import JobSource, Spool
from .spool.storage import Storage, floor_bytes
from .spool.workers import WorkerId
from .transcription.alignment import Aligner, languages_to_preload, refuse_unalignable
from .transcription.audio import max_audio_seconds, memory_limit
from .transcription.diarization import Diarizer

if TYPE_CHECKING:
    from .engine.models import ResolvedModel

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_GPU_LOST = 3

#: An idle consumer still beats this often (it wakes up to do it).
IDLE_BEAT_SECONDS = 5.0

log = logs.get_logger()


def build_engine(config: Config, kind: str = "whisperx") -> Engine:
    """The engine the config asks for, with every `auto` decided (and the reasons logged)."""
    from .engine.environment import keep_libraries_offline_and_private

    keep_libraries_offline_and_private()  # before the model is found: the hub client reads it
    cpu_limit = memory_limit()[0]
    if kind == "fake":
        from .engine.fake import FakeEngine

        fake = FakeEngine.from_environment().for_config(config, cpu_limit)
        if fake.find_model:
            found = find_model(config)
            fake.settings = replace(fake.settings, model=found.name, model_path=str(found.path),
                                    model_source=found.source)
            fake.catalogue.settings[config.default_model] = fake.settings
        _state_the_budget(fake)
        return fake
    from .engine.catalogue import build_catalogue
    from .engine.hardware import probe
    from .engine.whisperx_engine import WhisperXEngine

    hardware = probe(config.model.device_index)
    catalogue = build_catalogue(config, hardware, lambda name: find_model(config, name), cpu_limit)
    settings = catalogue.settings_for(None)
    for choice, chosen in catalogue.settings.items():
        log.info("engine.settings", **chosen.describe(), reasons=chosen.reasons,
                 gpu=hardware.gpu_name, gpu_total_bytes=hardware.total_bytes,
                 gpu_free_bytes=hardware.free_bytes, **({} if choice == catalogue.default else
                                                        {"for_model": choice.describe()}))
    check_english_only_models(config, lambda choice: choice != catalogue.default
                              and catalogue.english_only(choice))  # the default's: once loaded
    engine = WhisperXEngine(config, settings, catalogue)
    _state_the_budget(engine)
    return engine


def _state_the_budget(engine: Engine) -> None:
    """With several models: the budget their resident copies share, and each one's estimate."""
    if engine.catalogue.several:
        log.info("models.budget", **engine.catalogue.describe())


def find_model(config: Config, name: str | None = None) -> ResolvedModel:
    """A configured model's folder (None: `model.name`'s), downloaded first when it is a named
    model not in the cache (with `model.download_progress` every `log.progress_seconds`); logged
    as `model.resolved`."""
    from .engine.models import resolve_model

    resolved = resolve_model(name or config.model.name, config.model.download_dir,
                             progress_seconds=config.log.progress_seconds)
    log.info("model.resolved", **resolved.describe())
    return resolved


def load_later_stages(config: Config, engine: Engine) -> tuple[Aligner, Diarizer]:
    """The alignment models for the languages known at start where alignment may run, and the
    diarization pipeline where the configuration asks for speakers anywhere (a sidecar that
    asks loads it later). Alignment that cannot work is refused here, naming the key."""
    device = engine.settings.device
    aligner = Aligner(config, device)
    refuse_unalignable(config, aligner)
    english_only = not engine.multilingual or engine.settings.model.endswith(".en")
    aligner.preload(languages_to_preload(config, english_only))
    diarizer = Diarizer(config, device)
    diarizer.load_at_start()
    return aligner, diarizer


def refuse_what_the_model_cannot_do(config: Config, engine: Engine) -> None:
    """Another language than English, or a translation, asked of an English-only model (known
    once it is loaded, or from its vocabulary) is refused, naming the key (config/job_checks.py)."""
    check_english_only_models(config, engine.catalogue.english_only, engine.settings.model)


@dataclass
class Loaded:
    """The resident models, ready for the first job."""

    engine: Engine
    aligner: Aligner | None
    diarizer: Diarizer | None


class Service:
    """One daemon process: a spool and its job sources, a resident engine, a watcher and the
    consumer thread."""

    def __init__(self, config: Config, engine_kind: str = "whisperx") -> None:
        self.config = config
        self.engine_kind = engine_kind
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.signals = 0
        self.consumer_error: BaseException | None = None
        self.stats = Stats()
        self.notifier = Notifier()
        self.reporter = Reporter(config, self.stats, self.notifier)

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        self._install_signal_handlers()
        os.umask(parse_umask(self.config.daemon.umask))  # before any file or folder is made
        max_audio, max_audio_from = max_audio_seconds(self.config.input.max_audio_seconds)
        floor, floor_from = floor_bytes(self.config.folders.min_free_bytes, max_audio)
        log.info("daemon.starting", version=__version__, pid=os.getpid(),
                 config=str(self.config.source) if self.config.source else None,
                 umask=f"{parse_umask(self.config.daemon.umask):04o}",
                 max_audio_seconds=max_audio, max_audio_from=max_audio_from,
                 min_free_bytes=floor, min_free_from=floor_from)
        worker_id = WorkerId.of_this_process()
        if self.config.libraries:
            self.config = library_routes(self.config)  # each library is a route over its folder
        storage = Storage(self.config.folders.state, floor)
        self.hooks = Hooks(self.config, worker_id, storage)  # its records are written by the finisher
        self.hooks.tally.stats = self.stats  # what waits, for the status page
        spool = WorkFolder(self.config, worker_id, before_moves=self.hooks.before_moves,
                           before_plan=self.hooks.before_plan, storage=storage)
        spool.prepare()
        arrivals = Arrivals(self.config.watch.settle_seconds)
        sources: list[JobSource] = [InboxSource(self.config, spool, arrivals, self.stats)]
        if self.config.libraries:
            sources.append(LibrarySource(self.config, spool, self.stats))
        if self.config.objectstore.enabled:  # imported only here: boto3 and nats-py are optional
            from .objectstore.start import open_source

            sources.append(open_source(self.config, spool, self.stats, self.hooks.record_elsewhere))
        for source in sources:
            source.prepare()
        try:
            self.reporter.start(self.config.folders.state, spool.worker)
            loaded = self._load_unless_stopped()
            if loaded is None:
                return self._stopped_during_start(spool)
            return self._serve(spool, sources, arrivals, loaded)
        finally:
            self.reporter.stop()

    # --- start ------------------------------------------------------------------------------------

    def _load_unless_stopped(self) -> Loaded | None:
        """Build and load the models on a thread of their own while this one waits for a signal;
        None if one came first (the loading thread is left to the process's end)."""
        result: list[Loaded | BaseException] = []

        def load() -> None:
            try:
                result.append(self._load())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
                result.append(exc)

        loader = threading.Thread(target=load, name="model-loader", daemon=True)
        loader.start()
        while loader.is_alive() and not self.stop.is_set():
            loader.join(timeout=0.1)
        if self.stop.is_set():
            return None
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    def _load(self) -> Loaded:
        engine = build_engine(self.config, self.engine_kind)
        settings = engine.settings
        log.info("model.loading", model=settings.model, path=settings.model_path,
                 device=settings.device, compute_type=settings.compute_type)
        started = time.monotonic()
        engine.load()
        refuse_what_the_model_cannot_do(self.config, engine)
        seconds = round(time.monotonic() - started, 3)
        self.stats.model_loaded(settings.model, settings.device, seconds, settings.batch_size)
        log.info("model.loaded", model=settings.model, seconds=seconds,
                 device=settings.device, compute_type=settings.compute_type,
                 batch_size=settings.batch_size, cpu_threads=settings.cpu_threads)
        # The fake engine's text has no timing worth aligning: no later stages for it.
        if self.engine_kind == "fake":
            return Loaded(engine, None, None)
        return Loaded(engine, *load_later_stages(self.config, engine))

    def _stopped_during_start(self, spool: Spool) -> int:
        """A signal came while the models loaded: nothing was claimed, so stop at once."""
        log.info("daemon.stopping", grace_s=0.0, current=None, during="start-up")
        self.notifier.stopping("stopping during start-up")
        spool.retire()
        log.info("daemon.stopped", exit_code=EXIT_OK, jobs={})
        self._exit_now(EXIT_OK)  # the loading thread may be deep in C++ code: do not wait for it
        return EXIT_OK

    # --- serve ------------------------------------------------------------------------------------

    def _serve(self, spool: Spool, sources: list[JobSource], arrivals: Arrivals, loaded: Loaded) -> int:
        self.reporter.engine = loaded.engine
        consumer = Consumer(self.config, spool, sources, loaded.engine, arrivals, self.wake,
                            on_beat=self.reporter.on_beat, stats=self.stats, aligner=loaded.aligner,
                            diarizer=loaded.diarizer, beat_interval=self._idle_beat_interval(),
                            hooks=self.hooks)
        observer = start_observer(self.config.folders.inbox, self.config.watch, arrivals, self.wake)
        lease = threading.Thread(target=self._renew_lease, args=(spool,), name="lease", daemon=True)
        lease.start()
        thread = threading.Thread(target=self._consume, args=(consumer,), name="consumer", daemon=True)
        self.stats.running()
        self.hooks.start()  # before the consumer: deliveries left pending by an earlier run go first
        keeper = Keeper(self.config)  # retention: what the folders keep, off by default
        keeper.start()
        thread.start()
        self.reporter.ready()
        log.info("daemon.started", worker=spool.worker.name, inbox=str(self.config.folders.inbox),
                 overlap=consumer.prefetch is not None, batching=consumer.batching, packing=consumer.packing)
        self._wait_for(thread, consumer)
        # Stop order: the consumer (above), the hooks (pending deliveries stay on disk for the next
        # start), retention (a pass ends after its batch: its journal is finished at the next
        # start), the watcher, then the lease and the engine.
        self.hooks.stop()
        keeper.stop()
        observer.stop()
        observer.join(timeout=5)
        code = self._exit_code()
        if not thread.is_alive():
            spool.retire()
            loaded.engine.close()
        log.info("daemon.stopped", exit_code=code, jobs=dict(self.stats.jobs))
        if thread.is_alive():
            # The abandoned job is still inside the engine (C++ code cannot be interrupted);
            # its file is back in the inbox, so end the process without waiting for it.
            self._exit_now(code)
        return code

    def _idle_beat_interval(self) -> float:
        """How often an idle consumer beats: every 5 s, or often enough for systemd's watchdog."""
        interval = self.notifier.watchdog_interval
        return min(IDLE_BEAT_SECONDS, interval / 2) if interval else IDLE_BEAT_SECONDS

    def _consume(self, consumer: Consumer) -> None:
        try:
            consumer.run(self.stop)
        except BaseException as exc:
            self.consumer_error = exc
            if not isinstance(exc, GpuLost):
                log.critical("daemon.consumer_crashed", error=f"{type(exc).__name__}: {exc}",
                             exc_info=True)
        finally:
            self.stop.set()

    def _renew_lease(self, spool: Spool) -> None:
        interval = self.config.daemon.lease_seconds / 4
        while not self.stop.wait(interval):
            try:
                spool.renew_lease()
            except OSError as exc:
                log.warning("spool.lease_renewal_failed", error=str(exc))

    # --- stop -------------------------------------------------------------------------------------

    def _wait_for(self, thread: threading.Thread, consumer: Consumer) -> None:
        deadline = None
        while thread.is_alive():
            thread.join(timeout=0.2)
            if self.stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.config.daemon.shutdown_grace_seconds
                self._begin_stopping(consumer)
            if deadline is not None and (time.monotonic() >= deadline or self.signals >= 2):
                consumer.give_back_in_flight(reason="shutdown grace period ran out")
                thread.join(timeout=1.0)
                return
        if deadline is None:  # the consumer was quicker to stop than this loop was to notice
            self._begin_stopping(consumer)

    def _begin_stopping(self, consumer: Consumer) -> None:
        if self.signals:
            log.info("daemon.stopping", grace_s=self.config.daemon.shutdown_grace_seconds,
                     current=str(consumer.current.relpath) if consumer.current else None)
        self.reporter.stopping(announce=bool(self.signals))

    def _exit_code(self) -> int:
        if isinstance(self.consumer_error, GpuLost):
            return EXIT_GPU_LOST
        return EXIT_ERROR if self.consumer_error is not None else EXIT_OK

    def _exit_now(self, code: int) -> None:
        """End the process without waiting for threads stuck in C++ code (reports closed first)."""
        self.reporter.stop()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags here: logging happens in the main loop.
        self.signals += 1
        self.stop.set()
        self.wake.set()
