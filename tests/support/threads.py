"""Threads a test leaves running: found by comparing `threading.enumerate()` before and after,
with a grace for those that are ending (tests/conftest.py fails the test that left them)."""

from __future__ import annotations

import threading
import time

#: How long the threads a test started may take to end once it is over (a reader whose process
#: just exited, an executor told to shut down, an observer that was stopped): a thread still
#: alive after that was left running by the test.
THREAD_GRACE_SECONDS = 5.0

#: Threads a library keeps for the life of the process, started by the first test that needs
#: them and never stopped: (name prefix, why it may stay).
LIFELONG_THREADS: tuple[tuple[str, str], ...] = (
    ("OtelBatchSpanRecordProcessor",
     "pyannote.audio.telemetry starts an OpenTelemetry span exporter when it is imported, even with "
     "its metrics disabled, and never shuts it down (TracerProvider(shutdown_on_exit=False))"),
)


def threads_left_running(before: set[threading.Thread], grace: float) -> list[threading.Thread]:
    """The threads started since `before` (lifelong ones aside) still alive after `grace`
    seconds, all of them together: each is joined until that deadline."""
    deadline = time.monotonic() + grace
    left = []
    for thread in threading.enumerate():
        if thread in before or _lifelong(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    return left


def _lifelong(thread: threading.Thread) -> bool:
    return any(thread.name.startswith(prefix) for prefix, _why in LIFELONG_THREADS)


def target_of(thread: threading.Thread) -> str:
    """What the thread runs (its target's qualified name), to find who started it."""
    target = getattr(thread, "_target", None)
    if target is None:
        return type(thread).__qualname__
    return getattr(target, "__qualname__", repr(target))


def describe(threads: list[threading.Thread]) -> str:
    """`name (target)` for each thread, to find who started it."""
    return ", ".join(f"{thread.name} ({target_of(thread)})" for thread in threads)
