"""The engine seam: what the consumer loop needs from a speech-to-text engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

#: Called with the percentage done; also the consumer's heartbeat during long jobs.
Progress = Callable[[float], None]


@dataclass(frozen=True)
class Request:
    """What one job asks of the engine (from the config, later also from a per-file sidecar)."""

    language: str | None = None
    task: str = "transcribe"
    #: The file's name, for engines that report per file (the fake one is scripted by it).
    file: str = ""
    #: Text that steers the decoder (names, spellings), and words to favour.
    initial_prompt: str | None = None
    hotwords: str | None = None


@dataclass(frozen=True)
class EngineSettings:
    """What the engine runs with, once `auto` has been decided, and why."""

    model: str
    model_path: str
    model_source: str
    device: str
    device_index: int
    compute_type: str
    batch_size: int
    cpu_threads: int
    reasons: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The fields that go into each job's metadata."""
        data = asdict(self)
        data.pop("reasons")
        return data


class Engine(Protocol):
    """A resident speech-to-text engine, used by one consumer thread, one job at a time (the
    prefetch thread may call `find_speech`, which uses no Whisper model, beside it)."""

    settings: EngineSettings

    def load(self) -> None:
        """Load the model (once, at start, before the first job)."""

    def transcribe(self, samples: np.ndarray, request: Request, batch_size: int,
                   progress: Progress, speech: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Transcribe 16 kHz mono float32 samples: {"language": ..., "segments": [...]}.
        `speech`: the speech chunks found ahead (WhisperXEngine.find_speech), else found here."""

    def free_memory(self) -> int | None:
        """Release cached accelerator memory after an out-of-memory error; free bytes if known."""

    def on_cpu(self) -> Engine:
        """An engine of the same model on the CPU (int8), for the out-of-memory fallback."""

    def close(self) -> None:
        """Release the model."""
