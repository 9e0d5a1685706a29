"""built_on_a_thread: a model is built on a thread of its own that has ended when it returns (so
that libgomp's count of live threads drops back: engine/openmp.py), its prints caught as the
caller's, its failure raised on the caller's thread."""

from __future__ import annotations

import io
import json
import sys
import threading

import pytest

from transcribed import logs
from transcribed.engine.openmp import built_on_a_thread


def test_the_build_runs_on_another_thread_that_has_ended_on_return() -> None:
    builders: list[threading.Thread] = []

    def build() -> str:
        builders.append(threading.current_thread())
        return "model"

    assert built_on_a_thread(build) == "model"
    assert builders[0] is not threading.current_thread()
    assert not builders[0].is_alive()


def test_its_prints_are_caught_as_the_callers_are(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    logs.configure(stream=stdout)

    def build() -> None:
        print("Model was trained with pyannote.audio 0.0.1")

    with logs.prints_as_logs("whisperx"):
        built_on_a_thread(build)
    event = json.loads(stdout.getvalue())
    assert (event["library"], event["text"]) == ("whisperx", "Model was trained with pyannote.audio 0.0.1")


def test_its_failure_is_raised_on_the_callers_thread() -> None:
    def build() -> None:
        raise MemoryError("CUDA failed with error out of memory")

    with pytest.raises(MemoryError, match="out of memory"):
        built_on_a_thread(build)
