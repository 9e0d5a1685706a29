"""Models built on a thread of their own, so that CTranslate2's OpenMP threads keep spinning.

CTranslate2 runs a model on its own worker thread, whose OpenMP team does the work; building a
model (its weights converted to int8) runs an OpenMP team on the *building* thread too. libgomp
counts every thread of every team that is still alive, and once that count is above the CPUs
the process may use it stops spinning between parallel regions and sleeps instead (libgomp's
manual, GOMP_SPINCOUNT: with more OpenMP threads than available CPUs it spins 1,000 times, not
300,000), so each of the decoder's thousands of small steps waits for threads to wake. The thread
counts fit (one more thread lives on after a build on the main thread); the speed is measured.
A model built on the main thread (which lives on, and so does its team) therefore decodes at
less than half speed on the CPU; built on a thread that ends, its team ends with it. Measured
by bench/ct2_cpu.py (2 CPUs, tiny.en int8, beam 5, batch 4): 414 ms per 30 s window decoded with
the model built on the main thread, 157 ms built on a thread of its own, the same tokens
(docs/performance.md).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def built_on_a_thread(build: Callable[[], T]) -> T:
    """`build()` run on a short-lived thread of its own, in the caller's context (so that its
    prints are caught as the caller's are: logs.prints_as_logs); its result, or its exception."""
    context = contextvars.copy_context()
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(context.run(build))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="model-build")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
