"""Which waiting files go first when routes, libraries or sidecars choose several Whisper models:
those whose model is loaded already, so that a queue of mixed files does not load a model for
every file; any other file goes first anyway once it has waited `models.max_wait_seconds` (the
source keeps that bound: intake/source.py), so none waits for ever. 0 turns the grouping off.

A waiting file's model is its route's, or its sidecar's (read as the job will read it, and only
again when it changes); a sidecar that cannot be read leaves the route's (the job fails on it
when its turn comes).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..config import Config, JobOptions
from ..config.models import ModelChoice, choose_model
from ..engine.resident import ResidentModels
from ..errors import BadInput
from ..spool.sidecars import sidecar_next_to
from ..transcription.options import read_sidecar, route_for


def model_order(config: Config, resident: ResidentModels) -> ModelOrder | None:
    """The order for a daemon with several models (and `models.max_wait_seconds` above 0)."""
    if resident.catalogue.several and config.models.max_wait_seconds > 0:
        return ModelOrder(config, resident)
    return None


class ModelOrder:
    """A `Preference` (spool/seam.py) for the inbox: files that run with a loaded model first."""

    def __init__(self, config: Config, resident: ResidentModels) -> None:
        self.config = config
        self.resident = resident
        self.max_wait_seconds = config.models.max_wait_seconds
        #: Each waiting file's model, by its sidecar's stamp (None: no sidecar).
        self._known: dict[Path, tuple[tuple[int, int, int] | None, ModelChoice]] = {}

    def wants(self, relpath: PurePosixPath, path: Path) -> bool:
        loaded = self.resident.engine.loaded_models()
        return bool(loaded) and self.model_of(relpath, path) in loaded

    def model_of(self, relpath: PurePosixPath, path: Path) -> ModelChoice:
        """The model the file at `path` will run with (its key in the engine's catalogue)."""
        sidecar = sidecar_next_to(path)
        stamp = _stamp(sidecar) if sidecar is not None else None
        known = self._known.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        options: JobOptions | None = None
        if sidecar is not None:
            try:
                options = read_sidecar(sidecar)
            except BadInput:
                options = None
        layers = [route_for(self.config, relpath).model, options.model if options else None]
        model = choose_model(self.config.default_model, self.config.model.beam_size, layers)[0]
        if model == self.config.default_model:
            model = self.resident.catalogue.default
        if len(self._known) > 10_000:  # a flood: forget the oldest answers
            self._known.clear()
        self._known[path] = (stamp, model)
        return model


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
