"""Reading the configuration: YAML into the frozen dataclasses of `.schema`, and back to YAML.

The dataclasses' type hints drive the reading: an unknown key is refused with a "did you mean"
hint, every value is checked against its key's type, and every error names the key, e.g.
`model.batch_size: expected a positive integer or "auto", got 0`. Relative paths count from the
config file's folder. The rules between values are `.checks`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

import yaml

from .. import languages
from ..errors import ConfigError
from ..languages import Language
from .checks import check_library_folders, check_values
from .job_checks import describe
from .per_file import JobOptions, Route
from .retention import RETENTION_FOLDERS, Keep, Retention, check_archives
from .schema import CONFIG_ENV, FOLDER_NAMES, Config, Folders, Hooks
from .vocabulary import read_words

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Section = TypeVar("Section", bound="DataclassInstance")
#: A route or a library (a route over a folder of media).
Place = TypeVar("Place", bound=Route)


def load_config(path: str | Path | None = None) -> Config:
    """Read, check and resolve the configuration (from `path`, $TRANSCRIBED_CONFIG, or defaults)."""
    path = path or os.environ.get(CONFIG_ENV) or None
    if path is None:
        return resolve_paths(Config(), Path.cwd())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        config = parse_config(data or {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config = dataclasses.replace(config, source=path.resolve())
    return resolve_paths(config, path.resolve().parent)


def parse_config(data: Any) -> Config:
    """Build a Config from plain data (parsed YAML), checking every key; paths stay as written."""
    config = _build(Config, data, "")
    check_values(config)
    return config


def parse_options(data: Any) -> JobOptions:
    """Per-job options (a sidecar file) from plain data, checked like the config."""
    return _build(JobOptions, data, "")


def resolve_paths(config: Config, base: Path) -> Config:
    """Make the folder and model paths absolute, relative paths counting from `base`."""
    paths: dict[str, Any] = {name: _absolute(getattr(config.folders, name), base) for name in FOLDER_NAMES}
    folders = dataclasses.replace(config.folders, **paths)
    model = dataclasses.replace(config.model, download_dir=_absolute(config.model.download_dir, base))
    diarize = config.diarize
    if diarize.token_file is not None:
        diarize = dataclasses.replace(diarize, token_file=_absolute(diarize.token_file, base))
    if _names_a_directory(diarize.model, base):
        diarize = dataclasses.replace(diarize, model=str(_absolute(Path(diarize.model), base)))
    align = config.align
    if isinstance(align.model, str) and _names_a_directory(align.model, base):
        align = dataclasses.replace(align, model=str(_absolute(Path(align.model), base)))
    elif isinstance(align.model, dict):
        align = dataclasses.replace(align, model={
            lang: str(_absolute(Path(name), base)) if _names_a_directory(name, base) else name
            for lang, name in align.model.items()})
    if _names_a_directory(config.model.name, base):
        model = dataclasses.replace(model, name=str(_absolute(Path(config.model.name), base)))
    if model.hotwords_file is not None:
        model = dataclasses.replace(model, hotwords_file=_absolute(model.hotwords_file, base))
    libraries = tuple(_resolve_place(dataclasses.replace(lib, path=_absolute(lib.path, base))
                                     if lib.path else lib, base) for lib in config.libraries)
    routes = {folder: _resolve_place(route, base) for folder, route in config.routes.items()}
    models = dataclasses.replace(config.models, choices=tuple(
        _model_name(name, base) for name in config.models.choices))
    resolved = dataclasses.replace(config, folders=folders, model=model, diarize=diarize, align=align,
                                   hooks=_resolve_hook_paths(config.hooks, base), libraries=libraries,
                                   routes=routes, models=models,
                                   retention=_resolve_archives(config.retention, base))
    check_library_folders(resolved)  # the folders' places are known only now
    check_words_files(resolved)
    check_archives(resolved.retention,
                   {f"folders.{f.name}": os.path.normpath(str(getattr(folders, f.name)))
                    for f in dataclasses.fields(Folders)},
                   [os.path.normpath(str(lib.path)) for lib in libraries if lib.path is not None])
    return resolved


def _resolve_place(place: Place, base: Path) -> Place:
    """A route's or library's words file and model folder count from the config's folder."""
    if place.hotwords_file is not None:
        place = dataclasses.replace(place, hotwords_file=_absolute(place.hotwords_file, base))
    if place.model is not None and place.model.name is not None:
        place = dataclasses.replace(place, model=dataclasses.replace(
            place.model, name=_model_name(place.model.name, base)))
    return place


def _model_name(name: str, base: Path) -> str:
    """A model name as the engine looks it up: a folder's absolute path, else the name."""
    return str(_absolute(Path(name), base)) if _names_a_directory(name, base) else name


def check_words_files(config: Config) -> None:
    """Every words file can be read (the paths are absolute now), naming the key that names it."""
    places: list[tuple[str, Path | None]] = [("model.hotwords_file", config.model.hotwords_file)]
    places += [(f"routes.{folder}.hotwords_file", route.hotwords_file)
               for folder, route in config.routes.items()]
    places += [(f"libraries[{i}].hotwords_file", lib.hotwords_file) for i, lib in enumerate(config.libraries)]
    for key, path in places:
        if path is not None:
            read_words(path, key)


def _resolve_archives(retention: Retention, base: Path) -> Retention:
    """Each folder's archive counts from the config's folder."""
    changes: dict[str, Any] = {}
    for folder in RETENTION_FOLDERS:
        keep = getattr(retention, folder)
        if isinstance(keep, Keep) and keep.archive is not None:
            changes[folder] = dataclasses.replace(keep, archive=_absolute(keep.archive, base))
    return dataclasses.replace(retention, **changes)


def _resolve_hook_paths(hooks: Hooks, base: Path) -> Hooks:
    """The secret file, the notifications' URL file, and a command's program written as a relative
    path (`./refresh.sh`, `hooks/x`), count from the config's folder; a bare name (`curl`) is
    looked up in $PATH."""
    if hooks.secret_file is not None:
        hooks = dataclasses.replace(hooks, secret_file=_absolute(hooks.secret_file, base))
    if hooks.notify.urls_file is not None:
        hooks = dataclasses.replace(hooks, notify=dataclasses.replace(
            hooks.notify, urls_file=_absolute(hooks.notify.urls_file, base)))
    if hooks.command and "/" in hooks.command[0]:
        program = str(_absolute(Path(hooks.command[0]), base))
        hooks = dataclasses.replace(hooks, command=(program, *hooks.command[1:]))
    return hooks


def to_plain(config: Config) -> dict[str, Any]:
    """The configuration as plain YAML-ready data (what `transcribed config` prints)."""
    return {key: _plain(value) for key, value in dataclasses.asdict(config).items() if key != "source"}


def render_yaml(config: Config) -> str:
    """The effective configuration as YAML."""
    return yaml.safe_dump(to_plain(config), sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- building dataclasses from plain data -------------------------------------------------------

def _build(cls: type[Section], data: Any, path: str) -> Section:
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'the top level'}: expected a mapping, got {describe(data)}")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    hints = typing.get_type_hints(cls, include_extras=True)  # keeps the `Language` mark
    values = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"{key_path}: unknown key{hint}")
        values[key] = _coerce(hints[key], value, key_path)
    return cls(**values)


class _UnknownLanguage(ConfigError):
    """A value of the right shape naming no language Whisper knows: said as it is, not as one of
    a union's alternatives (`audio.track: unknown language 'xx'`, not "expected auto or ...")."""


def _language(value: Any, path: str) -> str:
    """A `Language` value as Whisper's code: `de`, `DE`, `German` -> `de`; `xx` refused."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: expected a language (a code such as de, or its name such as "
                          f"German), got {describe(value)}")
    code = languages.code_of(value)
    if code is None:
        raise _UnknownLanguage(f"{path}: unknown language {value!r}: expected a language Whisper "
                               "knows, as its code (ISO 639-1, e.g. de) or its name (German); "
                               "docs/languages.md lists them")
    return code


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, path)
    if origin in (Union, types.UnionType):
        return _coerce_union(typing.get_args(hint), value, path)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        raise ConfigError(f"{path}: expected one of {', '.join(map(str, choices))}, got {describe(value)}")
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {describe(value)}")
        key_of = (lambda k: _language(k, f"{path}.{k}")) if key_type == Language else str
        return {key_of(k): _coerce(value_type, v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        return _coerce_tuple(typing.get_args(hint)[0], value, path)
    return _coerce_scalar(hint, value, path)


def _coerce_tuple(item: Any, value: Any, path: str) -> tuple[Any, ...]:
    """A list of strings (a lone string is a list of one), or of sections (`libraries`: each
    built and checked, named by its place, `libraries[0]`)."""
    if dataclasses.is_dataclass(item):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list of mappings, got {describe(value)}")
        return tuple(_build(item, v, f"{path}[{i}]") for i, v in enumerate(value))  # type: ignore[arg-type]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: expected a list of strings, got {describe(value)}")
    if item == Language:
        return tuple(_language(v, f"{path}[{i}]") for i, v in enumerate(value))
    return tuple(v.lower().lstrip(".") if path.endswith("extensions") else v for v in value)


def _coerce_union(options: tuple[Any, ...], value: Any, path: str) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        if isinstance(value, dict) and isinstance(option, type) and dataclasses.is_dataclass(option):
            return _build(option, value, path)  # a section: its own errors name its own keys
        try:
            return _coerce(option, value, path)
        except _UnknownLanguage:
            raise
        except ConfigError as exc:
            errors.append(str(exc).split(": expected ", 1)[-1].split(", got ")[0])
    nullable = " or null" if type(None) in options else ""
    raise ConfigError(f"{path}: expected {' or '.join(errors)}{nullable}, got {describe(value)}")


def _coerce_scalar(hint: Any, value: Any, path: str) -> Any:
    if hint == Language:
        return _language(value, path)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str) and value:
        return value
    if hint is Path and isinstance(value, str) and value:
        return Path(value).expanduser()
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             Path: "a path"}
    raise ConfigError(f"{path}: expected {names.get(hint, hint)}, got {describe(value)}")


# --- paths ---------------------------------------------------------------------------------------

def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _names_a_directory(name: str, base: Path) -> bool:
    """A model name is a path when it is written as one, or names a folder next to the config.

    "Systran/faster-whisper-large-v3" is a hub id unless such a folder exists.
    """
    return name.startswith((".", "/", "~")) or (base / name).expanduser().is_dir()
