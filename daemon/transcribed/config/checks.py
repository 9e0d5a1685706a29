"""The rules between configuration values: each value has the right type (`.load` saw to that),
but some cannot work, alone or together (a zero lease, offset above onset, outbox inside inbox).

Every error names the key, as `.load`'s do.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse

from ..errors import ConfigError
from .engine import Vad
from .job_checks import (
    check_decoding,
    check_formats,
    check_job_options,
    check_languages,
    check_layout,
    check_speakers,
    check_track,
    describe,
    positive,
)
from .models import check_models
from .notify import check_notify
from .objectstore import check_objectstore
from .per_file import Library, Route
from .retention import check_retention
from .schedule import check_schedule
from .schema import (
    FOLDER_NAMES,
    HOOK_EVENTS,
    Config,
    Filters,
    Folders,
    Hooks,
    Input,
    Metrics,
)

#: The formats a library may write beside its media (subtitles a media server reads).
LIBRARY_FORMATS = ("srt", "vtt")
#: Longest step of pyannote's VAD window: the window itself is 5 s.
VAD_WINDOW_SECONDS = 5
#: The voice activity detectors the engine can run (engine/whisperx_engine.py, engine/silero.py).
VAD_METHODS = ("pyannote", "silero")
#: Silero's pause that ends a stretch: longer than a chunk would join nothing less than a chunk.
MAX_SILERO_SILENCE_SECONDS = 30.0
#: The consumer's idle heartbeat is every 5 s: a shorter staleness limit would flap.
MIN_STALE_AFTER_SECONDS = 10
#: packing: the least silence between two packed files (less was measured to read one file in the
#: light of the other), and the longest file packed (two must fit a 30 s window with their gap).
MIN_PACKING_GAP_SECONDS = 1.0
MAX_PACKED_AUDIO_SECONDS = 14.0


def check_values(config: Config) -> None:
    """Reject values of the right type that cannot work together."""
    _check_counts(config)
    _check_durations(config)
    _check_vad(config.vad)
    check_formats("outputs.formats", config.outputs.formats)
    check_layout("outputs", config.outputs.max_line_width, config.outputs.max_line_count)
    check_models(config.models)
    check_schedule(config.schedule)
    positive("align.cache_size", config.align.cache_size)
    _check_batching_and_overlap(config)
    check_speakers("diarize", config.diarize.min_speakers, config.diarize.max_speakers)
    _check_routes(config.routes, config.outputs.max_line_width)
    _check_libraries(config.libraries, config.outputs.max_line_width)
    _check_folders(config.folders)
    _check_metrics(config.metrics)
    _check_hooks(config.hooks)
    check_retention(config.retention)
    _check_input(config.input)
    check_track("audio.track", config.audio.track)
    check_decoding("model", config.model)
    check_languages("model.languages", config.model.languages)
    _check_filters(config.filters)
    check_objectstore(config.objectstore, config.jobs.max_attempts)
    parse_umask(config.daemon.umask)
    if not config.watch.extensions:
        raise ConfigError("watch.extensions: expected at least one extension")














def _check_filters(filters: Filters) -> None:
    if filters.max_repeats is not None:
        positive("filters.max_repeats", filters.max_repeats)
    rate = filters.max_words_per_speech_second
    if rate is not None and rate <= 0:
        raise ConfigError(f"filters.max_words_per_speech_second: expected a number above 0, got {rate}")


def parse_listen(listen: str) -> tuple[str, int]:
    """Split "host:port" (the metrics listener) into its parts."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'metrics.listen: expected "host:port", e.g. "127.0.0.1:9108", got {listen!r}')
    return host.strip("[]"), int(port)


def parse_umask(value: str | int) -> int:
    """`daemon.umask` as a number: octal text ("0007", "0o027"), or an int YAML read as octal."""
    try:
        mask = int(value.removeprefix("0o"), 8) if isinstance(value, str) else value
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise ConfigError(f'daemon.umask: expected an octal mode from "0000" to "0777", e.g. "0007", '
                          f"got {describe(value)}")
    return mask


def _check_input(settings: Input) -> None:
    if settings.max_audio_seconds != "auto" and settings.max_audio_seconds <= 0:
        raise ConfigError('input.max_audio_seconds: expected a number above 0 or "auto"')
    for root in settings.symlink_roots:
        if not os.path.isabs(root):
            raise ConfigError(f"input.symlink_roots: expected absolute folders, got {root!r}")
    if settings.symlink_roots and not settings.follow_symlinks:
        raise ConfigError("input.symlink_roots: set, but input.follow_symlinks is false (links "
                          "are then never followed)")




def _check_counts(config: Config) -> None:
    for key, value, allow_auto in (
        ("model.batch_size", config.model.batch_size, True),
        ("model.cpu_threads", config.model.cpu_threads, True),
        ("model.beam_size", config.model.beam_size, False),
        ("jobs.max_attempts", config.jobs.max_attempts, False),
        ("oom.probe_after_jobs", config.oom.probe_after_jobs, False),
    ):
        positive(key, value, allow_auto)
    if config.model.device_index < 0:
        raise ConfigError(f"model.device_index: expected 0 or more, got {config.model.device_index}")


def _check_durations(config: Config) -> None:
    for key, value in (
        ("watch.settle_seconds", config.watch.settle_seconds),
        ("watch.poll_interval_seconds", config.watch.poll_interval_seconds),
        ("watch.rescan_seconds", config.watch.rescan_seconds),
        ("daemon.lease_seconds", config.daemon.lease_seconds),
        ("vad.chunk_seconds", config.vad.chunk_seconds),
    ):
        if value <= 0:
            raise ConfigError(f"{key}: expected a number above 0, got {value}")
    if config.daemon.shutdown_grace_seconds < 0:
        raise ConfigError("daemon.shutdown_grace_seconds: expected 0 or more")
    if config.log.progress_seconds < 0:
        raise ConfigError(f"log.progress_seconds: expected 0 or more, got {config.log.progress_seconds}")
    unload = config.model.idle_unload_seconds
    if unload is not None and unload <= 0:
        raise ConfigError(f"model.idle_unload_seconds: expected a number above 0 or null (never), "
                          f"got {unload}")


def _check_vad(vad: Vad) -> None:
    steps = (("vad.step_seconds", vad.step_seconds), ("vad.long_step_seconds", vad.long_step_seconds))
    for key, step in steps:
        if not 0 < step <= VAD_WINDOW_SECONDS:
            raise ConfigError(f"{key}: expected a number above 0 and at most {VAD_WINDOW_SECONDS} "
                              f"(the VAD window's length), got {step}")
    if vad.method not in VAD_METHODS:
        raise ConfigError(f"vad.method: expected one of {', '.join(VAD_METHODS)}, got {vad.method!r}")
    if not 0 < vad.offset <= vad.onset < 1:
        raise ConfigError("vad.onset, vad.offset: expected 0 < offset <= onset < 1")
    if vad.long_method is not None and vad.long_method not in VAD_METHODS:
        raise ConfigError(f"vad.long_method: expected one of {', '.join(VAD_METHODS)}, "
                          f"got {vad.long_method!r}")
    for key, value in (("vad.long_seconds", vad.long_seconds), ("vad.recheck_seconds", vad.recheck_seconds),
                       ("vad.pad_seconds", vad.pad_seconds)):
        if value < 0:
            raise ConfigError(f"{key}: expected 0 or more, got {value}")
    if not 0 < vad.min_silence_seconds <= MAX_SILERO_SILENCE_SECONDS:
        raise ConfigError(f"vad.min_silence_seconds: expected a number above 0 and at most "
                          f"{MAX_SILERO_SILENCE_SECONDS}, got {vad.min_silence_seconds}")


def _check_batching_and_overlap(config: Config) -> None:
    positive("batching.max_files", config.batching.max_files)
    if config.batching.max_audio_seconds <= 0:
        raise ConfigError("batching.max_audio_seconds: expected a number above 0")
    positive("packing.max_files", config.packing.max_files)
    if config.packing.gap_seconds < MIN_PACKING_GAP_SECONDS:
        raise ConfigError(f"packing.gap_seconds: expected at least {MIN_PACKING_GAP_SECONDS} s of silence "
                          "between packed files")
    if not 0 < config.packing.max_audio_seconds <= MAX_PACKED_AUDIO_SECONDS:
        raise ConfigError(f"packing.max_audio_seconds: expected a number above 0 and at most "
                          f"{MAX_PACKED_AUDIO_SECONDS} (two files must fit one 30 s window)")
    positive("overlap.files_ahead", config.overlap.files_ahead)
    for key in ("max_audio_seconds", "max_wait_seconds"):
        if getattr(config.overlap, key) <= 0:
            raise ConfigError(f"overlap.{key}: expected a number above 0")


def _check_routes(routes: dict[str, Route], width: int | None) -> None:
    for folder, options in routes.items():
        if not folder or folder.startswith(("/", ".")) or "\\" in folder:
            raise ConfigError(f"routes.{folder}: expected a subfolder of the inbox, e.g. ru or calls/sales")
        check_job_options(options, f"routes.{folder}", width)
        if options.hooks_events is not None:
            _check_hook_events(f"routes.{folder}.hooks_events", options.hooks_events)


def _check_libraries(libraries: tuple[Library, ...], width: int | None) -> None:
    """Each library names its folder, real languages, subtitle formats and a one-word tag."""
    for i, lib in enumerate(libraries):
        where = f"libraries[{i}]"
        if lib.path is None:
            raise ConfigError(f"{where}.path: expected the library's folder, e.g. /media/movies")
        check_job_options(lib, where, width)
        if not lib.languages:
            raise ConfigError(f"{where}.languages: expected at least one language, e.g. [en]")
        check_languages(f"{where}.languages", lib.languages)
        if lib.formats is not None and not set(lib.formats) <= set(LIBRARY_FORMATS):
            raise ConfigError(f"{where}.formats: expected some of {', '.join(LIBRARY_FORMATS)} "
                              f"(subtitles a media server reads), got {list(lib.formats)}")
        if lib.tag is not None and not lib.tag.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}.tag: expected one word (letters, digits, - or _), e.g. "
                              f"transcribed or forced, got {lib.tag!r}")
        if lib.extensions is not None and not lib.extensions:
            raise ConfigError(f"{where}.extensions: expected at least one extension, or null for "
                              "watch.extensions")
        if lib.hooks_events is not None:
            _check_hook_events(f"{where}.hooks_events", lib.hooks_events)


def check_library_folders(config: Config) -> None:
    """A library must not overlap the daemon's own folders, nor another library (once the paths
    are absolute): the inbox's files move, a library's never do."""
    def inside(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip(os.sep) + os.sep)

    own = {f"folders.{name}": os.path.normpath(str(getattr(config.folders, name)))
           for name in FOLDER_NAMES}
    seen: dict[str, str] = {}
    for i, lib in enumerate(config.libraries):
        path = os.path.normpath(str(lib.path))
        for key, folder in {**own, **seen}.items():
            if inside(path, folder) or inside(folder, path):
                raise ConfigError(f"libraries[{i}].path: {path} overlaps {key} ({folder}); a library "
                                  "must be a folder of its own")
        seen[f"libraries[{i}].path"] = path


def _check_hooks(hooks: Hooks) -> None:
    """A command is an argv list (no shell splits it), a URL is http(s), the counts positive."""
    if hooks.command is not None:
        program = hooks.command[0] if hooks.command else ""
        if not program:
            raise ConfigError("hooks.command: expected a list: the program, then its arguments")
        if len(hooks.command) == 1 and " " in program and not os.path.exists(program):
            raise ConfigError(f"hooks.command: expected a list, e.g. [curl, -fsS, URL], got {program!r} "
                              "(no shell splits a string into words)")
    if hooks.url is not None:
        parts = urllib.parse.urlsplit(hooks.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"hooks.url: expected an http:// or https:// URL, got {hooks.url!r}")
    if hooks.timeout_seconds <= 0:
        raise ConfigError(f"hooks.timeout_seconds: expected a number above 0, got {hooks.timeout_seconds}")
    if hooks.retry_delay_seconds < 0:
        raise ConfigError("hooks.retry_delay_seconds: expected 0 or more")
    positive("hooks.max_attempts", hooks.max_attempts)
    _check_hook_events("hooks.events", hooks.events)
    check_notify(hooks.notify)



def _check_hook_events(key: str, events: tuple[str, ...]) -> None:
    unknown = [e for e in events if e not in HOOK_EVENTS]
    if unknown:
        raise ConfigError(f"{key}: expected some of {', '.join(HOOK_EVENTS)}, got {list(events)}")


def _check_metrics(metrics: Metrics) -> None:
    if metrics.stale_after_seconds <= MIN_STALE_AFTER_SECONDS:
        raise ConfigError(f"metrics.stale_after_seconds: expected more than {MIN_STALE_AFTER_SECONDS} "
                          "(the consumer's idle heartbeat is every 5 s), got "
                          f"{metrics.stale_after_seconds}")
    if metrics.listen is not None:
        parse_listen(metrics.listen)
    for network in metrics.status_page_clients:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"metrics.status_page_clients: expected networks or addresses, e.g. "
                              f"[127.0.0.0/8, \"::1\", 192.168.1.0/24], got {network!r}") from None








def _check_folders(folders: Folders) -> None:
    if folders.min_free_bytes != "auto" and (
            not isinstance(folders.min_free_bytes, int) or folders.min_free_bytes < 0):
        raise ConfigError('folders.min_free_bytes: expected a number of bytes (0 or more) or "auto", '
                          f"got {describe(folders.min_free_bytes)}")
    paths = {name: getattr(folders, name) for name in FOLDER_NAMES}
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
