"""The configuration's keys and their defaults: one frozen dataclass per section of the YAML.

The defaults here are the documented defaults. Reading a file into these (and its checks) is
`transcribed.config.parse`; the values that must agree with each other are `.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..languages import Language
from .engine import Batching, Oom, Overlap, Packing, Vad
from .models import ComputeType, ModelChoice, Models, choose_model
from .notify import Notify
from .objectstore import ObjectStore
from .per_file import Auto, Library, Route
from .retention import Retention
from .schedule import Schedule

#: Extensions taken from the inbox by default: audio, then video (phones, cameras and camcorders,
#: DVD and DVR recordings, conference and web recordings). Each is a container PyAV decodes, most
#: proven by a form of the conformance matrix (tests/support/media_forms.py; docs/inputs.md).
DEFAULT_EXTENSIONS = (
    "wav", "mp3", "m4a", "flac", "ogg", "oga", "opus", "webm", "mp4", "mkv", "mov", "aac", "wma",
    "aiff", "aif", "amr", "3gp", "m4v", "avi", "mpeg", "mpg", "ts", "caf",
    "aifc", "au", "w64", "wv", "mka", "m4b", "spx", "awb", "weba", "ac3", "mp2",
    "m2ts", "mts", "m2t", "mod", "tod", "vob", "vro", "mxf", "dv", "flv", "f4v", "wmv", "asf",
    "ogv", "divx", "3g2",
)
#: Formats whisperx's own writers produce (aud: Audacity's labels, one line per segment).
KNOWN_FORMATS = ("json", "txt", "srt", "vtt", "tsv", "aud")
#: Where the configuration comes from when --config is not given.
CONFIG_ENV = "TRANSCRIBED_CONFIG"
#: The keys of `folders` that are folders (the others are settings about them).
FOLDER_NAMES = ("inbox", "outbox", "done", "failed", "state")



@dataclass(frozen=True)
class Folders:
    """Where files arrive, where results go, and where jobs in flight live."""

    inbox: Path = Path("data/inbox")
    outbox: Path = Path("data/outbox")
    done: Path = Path("data/done")
    failed: Path = Path("data/failed")
    #: Claimed jobs, worker leases, the status file. Must share a filesystem with the others.
    state: Path = Path("data/state")
    #: No new file is claimed while the folders' filesystem has less free space than this (bytes),
    #: so a nearly full share stops taking work before a write fails; jobs in flight go on. auto:
    #: twice what the longest file `input.max_audio_seconds` allows writes (about 1 kB of results
    #: per second of audio), at least 64 MiB. 0: no floor (a full disk is still waited out).
    min_free_bytes: int | Auto = "auto"


@dataclass(frozen=True)
class Model:
    """Which Whisper model runs, where, and how."""

    #: A size name (tiny, tiny.en, base, ... large-v3, large-v3-turbo) or a local model directory.
    name: str = "tiny.en"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    device_index: int = 0
    #: auto: float16 on a GPU (int8_float16 when memory is short), int8 on the CPU.
    compute_type: ComputeType = "auto"
    #: auto: 16 on a large enough GPU, 4 on the CPU. Halved on CUDA out-of-memory.
    batch_size: int | Auto = "auto"
    #: null: detect per file (multilingual models); English-only models always use "en".
    #: A code (de) or whisperX's name of it (German).
    language: Language | None = None
    #: Detection picks the most probable of these (codes or names, e.g. [en, de]); empty: any.
    languages: tuple[Language, ...] = ()
    #: transcribe: text in the spoken language; translate: English text (Whisper's translation;
    #: needs a multilingual model, and is not word-aligned: docs/languages.md).
    task: Literal["transcribe", "translate"] = "transcribe"
    #: auto: the CPUs this process may use.
    cpu_threads: int | Auto = "auto"
    beam_size: int = 5
    #: Named models are downloaded here once, then used offline.
    download_dir: Path = Path("data/models")
    #: Release the models (Whisper, VAD, aligners, diarization) and the GPU memory they hold after
    #: this many seconds with nothing to do; the next file loads them again first. null: never
    #: (they stay resident).
    idle_unload_seconds: float | None = None
    #: A chunk whose no-speech probability is above this and whose average log-probability is
    #: below `log_prob_threshold` is silence (Whisper's rule; the no_speech filter drops it).
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    #: With `temperature_fallback`: a chunk whose text compresses more than this (a loop), or
    #: whose log-probability is below `log_prob_threshold`, is decoded again, hotter.
    compression_ratio_threshold: float = 2.4
    #: Decode a chunk again at temperatures 0.2 ... 1.0 when it fails the thresholds above, as
    #: faster-whisper does (whisperx's batched pipeline decodes each chunk once).
    temperature_fallback: bool = False
    #: Prompt each chunk with the previous chunk's text; the chunks of a file are then decoded
    #: one after another (no batching within the file).
    condition_on_previous_text: bool = False
    #: Text that steers the decoder for every file: a sentence in the recordings' style with their
    #: names in it. A route, library or sidecar may set its own (docs/configuration.md#vocabulary).
    initial_prompt: str | None = None
    #: Names and jargon Whisper should favour for every file ("Claflin, Subiaco, HbA1c").
    hotwords: str | None = None
    #: A file of such words, one a line (# comments), joined after `hotwords`; read again when it
    #: changes. Whisper reads about 220 tokens of the two together.
    hotwords_file: Path | None = None


@dataclass(frozen=True)
class Watch:
    """How new files are noticed and when they count as complete."""

    #: auto: polling when the inbox is on a network filesystem (nfs, cifs/smb, fuse...).
    polling: bool | Auto = "auto"
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
    #: Follow a symbolic link in the inbox (else it goes to failed/ as not_a_regular_file), and
    #: only to a target inside one of `symlink_roots` (docs/security.md).
    follow_symlinks: bool = False
    #: Absolute folders a followed link may point into.
    symlink_roots: tuple[str, ...] = ()
    #: Longer files go to failed/ as too_long, judged by their header before decoding. auto:
    #: from the memory this process may use (cgroup limit, else RAM) less room for the model;
    #: the figure is logged at start (input.limits).
    max_audio_seconds: float | Auto = "auto"


@dataclass(frozen=True)
class Audio:
    """Which audio stream of a file with several is transcribed."""

    #: auto: the stream flagged default, else the first; a number: that audio stream (0 is the
    #: first); a list of languages (two-letter, e.g. [de, en]): the first stream tagged with
    #: the first of them present, else auto.
    track: Auto | int | tuple[Language, ...] = "auto"


@dataclass(frozen=True)
class Filters:
    """Post-filters over the transcript against Whisper's hallucinations (docs/quality.md)."""

    #: Drop segments that are silence by `model.no_speech_threshold` and `model.log_prob_threshold`.
    no_speech: bool = True
    #: A phrase repeated more than this many times in a row is kept once; null: never collapsed.
    #: 8: a corpus speaker says one word 5 times, which a limit of 4 would cut (docs/quality.md).
    max_repeats: int | None = 8
    #: Drop segments with more words than this per second of speech the VAD found under them
    #: (text over music or silence); null: off.
    max_words_per_speech_second: float | None = None


@dataclass(frozen=True)
class Jobs:
    """Retries and poison files."""

    #: A file that has killed or failed the daemon this many times goes to failed/.
    max_attempts: int = 3
    #: Pause before retrying a job that failed for a reason other than its input.
    retry_delay_seconds: float = 5.0


@dataclass(frozen=True)
class Outputs:
    """Which transcript files are written, and the subtitle writers' options (a route, library or
    sidecar may set its own: TV subtitles and meeting notes want different lines)."""

    formats: tuple[str, ...] = ("json", "txt", "srt", "vtt")
    #: Characters per subtitle line, and lines per cue (needs max_line_width); null: one cue per
    #: segment as Whisper cut it. They apply where words have timings (alignment).
    max_line_width: int | None = None
    max_line_count: int | None = None
    #: Underline each word in SRT/VTT as it is spoken (karaoke style; needs word timings).
    highlight_words: bool = False


@dataclass(frozen=True)
class Align:
    """Word timestamps by forced alignment (a wav2vec2 model per language)."""

    #: auto: where a model for the language is at hand (log line when not); true: a missing model
    #: fails the job (the plain transcript is kept); false: never.
    enabled: bool | Auto = "auto"
    #: null: whisperx's default per language; a Hugging Face name or a local directory for all
    #: languages; or a mapping language -> name or directory.
    model: str | dict[Language, str] | None = None
    #: Languages whose models are loaded (downloaded once) at start; the configured language and
    #: English for .en models always are. At job time models are only loaded from disk.
    preload: tuple[Language, ...] = ()
    #: How many languages' models stay resident.
    cache_size: int = 2


@dataclass(frozen=True)
class Diarize:
    """Speaker labels (a pyannote pipeline)."""

    enabled: bool = False
    #: A local pipeline directory (with config.yaml) or a Hugging Face id.
    model: str = "pyannote/speaker-diarization-community-1"
    #: A file holding the Hugging Face token for gated pipelines (else $HF_TOKEN). Never logged.
    token_file: Path | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    #: true: refuse to start when the pipeline cannot be loaded (else run without speakers).
    required: bool = False


#: The job outcomes a completion hook can fire on.
HOOK_EVENTS = ("done", "failed")


@dataclass(frozen=True)
class Hooks:
    """What runs, or is called, when a job ends: a command and a webhook (docs/hooks.md).

    Only the daemon's own config sets these: whoever can write to the inbox must not choose what
    the daemon runs or calls.
    """

    #: An argv list (no shell), run with the job's JSON on stdin and TRANSCRIBED_* variables.
    command: tuple[str, ...] | None = None
    #: An http(s) URL the job's JSON is POSTed to.
    url: str | None = None
    #: A file holding the key of the body's HMAC-SHA256 signature header. Never logged.
    secret_file: Path | None = None
    #: A command still running, or a request unanswered, this long is killed and counts as failed.
    timeout_seconds: float = 60.0
    #: Tries per delivery (the first included) before it is given up (kept in state/hooks/gave_up).
    max_attempts: int = 5
    #: Pause before the second try; it doubles for each further one (up to an hour).
    retry_delay_seconds: float = 10.0
    #: Which outcomes fire (overridable per route with `hooks_events`).
    events: tuple[str, ...] = HOOK_EVENTS
    #: Notifications through Apprise, a URL file away.
    notify: Notify = field(default_factory=Notify)


@dataclass(frozen=True)
class Log:
    """The log stream on stdout."""

    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: `job.progress` events: at most one per this many seconds (and per 5 % of the job); also
    #: `model.download_progress` while a named model downloads (at most every 0.5 s).
    progress_seconds: float = 10.0


@dataclass(frozen=True)
class Metrics:
    """The optional HTTP listener for /metrics and /healthz."""

    #: host:port, e.g. 127.0.0.1:9108; null = off.
    listen: str | None = None
    #: /healthz and `status --check` say unhealthy when the consumer's heartbeat is older than
    #: this (it beats at least every 5 s, and during long jobs from the engine's progress).
    stale_after_seconds: float = 120.0
    #: Networks whose clients may read the status page at / (a person's view: file names, the
    #: last jobs and their errors). Loopback only by default; [] turns the page off.
    status_page_clients: tuple[str, ...] = ("127.0.0.0/8", "::1")


@dataclass(frozen=True)
class Daemon:
    """The process: stopping, and sharing an inbox with other daemons."""

    #: On SIGTERM the current job may finish within this time, or goes back to the inbox.
    shutdown_grace_seconds: float = 30.0
    #: Another host's claims are taken back when its lease has not been renewed for this long
    #: (also another container or a rebooted host sharing the state folder). On NFS, keep the
    #: attribute cache (actimeo) well below it.
    lease_seconds: float = 60.0
    #: Octal umask applied at start, before any file is created: the modes of results, moved
    #: folders and state (0007: no access for others; quote it, "0007", or YAML reads 0o007 as text).
    umask: str | int = "0007"


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    folders: Folders = field(default_factory=Folders)
    model: Model = field(default_factory=Model)
    vad: Vad = field(default_factory=Vad)
    watch: Watch = field(default_factory=Watch)
    input: Input = field(default_factory=Input)
    audio: Audio = field(default_factory=Audio)
    filters: Filters = field(default_factory=Filters)
    jobs: Jobs = field(default_factory=Jobs)
    outputs: Outputs = field(default_factory=Outputs)
    oom: Oom = field(default_factory=Oom)
    batching: Batching = field(default_factory=Batching)
    packing: Packing = field(default_factory=Packing)
    overlap: Overlap = field(default_factory=Overlap)
    align: Align = field(default_factory=Align)
    diarize: Diarize = field(default_factory=Diarize)
    #: Inbox subfolder -> options for the files in it, e.g. {ru: {language: ru}}.
    routes: dict[str, Route] = field(default_factory=dict)
    #: Media library folders whose files get subtitles beside them (docs/libraries.md).
    libraries: tuple[Library, ...] = ()
    #: Several Whisper models (a route's, library's or sidecar's `model`): which stay resident.
    models: Models = field(default_factory=Models)
    #: Quiet hours: windows of local time in which no new job starts.
    schedule: Schedule = field(default_factory=Schedule)
    hooks: Hooks = field(default_factory=Hooks)
    retention: Retention = field(default_factory=Retention)
    #: Media and results in S3-compatible storage, jobs from a shared queue (docs/scale.md).
    objectstore: ObjectStore = field(default_factory=ObjectStore)
    log: Log = field(default_factory=Log)
    metrics: Metrics = field(default_factory=Metrics)
    daemon: Daemon = field(default_factory=Daemon)
    #: The file this was read from (None: built-in defaults).
    source: Path | None = field(default=None, compare=False)

    @property
    def default_model(self) -> ModelChoice:
        """The daemon-wide model: every file's, unless its route, library or sidecar names another."""
        return ModelChoice(self.model.name, self.model.compute_type)

    def named_models(self) -> dict[ModelChoice, str]:
        """Every model this config names, with the key that names it first: the daemon's, the
        routes' (libraries are routes over their folders once the service starts, and named as
        libraries before), the libraries' and `models.choices` (as `auto` compute types)."""
        named = {self.default_model: "model.name"}
        places = [(f"routes.{folder}.model", route.model) for folder, route in self.routes.items()]
        places += [(f"libraries[{i}].model", lib.model) for i, lib in enumerate(self.libraries)]
        for key, options in places:
            if options is not None:
                named.setdefault(choose_model(self.default_model, self.model.beam_size, [options])[0], key)
        for i, name in enumerate(self.models.choices):
            named.setdefault(ModelChoice(name), f"models.choices[{i}]")
        return named
