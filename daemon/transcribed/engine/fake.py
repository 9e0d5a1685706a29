"""A fake engine for fast tests and demos: same Protocol, deterministic text, scriptable faults.

Audio is still decoded for real before it gets here, so bad input fails for real. What it
replaces is only the model: it answers "fake transcript of NAME, 3.2 s" at once (or after
`delay` seconds, or `delays[NAME]`), and can be told to run out of memory above a batch size, to
lose the GPU, to raise for a given file, to kill its own process with SIGKILL on a given file
(a file that crashes the daemon), or to hang on one (a stuck consumer), so the real back-off,
failure, recovery and health handling run around it.
`transcribed run --engine fake` takes these settings as JSON from $TRANSCRIBED_FAKE.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import EngineSettings, Progress, Request

SAMPLE_RATE = 16_000


@dataclass
class FakeEngine:
    """Scripted stand-in for WhisperXEngine."""

    settings: EngineSettings = field(default_factory=lambda: EngineSettings(
        "fake", "", "fake", "cpu", 0, "int8", 4, 1, {"engine": "fake"}))
    #: Seconds each transcription takes (to test shutdown and crashes mid-job).
    delay: float = 0.0
    #: Raise CTranslate2's CUDA out-of-memory error when asked for a larger batch than this.
    oom_above_batch: int | None = None
    #: File name -> message of a RuntimeError raised when that file is transcribed.
    fail: dict[str, str] = field(default_factory=dict)
    #: Raise a CUDA "unknown error" (a lost GPU) for files with these names.
    lose_gpu_on: tuple[str, ...] = ()
    #: File name -> seconds that file takes (instead of `delay`).
    delays: dict[str, float] = field(default_factory=dict)
    #: Kill the whole process with SIGKILL while transcribing files with these names.
    crash_on: tuple[str, ...] = ()
    #: Never return (and never report progress) while transcribing files with these names.
    hang_on: tuple[str, ...] = ()
    calls: list[tuple[str, int]] = field(default_factory=list)
    #: Files whose speech was found ahead (by the prefetch) and handed in.
    given_speech: list[str] = field(default_factory=list)
    loaded: bool = False

    @classmethod
    def from_environment(cls) -> FakeEngine:
        """Build one from $TRANSCRIBED_FAKE (JSON with the fields above)."""
        options: dict[str, Any] = json.loads(os.environ.get("TRANSCRIBED_FAKE", "{}") or "{}")
        for key in ("lose_gpu_on", "crash_on", "hang_on"):
            if key in options:
                options[key] = tuple(options[key])
        return cls(**options)

    def load(self) -> None:
        self.loaded = True

    def find_speech(self, samples: np.ndarray) -> list[dict[str, Any]]:
        """All of the audio as one chunk, or none when it is silent."""
        if _silent(samples):
            return []
        return [{"start": 0.0, "end": round(len(samples) / SAMPLE_RATE, 3)}]

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress, speech: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        self.calls.append((request.file, batch_size))
        if speech is not None:
            self.given_speech.append(request.file)
        if request.file in self.lose_gpu_on:
            raise RuntimeError("CUDA failed with error unknown error")
        if self.oom_above_batch is not None and batch_size > self.oom_above_batch:
            raise RuntimeError("CUDA failed with error out of memory")
        if request.file in self.fail:
            raise RuntimeError(self.fail[request.file])
        if request.file in self.crash_on:
            os.kill(os.getpid(), signal.SIGKILL)
        while request.file in self.hang_on:
            time.sleep(1)
        self._work(self.delays.get(request.file, self.delay), progress)
        seconds = len(samples) / SAMPLE_RATE
        if _silent(samples):
            return {"segments": [], "language": request.language or "en"}
        name = request.file.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        text = f" fake transcript of {name}, {seconds:.1f} s"
        return {"segments": [{"start": 0.0, "end": round(seconds, 3), "text": text}],
                "language": request.language or "en"}

    def _work(self, delay: float, progress: Progress) -> None:
        steps = max(1, int(delay / 0.1))
        for step in range(steps):
            if delay:
                time.sleep(delay / steps)
            progress(100.0 * (step + 1) / steps)

    def free_memory(self) -> int | None:
        return None

    def on_cpu(self) -> FakeEngine:
        settings = EngineSettings("fake", "", "fake", "cpu", 0, "int8", 1, 1, {"device": "fallback"})
        return FakeEngine(settings=settings, delay=self.delay, fail=self.fail, calls=self.calls,
                          delays=self.delays, crash_on=self.crash_on, hang_on=self.hang_on,
                          given_speech=self.given_speech, loaded=True)

    def close(self) -> None:
        self.loaded = False


def _silent(samples: np.ndarray) -> bool:
    return bool(max(samples.max(initial=0.0), -samples.min(initial=0.0)) <= 1e-3)  # no |x| copy
