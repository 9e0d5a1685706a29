"""The configuration: what the keys are and their defaults (`schema`), what one job, route or
library may set (`per_file`) and its rules (`job_checks`), the engine's sections (`engine`: how
speech is found, files share model calls, work is prepared ahead, out of memory is met),
notifications (`notify`), what is kept and for how long (`retention`), several models and their
budget (`models`), quiet hours (`schedule`), words files (`vocabulary`), reading a YAML file into
them and printing it back (`load`), and the rules between values (`checks`).

Callers import from here, e.g. `from transcribed.config import Config, load_config`: which of the
modules holds a name is this package's business.
"""

from .checks import check_values, parse_listen
from .engine import Batching, Oom, Overlap, Packing, Vad
from .job_checks import check_job_options
from .load import load_config, parse_config, parse_options, render_yaml, resolve_paths, to_plain
from .notify import Notify
from .objectstore import ObjectStore
from .per_file import Auto, JobOptions, Library, Route
from .retention import RETENTION_FOLDERS, Keep, Retention, parse_size
from .schema import (
    CONFIG_ENV,
    DEFAULT_EXTENSIONS,
    FOLDER_NAMES,
    HOOK_EVENTS,
    KNOWN_FORMATS,
    Align,
    Audio,
    Config,
    Daemon,
    Diarize,
    Filters,
    Folders,
    Hooks,
    Input,
    Jobs,
    Log,
    Metrics,
    Model,
    Outputs,
    Watch,
)

__all__ = [
    "CONFIG_ENV", "DEFAULT_EXTENSIONS", "FOLDER_NAMES", "HOOK_EVENTS", "KNOWN_FORMATS", "RETENTION_FOLDERS",
    "Align", "Audio", "Auto", "Batching", "Config", "Daemon", "Diarize", "Filters", "Folders", "Hooks",
    "Input", "JobOptions", "Jobs", "Keep", "Library", "Log", "Metrics", "Model", "Notify", "ObjectStore",
    "Oom", "Outputs", "Overlap", "Packing", "Retention", "Route", "Vad", "Watch",
    "check_job_options", "check_values", "load_config", "parse_config", "parse_listen",
    "parse_options", "parse_size", "render_yaml", "resolve_paths", "to_plain",
]
