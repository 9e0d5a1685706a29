"""Speaker labels: a resident pyannote pipeline through whisperx, assigned to segments and words.

The pipeline comes from a local directory (config.yaml with its models) or the Hugging Face hub
with a token (from `diarize.token_file` or $HF_TOKEN; never logged). It is loaded at start when
`diarize.enabled` or a route or library asks for speakers, else by the first file whose sidecar
does. If it cannot be loaded the daemon says why and runs without speakers (each file that asks
keeps its plain transcript, the report saying why), or refuses to start with `diarize.required`.
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
    """A loaded speaker diarization pipeline, or None when unavailable (or not asked for yet)."""

    def __init__(self, config: Config, device: str) -> None:
        self.config = config
        self.device = device
        self.pipeline: Any = None
        self.unavailable: str | None = None
        #: Whether a load was tried (at start, or for a file that asked): one try, not one per file.
        self.tried = False

    def wanted_at_start(self) -> bool:
        """`diarize.enabled`, or a route or library that turns speakers on: the pipeline is then
        loaded at start (and `diarize.required` applies). A sidecar's wish is known only when its
        file comes: `load_on_demand`."""
        settings = [*self.config.routes.values(), *self.config.libraries]
        return self.config.diarize.enabled or any(options.diarize for options in settings)

    def load_at_start(self) -> None:
        """Load the pipeline at start when the configuration asks for speakers anywhere."""
        if self.wanted_at_start():
            self.load()

    def load_on_demand(self) -> None:
        """For a file that asks for speakers: the pipeline, loaded now if no file or setting has
        asked before (one try: a pipeline that cannot load is said once, and each file that asks
        for speakers then keeps its plain transcript, its report saying why)."""
        if self.pipeline is None and not self.tried:
            log.info("diarize.on_demand", reason="a file asks for speakers; diarize.enabled is false")
            self.load(required=False)

    def load(self, required: bool | None = None) -> None:
        """Load the pipeline; failure is fatal only when `diarize.required` (at start)."""
        settings = self.config.diarize
        required = settings.required if required is None else required
        self.tried = True
        log.info("diarize.model_loading", model=settings.model)
        try:
            from whisperx.diarize import DiarizationPipeline

            with logs.prints_as_logs("whisperx"):
                self.pipeline = DiarizationPipeline(
                    model_name=settings.model, token=self._token(), device=self.device,
                    cache_dir=str(self.config.model.download_dir))
        except Exception as exc:  # noqa: BLE001 - pyannote and the hub raise many kinds
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if required:
                raise ConfigError(f"diarize.model: cannot load {settings.model}: {reason} "
                                  "(diarize.required is true)") from None
            self.unavailable = reason
            log.warning("diarize.unavailable", model=settings.model, reason=reason,
                        effect="transcripts carry no speaker labels")
            return
        self.unavailable = None
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

    def turns(self, samples: np.ndarray, min_speakers: int | None, max_speakers: int | None) -> Any:
        """Who speaks when: pyannote's turns (a DataFrame: start, end, speaker)."""
        with logs.prints_as_logs("whisperx"):
            return self.pipeline(samples, min_speakers=min_speakers, max_speakers=max_speakers)

    def diarize(self, result: Transcript, samples: np.ndarray,
                min_speakers: int | None, max_speakers: int | None) -> Transcript:
        """`result` with a speaker per segment (and per word where words have times)."""
        return assign_speakers(self.turns(samples, min_speakers, max_speakers), result)


def assign_speakers(table: Any, result: Transcript) -> Transcript:
    """whisperx's assignment of diarization turns (a DataFrame: start, end, speaker) to a result."""
    from whisperx.diarize import assign_word_speakers

    language = result.get("language")
    labelled: Transcript = assign_word_speakers(table, result)
    if language is not None:
        labelled["language"] = language
    return labelled
