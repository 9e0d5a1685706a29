"""Speaker labels: a resident pyannote pipeline through whisperx, assigned to segments and words.

The pipeline comes from a local directory (config.yaml with its models) or the Hugging Face hub
with a token (from `diarize.token_file` or $HF_TOKEN; never logged). If it cannot be loaded the
daemon says why at start and runs without speakers, or refuses to start with `diarize.required`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import logs
from ..config import Config
from ..engine.base import Transcript
from ..errors import ConfigError

log = logs.get_logger()


class Diarizer:
    """A loaded speaker diarization pipeline, or None when unavailable."""

    def __init__(self, config: Config, device: str) -> None:
        self.config = config
        self.device = device
        self.pipeline: Any = None
        self.unavailable: str | None = None

    def load(self) -> None:
        """Load the pipeline at start; failure is fatal only when `diarize.required`."""
        settings = self.config.diarize
        if not settings.enabled:
            return
        log.info("diarize.model_loading", model=settings.model)
        try:
            from whisperx.diarize import DiarizationPipeline

            with logs.prints_as_logs("whisperx"):
                self.pipeline = DiarizationPipeline(
                    model_name=settings.model, token=self._token(), device=self.device,
                    cache_dir=str(self.config.model.download_dir))
        except Exception as exc:  # noqa: BLE001 - pyannote and the hub raise many kinds
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if settings.required:
                raise ConfigError(f"diarize.model: cannot load {settings.model}: {reason} "
                                  "(diarize.required is true)") from None
            self.unavailable = reason
            log.warning("diarize.unavailable", model=settings.model, reason=reason,
                        effect="transcripts carry no speaker labels")
            return
        log.info("diarize.model_loaded", model=settings.model)

    def release(self) -> bool:
        """Drop the pipeline (the idle unload); True if there was one, to `load` again."""
        loaded, self.pipeline = self.pipeline is not None, None
        return loaded

    def _token(self) -> str | None:
        token_file = self.config.diarize.token_file
        if token_file is not None:
            return token_file.read_text(encoding="utf-8").strip() or None
        return os.environ.get("HF_TOKEN") or None

    def diarize(self, result: Transcript, samples: np.ndarray,
                min_speakers: int | None, max_speakers: int | None) -> Transcript:
        """`result` with a speaker per segment (and per word where words have times)."""
        with logs.prints_as_logs("whisperx"):
            table = self.pipeline(samples, min_speakers=min_speakers, max_speakers=max_speakers)
        return assign_speakers(table, result)


def assign_speakers(table: Any, result: Transcript) -> Transcript:
    """whisperx's assignment of diarization turns (a DataFrame: start, end, speaker) to a result."""
    from whisperx.diarize import assign_word_speakers

    language = result.get("language")
    labelled: Transcript = assign_word_speakers(table, result)
    if language is not None:
        labelled["language"] = language
    return labelled
