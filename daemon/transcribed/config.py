"""The configuration: frozen dataclasses whose defaults are the documented defaults.

`load_config` reads YAML, rejects unknown keys (with a "did you mean" hint), checks every value's
type and range, and resolves relative paths against the config file's directory. Every error names
the key, e.g. `model.batch_size: expected a positive integer or "auto", got 0`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import ConfigError

#: Extensions taken from the inbox by default (audio and the usual video containers).
DEFAULT_EXTENSIONS = (
    "wav", "mp3", "m4a", "flac", "ogg", "oga", "opus", "webm", "mp4", "mkv", "mov", "aac", "wma",
    "aiff", "aif", "amr", "3gp", "m4v", "avi", "mpeg", "mpg", "ts", "caf",
)
#: Formats whisperx's own writers produce.
KNOWN_FORMATS = ("json", "txt", "srt", "vtt", "tsv")
#: Where the configuration comes from when --config is not given.
CONFIG_ENV = "TRANSCRIBED_CONFIG"

Auto = Literal["auto"]


@dataclass(frozen=True)
class Folders:
    """Where files arrive, where results go, and where jobs in flight live."""

    inbox: Path = Path("data/inbox")
    outbox: Path = Path("data/outbox")
    done: Path = Path("data/done")
    failed: Path = Path("data/failed")
    #: Claimed jobs, worker leases, the status file. Must share a filesystem with the others.
    state: Path = Path("data/state")


@dataclass(frozen=True)
class Model:
    """Which Whisper model runs, where, and how."""

    #: A size name (tiny, tiny.en, base, ... large-v3, large-v3-turbo) or a local model directory.
    name: str = "tiny.en"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    device_index: int = 0
    #: auto: float16 on a GPU (int8_float16 when memory is short), int8 on the CPU.
    compute_type: Literal[
        "auto", "float16", "int8_float16", "int8", "int8_float32", "float32", "bfloat16",
        "int8_bfloat16",
    ] = "auto"
    #: auto: 16 on a large enough GPU, 4 on the CPU. Halved on CUDA out-of-memory.
    batch_size: Union[int, Auto] = "auto"
    #: null: detect per file (multilingual models); English-only models always use "en".
    language: Union[str, None] = None
    #: auto: the CPUs this process may use.
    cpu_threads: Union[int, Auto] = "auto"
    beam_size: int = 5
    #: Named models are downloaded here once, then used offline.
    download_dir: Path = Path("data/models")


@dataclass(frozen=True)
class Vad:
    """Voice activity detection (whisperx's bundled pyannote model)."""

    onset: float = 0.5
    offset: float = 0.363
    #: Longest merged speech chunk handed to Whisper, in seconds.
    chunk_seconds: float = 30.0
    #: How far pyannote's 5 s analysis window moves per step (its default: 0.5). 2.5 makes the
    #: VAD ~2.5x cheaper and CPU jobs 1.15-1.5x faster, for +0.3-0.4 WER points on the corpus
    #: (bench/knobs.py): a speed switch, not the default.
    step_seconds: float = 0.5


@dataclass(frozen=True)
class Watch:
    """How new files are noticed and when they count as complete."""

    #: auto: polling when the inbox is on a network filesystem (nfs, cifs/smb, fuse...).
    polling: Union[bool, Auto] = "auto"
    poll_interval_seconds: float = 1.0
    #: A file whose size and mtime have not changed for this long is complete.
    settle_seconds: float = 2.0
    #: A full scan of the inbox, whatever the observer reported.
    rescan_seconds: float = 60.0
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    #: A sidecar whose audio has not arrived after this long goes to failed/ with a report (it
    #: came too late, after its audio was taken, or its audio never came).
    sidecar_wait_seconds: float = 3600.0


@dataclass(frozen=True)
class Input:
    """What counts as acceptable input."""

    #: Transcribe what a truncated file holds (and say so in the metadata) instead of failing it.
    accept_truncated: bool = False


@dataclass(frozen=True)
class Jobs:
    """Retries and poison files."""

    #: A file that has killed or failed the daemon this many times goes to failed/.
    max_attempts: int = 3
    #: Pause before retrying a job that failed for a reason other than its input.
    retry_delay_seconds: float = 5.0


@dataclass(frozen=True)
class Outputs:
    """Which transcript files are written, and the subtitle writers' options."""

    formats: tuple[str, ...] = ("json", "txt", "srt", "vtt")
    max_line_width: Union[int, None] = None
    max_line_count: Union[int, None] = None
    highlight_words: bool = False


@dataclass(frozen=True)
class Oom:
    """What happens on CUDA out-of-memory."""

    #: At batch size 1: cpu = run this job on the CPU with int8; fail = the job to failed/.
    fallback: Literal["cpu", "fail"] = "cpu"
    #: After this many successes at a lowered batch size, try doubling it again.
    probe_after_jobs: int = 10


@dataclass(frozen=True)
class Batching:
    """Short files decoded together: one model call fills a batch that one file alone cannot."""

    #: auto: on a GPU; off on the CPU, where it was measured slower. true/false: always/never.
    enabled: Union[bool, Auto] = "auto"
    #: How many waiting files may share a call.
    max_files: int = 8
    #: Only files up to this long share; longer ones fill batches on their own.
    max_audio_seconds: float = 60.0


@dataclass(frozen=True)
class Overlap:
    """The next files decoded, and their speech found, while the consumer transcribes."""

    #: auto: on a GPU; off on the CPU, where it was measured slower. true/false: always/never.
    enabled: Union[bool, Auto] = "auto"
    #: How many claimed files may wait decoded ahead (each holds 64 kB per second of audio).
    files_ahead: int = 1
    #: Files whose header declares more than this (or nothing) are decoded by the consumer when
    #: their turn comes, not ahead: a long recording is not held in memory twice.
    max_audio_seconds: float = 3600.0
    #: A file claimed ahead that waits longer than this behind a long job goes back to the inbox,
    #: for another daemon on the same inbox (or this one, later, without the head start).
    max_wait_seconds: float = 60.0


@dataclass(frozen=True)
class Align:
    """Word timestamps by forced alignment (a wav2vec2 model per language)."""

    #: auto: where a model for the language is at hand (log line when not); true: a missing model
    #: fails the job (the plain transcript is kept); false: never.
    enabled: Union[bool, Auto] = "auto"
    #: null: whisperx's default per language; a Hugging Face name or a local directory for all
    #: languages; or a mapping language -> name or directory.
    model: Union[str, dict[str, str], None] = None
    #: Languages whose models are loaded (downloaded once) at start; the configured language and
    #: English for .en models always are. At job time models are only loaded from disk.
    preload: tuple[str, ...] = ()
    #: How many languages' models stay resident.
    cache_size: int = 2


@dataclass(frozen=True)
class Diarize:
    """Speaker labels (a pyannote pipeline)."""

    enabled: bool = False
    #: A local pipeline directory (with config.yaml) or a Hugging Face id.
    model: str = "pyannote/speaker-diarization-community-1"
    #: A file holding the Hugging Face token for gated pipelines (else $HF_TOKEN). Never logged.
    token_file: Union[Path, None] = None
    min_speakers: Union[int, None] = None
    max_speakers: Union[int, None] = None
    #: true: refuse to start when the pipeline cannot be loaded (else run without speakers).
    required: bool = False


@dataclass(frozen=True)
class JobOptions:
    """Options one job may override, from an inbox subfolder's route or a sidecar file."""

    language: Union[str, None] = None
    task: Union[Literal["transcribe", "translate"], None] = None
    initial_prompt: Union[str, None] = None
    hotwords: Union[str, None] = None
    diarize: Union[bool, None] = None
    min_speakers: Union[int, None] = None
    max_speakers: Union[int, None] = None
    formats: Union[tuple[str, ...], None] = None


@dataclass(frozen=True)
class Log:
    """The log stream on stdout."""

    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class Metrics:
    """The optional HTTP listener for /metrics and /healthz."""

    #: host:port, e.g. 127.0.0.1:9108; null = off.
    listen: Union[str, None] = None
    #: /healthz and `status --check` say unhealthy when the consumer's heartbeat is older than
    #: this (it beats at least every 5 s, and during long jobs from the engine's progress).
    stale_after_seconds: float = 120.0


@dataclass(frozen=True)
class Daemon:
    """The process: stopping, and sharing an inbox with other daemons."""

    #: On SIGTERM the current job may finish within this time, or goes back to the inbox.
    shutdown_grace_seconds: float = 30.0
    #: Another host's claims are taken back when its lease has not been renewed for this long
    #: (also another container or a rebooted host sharing the state folder). On NFS, keep the
    #: attribute cache (actimeo) well below it.
    lease_seconds: float = 60.0


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    folders: Folders = field(default_factory=Folders)
    model: Model = field(default_factory=Model)
    vad: Vad = field(default_factory=Vad)
    watch: Watch = field(default_factory=Watch)
    input: Input = field(default_factory=Input)
    jobs: Jobs = field(default_factory=Jobs)
    outputs: Outputs = field(default_factory=Outputs)
    oom: Oom = field(default_factory=Oom)
    batching: Batching = field(default_factory=Batching)
    overlap: Overlap = field(default_factory=Overlap)
    align: Align = field(default_factory=Align)
    diarize: Diarize = field(default_factory=Diarize)
    #: Inbox subfolder -> options for the files in it, e.g. {ru: {language: ru}}.
    routes: dict[str, JobOptions] = field(default_factory=dict)
    log: Log = field(default_factory=Log)
    metrics: Metrics = field(default_factory=Metrics)
    daemon: Daemon = field(default_factory=Daemon)
    #: The file this was read from (None: built-in defaults).
    source: Union[Path, None] = field(default=None, compare=False)


def load_config(path: Union[str, Path, None] = None) -> Config:
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
    folders = Folders(**{
        f.name: _absolute(getattr(config.folders, f.name), base)
        for f in dataclasses.fields(Folders)
    })
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
    return dataclasses.replace(config, folders=folders, model=model, diarize=diarize, align=align)


def check_values(config: Config) -> None:
    """Reject values of the right type that cannot work together."""
    _positive("model.batch_size", config.model.batch_size, allow_auto=True)
    _positive("model.cpu_threads", config.model.cpu_threads, allow_auto=True)
    _positive("model.beam_size", config.model.beam_size)
    _positive("jobs.max_attempts", config.jobs.max_attempts)
    _positive("oom.probe_after_jobs", config.oom.probe_after_jobs)
    if config.model.device_index < 0:
        raise ConfigError(f"model.device_index: expected 0 or more, got {config.model.device_index}")
    for key, value in [
        ("watch.settle_seconds", config.watch.settle_seconds),
        ("watch.poll_interval_seconds", config.watch.poll_interval_seconds),
        ("watch.rescan_seconds", config.watch.rescan_seconds),
        ("daemon.lease_seconds", config.daemon.lease_seconds),
        ("vad.chunk_seconds", config.vad.chunk_seconds),
    ]:
        if value <= 0:
            raise ConfigError(f"{key}: expected a number above 0, got {value}")
    if config.daemon.shutdown_grace_seconds < 0:
        raise ConfigError("daemon.shutdown_grace_seconds: expected 0 or more")
    if not 0 < config.vad.step_seconds <= 5:
        raise ConfigError("vad.step_seconds: expected a number above 0 and at most 5 (the VAD "
                          f"window's length), got {config.vad.step_seconds}")
    if not 0 < config.vad.offset <= config.vad.onset < 1:
        raise ConfigError("vad.onset, vad.offset: expected 0 < offset <= onset < 1")
    _check_formats("outputs.formats", config.outputs.formats)
    _positive("align.cache_size", config.align.cache_size)
    _positive("batching.max_files", config.batching.max_files)
    if config.batching.max_audio_seconds <= 0:
        raise ConfigError("batching.max_audio_seconds: expected a number above 0")
    _positive("overlap.files_ahead", config.overlap.files_ahead)
    for key in ("max_audio_seconds", "max_wait_seconds"):
        if getattr(config.overlap, key) <= 0:
            raise ConfigError(f"overlap.{key}: expected a number above 0")
    _check_job_options("diarize", config.diarize.min_speakers, config.diarize.max_speakers, None)
    for folder, options in config.routes.items():
        if not folder or folder.startswith(("/", ".")) or "\\" in folder:
            raise ConfigError(f"routes.{folder}: expected a subfolder of the inbox, e.g. ru or calls/sales")
        check_job_options(options, f"routes.{folder}")
    _check_folders(config.folders)
    if config.metrics.stale_after_seconds <= 10:
        raise ConfigError("metrics.stale_after_seconds: expected more than 10 (the consumer's idle "
                          f"heartbeat is every 5 s), got {config.metrics.stale_after_seconds}")
    if config.metrics.listen is not None:
        parse_listen(config.metrics.listen)
    if not config.watch.extensions:
        raise ConfigError("watch.extensions: expected at least one extension")


def parse_listen(listen: str) -> tuple[str, int]:
    """Split "host:port" (the metrics listener) into its parts."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'metrics.listen: expected "host:port", e.g. "127.0.0.1:9108", got {listen!r}')
    return host.strip("[]"), int(port)


def to_plain(config: Config) -> dict[str, Any]:
    """The configuration as plain YAML-ready data (what `transcribed config` prints)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    data = plain(dataclasses.asdict(config))
    data.pop("source", None)
    return data


def render_yaml(config: Config) -> str:
    """The effective configuration as YAML."""
    return yaml.safe_dump(to_plain(config), sort_keys=False, allow_unicode=True)


# --- building dataclasses from plain data -------------------------------------------------------

def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'the top level'}: expected a mapping, got {_describe(data)}")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"{key_path}: unknown key{hint}")
        values[key] = _coerce(hints[key], value, key_path)
    return cls(**values)


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, path)
    if origin in (Union, types.UnionType):
        return _coerce_union(typing.get_args(hint), value, path)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        raise ConfigError(f"{path}: expected one of {', '.join(map(str, choices))}, got {_describe(value)}")
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_describe(value)}")
        return {str(k): _coerce(value_type, v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: expected a list of strings, got {_describe(value)}")
        return tuple(v.lower().lstrip(".") if path.endswith("extensions") else v for v in value)
    return _coerce_scalar(hint, value, path)


def _coerce_union(options: tuple[Any, ...], value: Any, path: str) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _coerce(option, value, path)
        except ConfigError as exc:
            errors.append(str(exc).split(": expected ", 1)[-1].split(", got ")[0])
    nullable = " or null" if type(None) in options else ""
    raise ConfigError(f"{path}: expected {' or '.join(errors)}{nullable}, got {_describe(value)}")


def _coerce_scalar(hint: Any, value: Any, path: str) -> Any:
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
    raise ConfigError(f"{path}: expected {names.get(hint, hint)}, got {_describe(value)}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__}"
    return repr(value)


# --- value checks --------------------------------------------------------------------------------

def _positive(key: str, value: Any, allow_auto: bool = False) -> None:
    if allow_auto and value == "auto":
        return
    if not isinstance(value, int) or value < 1:
        auto = ' or "auto"' if allow_auto else ""
        raise ConfigError(f"{key}: expected a positive integer{auto}, got {_describe(value)}")


def check_job_options(options: JobOptions, where: str) -> None:
    """Values of per-job options that cannot work (shared by routes and sidecar files)."""
    _check_job_options(where, options.min_speakers, options.max_speakers, options.formats)


def _check_job_options(where: str, min_speakers: int | None, max_speakers: int | None,
                       formats: tuple[str, ...] | None) -> None:
    for key, value in (("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None:
            _positive(f"{where}.{key}", value)
    if min_speakers and max_speakers and min_speakers > max_speakers:
        raise ConfigError(f"{where}.min_speakers: must not exceed {where}.max_speakers")
    if formats is not None:
        _check_formats(f"{where}.formats", formats)


def _check_formats(key: str, formats: tuple[str, ...]) -> None:
    unknown = [f for f in formats if f not in KNOWN_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"{key}: expected some of {', '.join(KNOWN_FORMATS)}, got {list(formats)}")


def _check_folders(folders: Folders) -> None:
    paths = {f.name: getattr(folders, f.name) for f in dataclasses.fields(Folders)}
    seen: dict[str, str] = {}
    for name, path in paths.items():
        key = os.path.normpath(str(path))
        if key in seen:
            raise ConfigError(f"folders.{name}: must differ from folders.{seen[key]} (both {path})")
        seen[key] = name
    inbox = os.path.normpath(str(folders.inbox))
    for name, path in paths.items():
        if name != "inbox" and os.path.normpath(str(path)).startswith(inbox + os.sep):
            raise ConfigError(f"folders.{name}: must not be inside folders.inbox")


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _names_a_directory(name: str, base: Path) -> bool:
    """A model name is a path when it is written as one, or names a folder next to the config.

    "Systran/faster-whisper-large-v3" is a hub id unless such a folder exists.
    """
    return name.startswith((".", "/", "~")) or (base / name).expanduser().is_dir()
