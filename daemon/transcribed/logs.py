"""Logging: one JSON object per line on stdout, for the daemon and for the libraries under it.

structlog renders our events; a `ProcessorFormatter` on the root logger renders what whisperx,
pyannote, lightning, transformers and Python's warnings emit, in the same shape. While a job
runs, every event of its thread is also appended to that job's own `log.jsonl`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

import structlog

from .durable import to_json
from .errors import STORAGE_ERRNOS

#: The open log file of the job that runs in this thread, if any.
_job_log: ContextVar[TextIO | None] = ContextVar("job_log", default=None)

#: Third-party loggers that are chatty at INFO; they are let through at WARNING and above.
_NOISY_LOGGERS = (
    "whisperx", "faster_whisper", "pyannote", "lightning", "lightning.pytorch", "lightning.fabric",
    "pytorch_lightning", "transformers", "speechbrain", "nltk", "urllib3", "huggingface_hub",
    "matplotlib", "numba", "fsspec", "watchdog", "filelock",
)


def configure(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Send our events and the libraries' stdlib logs to `stream` (stdout) as JSON or console text."""
    stream = stream or sys.stdout
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _append_to_job_log,
    ]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=to_json)
    structlog.configure(
        processors=[*shared, structlog.processors.dict_tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(stream, shared, renderer)


def _route_stdlib_logging(stream: TextIO, shared: list[Any], renderer: Any) -> None:
    handler = logging.StreamHandler(stream)
    # Libraries set their own loggers to INFO (lightning does at import): only their warnings
    # and errors are worth an operator's attention.
    handler.setLevel(logging.WARNING)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.dict_tracebacks, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    # pyannote warns at import that torchcodec cannot decode files; whisperx hands it decoded
    # waveforms, so that warning is noise.
    warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly")
    quiet_libraries()


def quiet_libraries() -> None:
    """Make the libraries' loggers propagate to our root handler at WARNING, with no handlers of their own.

    whisperx adds a stdout handler the first time one of its modules asks for a logger, unless
    its logger already has a handler: a NullHandler keeps it from doing so. lightning attaches
    stderr handlers at import, so this runs again after the engine is imported.
    """
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [logging.NullHandler()] if name == "whisperx" else []
        logger.setLevel(logging.WARNING)
        logger.propagate = True


def get_logger(**context: Any) -> Any:
    """A structlog logger, bound to `context`."""
    return structlog.get_logger().bind(**context) if context else structlog.get_logger()


@contextlib.contextmanager
def job_log(file: TextIO) -> Iterator[None]:
    """While inside, every event logged by this thread is also appended to `file`."""
    token = _job_log.set(file)
    try:
        yield
    finally:
        _job_log.reset(token)


@contextlib.contextmanager
def open_job_log(path: Path) -> Iterator[TextIO]:
    """A job's own log file, or a sink that keeps nothing when it cannot be opened (a full
    disk, a folder gone). Closing flushes, which a full disk refuses too. Losing the job's copy
    of its log must not stop the consumer: the same events are on stdout. A full or read-only
    disk is not logged here (the storage monitor says so, once; this would say it each step)."""
    try:
        file = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - closed below, where a full disk is tolerated
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            get_logger().warning("job.log_unavailable", path=str(path), error=str(exc))
        file = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        yield file
    finally:
        with contextlib.suppress(OSError):
            file.close()


def _append_to_job_log(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    file = _job_log.get()
    if file is not None:
        record = {k: v for k, v in event.items() if not k.startswith("_")}
        with contextlib.suppress(OSError, ValueError):
            file.write(to_json(record) + "\n")
            file.flush()
    return event


class _LoggerWriter(io.TextIOBase):
    """A text stream whose lines become log events (for libraries that print())."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        # A logger that prints (structlog's own default, before `configure`) writes to the real
        # stdout, not back into this catcher: that loop held structlog's lock and hung.
        token = _prints_to.set(None)
        try:
            for line in lines:
                if line.strip():
                    self._logger.info("library.print", text=line.strip())
        finally:
            _prints_to.reset(token)
        return len(text)


#: The print() catcher of this thread while it is inside `prints_as_logs`.
_prints_to: ContextVar[_LoggerWriter | None] = ContextVar("prints_to", default=None)


class _PrintRouter(io.TextIOBase):
    """sys.stdout while any thread is inside `prints_as_logs`: each thread's prints go where that
    thread asked (its catcher, or the real stdout). `contextlib.redirect_stdout` swaps one global
    for everyone, and two threads leaving in the other order would leave it swapped for good."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        catcher = _prints_to.get()
        return catcher.write(text) if catcher is not None else self.real.write(text)

    def flush(self) -> None:
        self.real.flush()


@contextlib.contextmanager
def prints_as_logs(source: str) -> Iterator[None]:
    """Turn plain print() calls of a library into log events, so stdout stays pure JSON.
    Safe when several threads use it at once (the consumer and the prefetch)."""
    token = _prints_to.set(_LoggerWriter(get_logger(library=source)))
    _routing.enter()
    try:
        yield
    finally:
        _routing.leave()
        _prints_to.reset(token)


class _StdoutRouting:
    """How many threads are inside `prints_as_logs`: the first one in installs the router, the
    last one out puts the real stdout back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._real: TextIO | None = None

    def enter(self) -> None:
        with self._lock:
            if self._users == 0:
                self._real, sys.stdout = sys.stdout, _PrintRouter(sys.stdout)
            self._users += 1

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and isinstance(sys.stdout, _PrintRouter):
                sys.stdout, self._real = self._real or sys.stdout.real, None


_routing = _StdoutRouting()
