"""Per-job options: an inbox subfolder's route, then the file's own sidecar, over the config.

A sidecar is `<audio file name>.yaml` (or .yml, .json) delivered with the file, e.g.
`talk.mp3.yaml` with `language: de` and `diarize: true`; `spool.sidecars.sidecar_next_to` finds it. It is
checked like the config; a bad one fails that job (BadInput) with a message naming the key, and
nothing else.

Sidecars are written by whoever writes to the inbox, so they are untrusted (docs/security.md):
they set only `JobOptions` (language, task, an English translation too, prompt, hotwords,
speakers, word alignment, formats and their layout, the audio track, Whisper's decoding
thresholds, and a model among those the daemon's own config offers: never a path, a command or a
URL); one is read only as a regular
file (never through a link, never a FIFO) of at most `SIDECAR_MAX_BYTES`; and YAML aliases are
refused outright. A sidecar is a handful of scalar keys, so an alias has no use in one, and
without aliases what the YAML builds is bounded by its text: a "billion laughs" sidecar cannot
expand, and no expansion count is needed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import yaml

from ..config import Config, JobOptions, Model, Outputs, Route, check_job_options, parse_options
from ..config.job_checks import english_only_conflict
from ..config.models import ModelChoice, choose_model
from ..config.vocabulary import WordsFiles, joined
from ..engine.base import EngineSettings
from ..errors import BadInput, ConfigError
from ..logs import get_logger
from .untrusted import read_limited

log = get_logger()

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
    #: The subtitle writers' layout (the `outputs` keys of the same names).
    max_line_width: int | None = None
    max_line_count: int | None = None
    highlight_words: bool = False
    #: The Whisper model this job runs with, and its beam size.
    model: ModelChoice = dataclasses.field(default_factory=lambda: ModelChoice(Model.name))
    beam_size: int = Model.beam_size

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def outputs(self) -> Outputs:
        """What this job's writers write, and how they lay out the subtitles."""
        return Outputs(formats=self.formats, max_line_width=self.max_line_width,
                       max_line_count=self.max_line_count, highlight_words=self.highlight_words)


class Offer(Protocol):
    """The models a daemon may run (engine/catalogue.py): what a sidecar may choose among, and
    which of them know English only."""

    def offers(self, model: ModelChoice) -> bool: ...

    def english_only(self, model: ModelChoice) -> bool: ...

    def settings_for(self, model: ModelChoice | None) -> EngineSettings: ...


#: The words files of the daemon's config, each read again when it changes (config/vocabulary.py).
WORDS_FILES = WordsFiles()


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (`*name`, also in a `<<: *name` merge)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a sidecar", event.start_mark)
        return super().compose_node(parent, index)


def read_sidecar(path: Path, width_around: int | None = None) -> JobOptions:
    """Parse and check a sidecar; BadInput naming the file and the key when it is wrong.
    `width_around`: the subtitle line width its route or the config sets (a sidecar's line count
    needs one)."""
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
        check_job_options(options, "sidecar", width_around)
    except ConfigError as exc:
        raise BadInput("bad_sidecar", f"sidecar {path.name}: {exc}") from None
    return options


def job_options(config: Config, relpath: PurePosixPath, sidecar: Path | None,
                english_only: str | None = None, offer: Offer | None = None) -> Effective:
    """A job's options from its route and its sidecar (read and checked: BadInput when wrong).
    `english_only`: the model's name when it is English-only, which a sidecar asking for another
    language or a translation cannot use (the config's own keys were refused at start). With
    `offer` (the models the daemon may run), the sidecar may choose only among those, and the
    job's own model decides what English-only refuses."""
    route = route_for(config, relpath)
    width = route.max_line_width or config.outputs.max_line_width
    options = read_sidecar(sidecar, width) if sidecar is not None else None
    effective = effective_options(config, relpath, options)
    if sidecar is None or options is None:
        return effective
    if offer is not None:
        offered = effective.model == config.default_model or offer.offers(effective.model)
        if options.model is not None and not offered:
            raise BadInput("bad_sidecar", f"sidecar {sidecar.name}: model: {effective.model.describe()} is "
                           "not among the models this daemon's config offers (model.name, the routes' "
                           "and libraries' models, models.choices)")
        if offer.english_only(effective.model):
            english_only = offer.settings_for(effective.model).model
        else:
            english_only = None
    if english_only is not None:
        conflict = english_only_conflict(options, "sidecar", english_only)
        if conflict is not None:
            raise BadInput("bad_sidecar", f"sidecar {sidecar.name}: {conflict.removeprefix('sidecar.')}")
    return effective


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

    model, beam_size = choose_model(config.default_model, config.model.beam_size,
                                    [layer.model for layer in layers])
    return Effective(
        language=pick("language", config.model.language),
        task=pick("task", config.model.task),
        initial_prompt=pick("initial_prompt", config.model.initial_prompt),
        hotwords=_hotwords(config, layers),
        diarize=pick("diarize", config.diarize.enabled),
        min_speakers=pick("min_speakers", config.diarize.min_speakers),
        max_speakers=pick("max_speakers", config.diarize.max_speakers),
        formats=pick("formats", config.outputs.formats),
        audio_track=pick("audio_track", config.audio.track),
        **{key: pick(key, getattr(config.model, key)) for key in DECODING_KEYS},
        align=pick("align", config.align.enabled),
        also_english=pick("also_english", False),
        max_line_width=pick("max_line_width", config.outputs.max_line_width),
        max_line_count=pick("max_line_count", config.outputs.max_line_count),
        highlight_words=pick("highlight_words", config.outputs.highlight_words),
        model=model, beam_size=beam_size,
    )


def _hotwords(config: Config, layers: list[JobOptions]) -> str | None:
    """The deepest place's words: its `hotwords` and, for a route or library, its words file;
    else the daemon's (`model.hotwords`, `model.hotwords_file`)."""
    for layer in reversed(layers):
        words_file = layer.hotwords_file if isinstance(layer, Route) else None
        if layer.hotwords is not None or words_file is not None:
            return joined(layer.hotwords, _words(words_file, "hotwords_file"))
    return joined(config.model.hotwords, _words(config.model.hotwords_file, "model.hotwords_file"))


def _words(path: Path | None, key: str) -> str | None:
    """A words file's words now (read again when it changed; the last words read when it cannot
    be read, said in the log once per reason)."""
    if path is None:
        return None
    before = dict(WORDS_FILES.unreadable)
    words = WORDS_FILES.words(path, key)
    why = WORDS_FILES.unreadable.get(path)
    if why is not None and before.get(path) != why:
        log.warning("vocabulary.unreadable", path=str(path), error=why,
                      action="the words read last are used until it can be read again")
    return words
