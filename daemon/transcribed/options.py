"""Per-job options: an inbox subfolder's route, then the file's own sidecar, over the config.

A sidecar is `<audio file name>.yaml` (or .yml, .json) delivered with the file, e.g.
`talk.mp3.yaml` with `language: de` and `diarize: true`; `inbox.sidecar_next_to` finds it. It is
checked like the config; a bad one fails that job (BadInput) with a message naming the key, and
nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .config import Config, JobOptions, check_job_options, parse_options
from .errors import BadInput, ConfigError


@dataclasses.dataclass(frozen=True)
class Effective:
    """What one job runs with, every option decided."""

    language: str | None
    task: str
    initial_prompt: str | None
    hotwords: str | None
    diarize: bool
    min_speakers: int | None
    max_speakers: int | None
    formats: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_sidecar(path: Path) -> JobOptions:
    """Parse and check a sidecar; BadInput naming the file and the key when it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: cannot be read: {exc}") from None
    try:
        options = parse_options(data or {})
        check_job_options(options, "sidecar")
    except ConfigError as exc:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: {exc}") from None
    return options


def route_for(config: Config, relpath: PurePosixPath) -> JobOptions:
    """The options of the deepest configured inbox subfolder that holds `relpath`."""
    best, best_depth = JobOptions(), -1
    for folder, options in config.routes.items():
        parts = PurePosixPath(folder).parts
        below = relpath.parts[: len(parts)] == parts and len(parts) < len(relpath.parts)
        if below and len(parts) > best_depth:
            best, best_depth = options, len(parts)
    return best


def effective_options(config: Config, relpath: PurePosixPath, sidecar: JobOptions | None) -> Effective:
    """Config, overridden by the route, overridden by the sidecar."""
    layers = [route_for(config, relpath), sidecar or JobOptions()]

    def pick(name: str, default: Any) -> Any:
        for layer in reversed(layers):
            value = getattr(layer, name)
            if value is not None:
                return value
        return default

    return Effective(
        language=pick("language", config.model.language),
        task=pick("task", "transcribe"),
        initial_prompt=pick("initial_prompt", None),
        hotwords=pick("hotwords", None),
        diarize=pick("diarize", config.diarize.enabled),
        min_speakers=pick("min_speakers", config.diarize.min_speakers),
        max_speakers=pick("max_speakers", config.diarize.max_speakers),
        formats=pick("formats", config.outputs.formats),
    )
