"""Per-job options: an inbox subfolder's route, then the file's own sidecar, over the config.

A sidecar is `<audio file name>.yaml` (or .yml, .json) delivered with the file, e.g.
`talk.mp3.yaml` with `language: de` and `diarize: true`; `spool.sidecars.sidecar_next_to` finds it. It is
checked like the config; a bad one fails that job (BadInput) with a message naming the key, and
nothing else.

Sidecars are written by whoever writes to the inbox, so they are untrusted (docs/security.md):
they set only `JobOptions` (language, task, an English translation too, prompt, hotwords,
speakers, word alignment, formats, the audio track, Whisper's decoding thresholds: never a path,
a command or a URL); one is read only as a regular
file (never through a link, never a FIFO) of at most `SIDECAR_MAX_BYTES`; and YAML aliases are
refused outright. A sidecar is a handful of scalar keys, so an alias has no use in one, and
without aliases what the YAML builds is bounded by its text: a "billion laughs" sidecar cannot
expand, and no expansion count is needed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ..config import Config, JobOptions, check_job_options, parse_options
from ..config.checks import english_only_conflict
from ..errors import BadInput, ConfigError
from .untrusted import read_limited

#: A sidecar larger than this fails its job: a few options take a few hundred bytes.
SIDECAR_MAX_BYTES = 64 * 1024
#: Whisper's decoding settings a route or sidecar may set over the `model` section's.
DECODING_KEYS = ("no_speech_threshold", "log_prob_threshold", "compression_ratio_threshold",
                 "temperature_fallback", "condition_on_previous_text")


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
    #: `audio.track`: auto, an audio stream's number, or languages in order of preference.
    audio_track: str | int | tuple[str, ...] = "auto"
    #: Whisper's decoding thresholds (the `model` keys of the same names).
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    temperature_fallback: bool = False
    condition_on_previous_text: bool = False
    #: Word timestamps: auto (where a model is at hand), true (a missing model fails the job),
    #: false; never for a translation (docs/languages.md).
    align: bool | str = "auto"
    #: An English translation too (`<stem>.en.<format>`), when the spoken language is not English.
    also_english: bool = False

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (`*name`, also in a `<<: *name` merge)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a sidecar", event.start_mark)
        return super().compose_node(parent, index)


def read_sidecar(path: Path) -> JobOptions:
    """Parse and check a sidecar; BadInput naming the file and the key when it is wrong."""
    try:
        raw = read_limited(path, SIDECAR_MAX_BYTES)
    except BadInput as exc:
        kind = "bad_sidecar" if exc.kind == "too_large" else exc.kind
        raise BadInput(kind, f"sidecar {path.name}: {exc}") from None
    except OSError as exc:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a safe loader
    except (ValueError, yaml.YAMLError) as exc:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: cannot be read: {exc}") from None
    except RecursionError:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: nested too deeply") from None
    try:
        options = parse_options(data or {})
        check_job_options(options, "sidecar")
    except ConfigError as exc:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: {exc}") from None
    return options


def job_options(config: Config, relpath: PurePosixPath, sidecar: Path | None,
                english_only: str | None = None) -> Effective:
    """A job's options from its route and its sidecar (read and checked: BadInput when wrong).
    `english_only`: the model's name when it is English-only, which a sidecar asking for another
    language or a translation cannot use (the config's own keys were refused at start)."""
    options = read_sidecar(sidecar) if sidecar is not None else None
    if sidecar is not None and options is not None and english_only is not None:
        conflict = english_only_conflict(options, "sidecar", english_only)
        if conflict is not None:
            raise BadInput("bad_sidecar", f"sidecar {sidecar.name}: {conflict.removeprefix('sidecar.')}")
    return effective_options(config, relpath, options)


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
        task=pick("task", config.model.task),
        initial_prompt=pick("initial_prompt", None),
        hotwords=pick("hotwords", None),
        diarize=pick("diarize", config.diarize.enabled),
        min_speakers=pick("min_speakers", config.diarize.min_speakers),
        max_speakers=pick("max_speakers", config.diarize.max_speakers),
        formats=pick("formats", config.outputs.formats),
        audio_track=pick("audio_track", config.audio.track),
        **{key: pick(key, getattr(config.model, key)) for key in DECODING_KEYS},
        align=pick("align", config.align.enabled),
        also_english=pick("also_english", False),
    )
