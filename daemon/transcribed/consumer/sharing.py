"""Short files sharing Whisper: several waiting files' speech in one model call (batching: their
chunks fill one batch) or in one 30 s window (packing: engine/packing.py), each file still finished on
its own. Which files may share, and the shared call with its fallback: a call that fails leaves
each file to be transcribed alone (None), except a lost GPU, whose outcome the consumer carries out.
"""

from __future__ import annotations

from typing import Any

from .. import logs
from ..config import Config
from ..engine.base import Engine, Transcript
from ..errors import GpuLost
from ..transcription.pipeline import Pipeline, Prepared

log = logs.get_logger()


class SharedCalls:
    """Batching and packing for the consumer: which files share, and the shared calls."""

    def __init__(self, config: Config, pipeline: Pipeline, batching: bool, packing: bool) -> None:
        self.config = config
        self.pipeline = pipeline
        self.batching = batching
        self.packing = packing

    def files_at_most(self) -> int:
        """How many files one `process_together` takes (1: batching and packing both off)."""
        return max(self.config.batching.max_files if self.batching else 1,
                   self.config.packing.max_files if self.packing else 1)

    def may_share(self, item: Prepared) -> bool:
        seconds = item.audio.seconds
        return ((self.batching and seconds <= self.config.batching.max_audio_seconds)
                or (self.packing and seconds <= self.config.packing.max_audio_seconds))

    def transcribe(self, group: list[Prepared]) -> list[Transcript | None]:
        """Packed windows first (packing on), then one shared batch for the files left over
        (batching on); None for each file to be transcribed on its own."""
        results: list[Transcript | None] = [None] * len(group)
        if self.packing:
            limit = self.config.packing.max_audio_seconds
            short = [i for i, p in enumerate(group) if p.audio.seconds <= limit]
            for i, packed in zip(short, self._packed([group[i] for i in short]), strict=True):
                results[i] = packed
        if self.batching:
            limit = self.config.batching.max_audio_seconds
            rest = [i for i, p in enumerate(group) if results[i] is None and p.audio.seconds <= limit]
            for i, shared in zip(rest, self._shared([group[i] for i in rest]), strict=True):
                results[i] = shared
        return results

    def _packed(self, group: list[Prepared]) -> list[Transcript | None]:
        if len(group) < 2:
            return [None] * len(group)
        try:
            results = self.pipeline.transcribe_packed(group)
        except GpuLost:
            raise
        except Exception as exc:  # noqa: BLE001 - each file is then transcribed without packing
            log.warning("packing.call_failed", files=len(group),
                        error=f"{type(exc).__name__}: {exc}", action="each file unpacked")
            return [None] * len(group)
        alone = [p.job.relpath.name for p, r in zip(group, results, strict=True) if r is None]
        log.info("packing.done", files=len(group), packed=len(group) - len(alone), alone=alone)
        return results

    def _shared(self, group: list[Prepared]) -> list[Transcript | None]:
        if len(group) < 2:
            return [None] * len(group)
        try:
            return list(self.pipeline.transcribe_together(group))
        except GpuLost:
            raise
        except Exception as exc:  # noqa: BLE001 - each file is then transcribed on its own
            log.warning("batch.shared_call_failed", files=len(group),
                        error=f"{type(exc).__name__}: {exc}", action="each file alone")
            return [None] * len(group)


def batching_wanted(config: Config, engine: Engine) -> bool:
    """Shared model calls for short files: on a GPU (fuller batches are faster there); off on
    the CPU, where every chunk is padded to Whisper's 30 s window and a bigger batch buys nothing
    (measured: see docs/performance.md); on with `batching.enabled: true`."""
    setting = config.batching.enabled
    if setting == "auto":
        return engine.settings.device == "cuda"
    return bool(setting)


def packing_wanted(config: Config, engine: Engine) -> bool:
    """Short files packed into shared windows: on the CPU, where the encoder's fixed 30 s window
    is most of a short file's time and packing was measured 1.8x faster at the same word error
    rate; off on a GPU until measured there (bench/gpu.py); true/false: always/never."""
    setting = config.packing.enabled
    if setting == "auto":
        return engine.settings.device == "cpu"
    return bool(setting)


def share_groups(prepared: list[Prepared]) -> list[list[Prepared]]:
    """Jobs that may share a model call: the same language, task, prompt, hotwords and decoding
    rules, model and beam size (a shared call runs under one set of them)."""
    groups: dict[tuple[Any, ...], list[Prepared]] = {}
    for item in prepared:
        r = item.request
        key = (r.language, r.task, r.initial_prompt, r.hotwords, r.decoding, r.model, r.beam_size)
        groups.setdefault(key, []).append(item)
    return list(groups.values())
