"""The rules for what one job, inbox subfolder or library may set (a sidecar's, a route's and a
library's keys), and the small checks every section shares: each value has the right type
(`.load` saw to that), but some cannot work. Every error names the key, as `.checks`' do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import languages
from ..errors import ConfigError
from .models import ModelChoice, check_model_options, choose_model
from .per_file import JobOptions, Library
from .schema import KNOWN_FORMATS, Config


def check_job_options(options: JobOptions, where: str, width_around: int | None = None) -> None:
    """Values of per-job options that cannot work (shared by routes and sidecar files)."""
    check_speakers(where, options.min_speakers, options.max_speakers)
    if options.also_english and options.task == "translate":
        raise ConfigError(f"{where}.also_english: task is translate, so the text is English already "
                          "(also_english adds an English translation to a transcript)")
    if options.formats is not None:
        check_formats(f"{where}.formats", options.formats)
    if options.audio_track is not None:
        check_track(f"{where}.audio_track", options.audio_track)
    check_decoding(where, options)
    check_layout(where, options.max_line_width, options.max_line_count, width_around)
    if options.model is not None:
        check_model_options(options.model, where)


def check_layout(where: str, width: int | None, count: int | None, width_around: int | None = None) -> None:
    """The subtitle writers' layout: positive numbers, and a line count only with a line width
    (here or daemon-wide: `width_around`), since whisperx ignores it without one."""
    for key, value in (("max_line_width", width), ("max_line_count", count)):
        if value is not None:
            positive(f"{where}.{key}", value)
    if count is not None and width is None and width_around is None:
        raise ConfigError(f"{where}.max_line_count: has no effect without max_line_width (whisperx "
                          "splits lines by width first); set max_line_width too")


def check_track(key: str, track: int | tuple[str, ...] | str) -> None:
    """An audio stream's number (0 = the first audio stream), or languages this table knows."""
    if isinstance(track, int) and track < 0:
        raise ConfigError(f"{key}: expected auto, a stream number (0 or more) or a list of "
                          f"languages, got {track}")
    if isinstance(track, tuple):
        check_languages(key, track)


def check_languages(key: str, codes: tuple[str, ...]) -> None:
    """Codes Whisper knows (the loader has turned names into codes already; this catches a
    Config built in code)."""
    unknown = [code for code in codes if not languages.known(code)]
    if unknown:
        raise ConfigError(f"{key}: expected language codes Whisper knows (ISO 639-1, e.g. en, de), "
                          f"got {', '.join(map(repr, unknown))}")


def english_only_conflict(options: JobOptions, where: str, model: str) -> str | None:
    """What `options` ask that an English-only model cannot do, naming the key; None if nothing.

    Such a model knows one language and no translation: another language would be transcribed
    as English nonsense (whisperX's CLI warns and uses English), a translation would be a
    transcript."""
    if options.language not in (None, "en"):
        return (f"{where}.language: {options.language}, but the model {model} is English-only; "
                "use a multilingual model (e.g. base, large-v3-turbo) or drop the language")
    for key, asked in (("task", options.task == "translate"), ("also_english", options.also_english)):
        if asked:
            return (f"{where}.{key}: asks for a translation, but the model {model} is English-only "
                    "and cannot translate; use a multilingual model (e.g. base, large-v3)")
    return None


def check_english_only_model(config: Config, model: str) -> None:
    """Refuse, naming the key, what the daemon's own config asks of its English-only model
    `model` (where a place names no model of its own) that it cannot do."""
    check_english_only_models(config, lambda choice: choice == config.default_model, model)


def check_english_only_models(config: Config, english_only: Callable[[ModelChoice], bool],
                              default_name: str | None = None) -> None:
    """Refuse, naming the key, what the daemon's own config asks of an English-only model that it
    cannot do: each place (the `model` section, a route, a library) against its own model (known
    once a model is loaded or its vocabulary read: a local directory's name does not say)."""
    places: list[tuple[str, JobOptions]] = [
        ("model", JobOptions(language=config.model.language, task=config.model.task))]
    places += [(f"routes.{folder}", route) for folder, route in config.routes.items()
               if not folder.startswith("/")]  # a library's own route (an absolute path): below
    places += [(f"libraries[{i}]", lib) for i, lib in enumerate(config.libraries)]
    for where, options in places:
        choice = choose_model(config.default_model, config.model.beam_size, [options.model])[0]
        if not english_only(choice):
            continue
        name = default_name if default_name and choice == config.default_model else choice.name
        conflict = english_only_conflict(options, where, name)
        if conflict is not None:
            raise ConfigError(conflict)
        if isinstance(options, Library) and options.language is None and len(options.languages) == 1 \
                and options.languages != ("en",):
            raise ConfigError(f"{where}.languages: [{options.languages[0]}] is also the language "
                              f"Whisper is given, but the model {name} is English-only; use a "
                              "multilingual model")


def check_decoding(where: str, section: Any) -> None:
    """Whisper's thresholds: a probability in [0, 1], a log-probability at most 0, a ratio above 0."""
    no_speech = getattr(section, "no_speech_threshold", None)
    if no_speech is not None and not 0 <= no_speech <= 1:
        raise ConfigError(f"{where}.no_speech_threshold: expected a probability from 0 to 1, got {no_speech}")
    log_prob = getattr(section, "log_prob_threshold", None)
    if log_prob is not None and log_prob > 0:
        raise ConfigError(f"{where}.log_prob_threshold: expected 0 or less (a log-probability), "
                          f"got {log_prob}")
    ratio = getattr(section, "compression_ratio_threshold", None)
    if ratio is not None and ratio <= 0:
        raise ConfigError(f"{where}.compression_ratio_threshold: expected a number above 0, got {ratio}")


def describe(value: Any) -> str:
    """A value as an error message shows it: null, a list, a dict, or its repr."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__}"
    return repr(value)


def positive(key: str, value: Any, allow_auto: bool = False) -> None:
    if allow_auto and value == "auto":
        return
    if not isinstance(value, int) or value < 1:
        auto = ' or "auto"' if allow_auto else ""
        raise ConfigError(f"{key}: expected a positive integer{auto}, got {describe(value)}")


def check_speakers(where: str, min_speakers: int | None, max_speakers: int | None) -> None:
    for key, value in (("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None:
            positive(f"{where}.{key}", value)
    if min_speakers and max_speakers and min_speakers > max_speakers:
        raise ConfigError(f"{where}.min_speakers: must not exceed {where}.max_speakers")


def check_formats(key: str, formats: tuple[str, ...]) -> None:
    unknown = [f for f in formats if f not in KNOWN_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"{key}: expected some of {', '.join(KNOWN_FORMATS)}, got {list(formats)}")
