"""Word timestamps: whisperx's forced alignment, with resident models and no network at job time.

Models are loaded (downloaded once into `model.download_dir` if need be) at start for the
languages known then where alignment may run (`languages_to_preload`: also where a route or
library turns it on while `align.enabled` is false); a language met later is loaded from disk
only. A language with no model at hand is transcribed without word timestamps, said once in the
log (`align: auto`), or the job keeps its plain transcript and fails (`align: true`, daemon-wide
or per file). One that no model is known for at all, named where alignment must run, is refused
at start (`refuse_unalignable`).
"""

from __future__ import annotations

from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import logs
from ..config import Config, JobOptions, Library
from ..engine.base import Transcript
from ..errors import ConfigError

log = logs.get_logger()


class AlignModelMissing(Exception):
    """No alignment model for this language is at hand."""


def shipped_nltk_data() -> Path:
    """NLTK's Punkt sentence data shipped with the package (whisperx would download it)."""
    return Path(str(resources.files("transcribed") / "data" / "nltk_data"))


class Aligner:
    """Alignment models per language, a few kept resident, used by the consumer thread only."""

    def __init__(self, config: Config, device: str) -> None:
        self.config = config
        self.device = device
        self._models: OrderedDict[str, tuple[Any, dict[str, Any]]] = OrderedDict()
        self._missing: dict[str, str] = {}

    def model_name(self, language: str) -> str | None:
        """The configured model for `language`, else whisperx's default, else None."""
        configured = self.config.align.model
        if isinstance(configured, dict):
            configured = configured.get(language)
        if configured:
            return configured
        from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

        torch_default: str | None = DEFAULT_ALIGN_MODELS_TORCH.get(language)
        return torch_default or DEFAULT_ALIGN_MODELS_HF.get(language)

    def preload(self, languages: list[str]) -> None:
        """Load (and if need be download) the models for `languages` before the first job."""
        _use_shipped_nltk_data()
        for language in dict.fromkeys(languages):
            try:
                self._load(language, download=True)
            except AlignModelMissing as exc:
                self._missing[language] = str(exc)
                log.warning("align.unavailable", language=language, reason=str(exc),
                            effect="no word timestamps for this language")

    def release(self) -> list[str]:
        """Drop the resident models (the idle unload); returns their languages, for `reload`."""
        languages = list(self._models)
        self._models.clear()
        return languages

    def reload(self, languages: list[str]) -> None:
        """Load the models of `languages` again from disk (never the network: they were loaded
        before); one that cannot load is said in the log and its jobs go without words."""
        for language in languages:
            try:
                self._load(language, download=False)
            except AlignModelMissing as exc:
                self._missing[language] = str(exc)
                log.warning("align.unavailable", language=language, reason=str(exc))

    def align(self, result: Transcript, samples: np.ndarray) -> Transcript:
        """`result` with words (start, end, score) per segment; raises AlignModelMissing."""
        language = result["language"]
        if language is None:  # engines always name one; without it no model can be chosen
            raise AlignModelMissing("the transcript names no language to choose an alignment model by")
        try:
            model, metadata = self._load(language, download=False)
        except AlignModelMissing as exc:
            if language not in self._missing:
                self._missing[language] = str(exc)
                log.warning("align.unavailable", language=language, reason=str(exc))
            raise
        import whisperx

        _use_shipped_nltk_data()  # also when nothing was preloaded (align.enabled false, a file asked)
        with logs.prints_as_logs("whisperx"):
            aligned: Transcript = whisperx.align(result["segments"], model, metadata, samples,
                                                 self.device, return_char_alignments=False)
        # align() drops these; the writers need the language.
        aligned["language"] = language
        aligned["language_probability"] = result.get("language_probability")
        return aligned

    def _load(self, language: str, download: bool) -> tuple[Any, dict[str, Any]]:
        if language in self._models:
            self._models.move_to_end(language)
            return self._models[language]
        if language in self._missing and not download:
            raise AlignModelMissing(self._missing[language])
        name = self.model_name(language)
        if name is None:
            raise AlignModelMissing(f"no alignment model is known for language {language!r}; "
                                    "set align.model")
        if not download and not _on_disk(name, self.config.model.download_dir):
            raise AlignModelMissing(f"the alignment model {name} is not in "
                                    f"{self.config.model.download_dir}; add {language} to align.preload")
        loaded = self._read(name, language, download)
        self._models[language] = loaded
        while len(self._models) > self.config.align.cache_size:
            evicted, _ = self._models.popitem(last=False)
            log.info("align.model_evicted", language=evicted)
        return loaded

    def _read(self, name: str, language: str, download: bool) -> tuple[Any, dict[str, Any]]:
        import whisperx

        download_dir = self.config.model.download_dir
        log.info("align.model_loading", language=language, model=name)
        try:
            with logs.prints_as_logs("whisperx"):
                loaded: tuple[Any, dict[str, Any]] = whisperx.load_align_model(
                    language, self.device, model_name=name, model_dir=str(download_dir),
                    model_cache_only=not download)
        except Exception as exc:  # noqa: BLE001 - torchaudio, transformers and urllib all differ
            raise AlignModelMissing(f"cannot load {name}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        return loaded


def _aligns(config: Config, options: JobOptions) -> bool:
    """Whether a route's (or library's) files may be aligned: its `align`, else `align.enabled`;
    never a translation."""
    wanted = options.align if options.align is not None else config.align.enabled
    return wanted is not False and (options.task or config.model.task) != "translate"


def languages_to_preload(config: Config, english_only: bool) -> list[str]:
    """The languages whose models are loaded at start: those the configuration names where
    alignment may run. `align.preload`, `model.language` and English for an English-only model
    when any file may be aligned; each route's and library's language (a library's candidate
    languages too) unless alignment is off for it."""
    per_file: list[JobOptions] = [*config.routes.values(), *config.libraries]
    anywhere = _aligns(config, JobOptions()) or any(_aligns(config, o) for o in per_file)
    if not anywhere:
        return []
    languages = [*config.align.preload, *(["en"] if english_only else [])]
    if config.model.language and _aligns(config, JobOptions()):
        languages.append(config.model.language)
    for options in per_file:
        if _aligns(config, options):
            languages += [options.language] if options.language else []
            if isinstance(options, Library) and options.language is None:
                languages += options.languages  # one of these is spoken
    return list(dict.fromkeys(languages))


def refuse_unalignable(config: Config, aligner: Aligner) -> None:
    """Refuse, naming the key, alignment asked for (`true`, daemon-wide or per route or library)
    in a language no model is known for (none in `align.model`, none among whisperx's
    defaults): no file of it could ever get words."""
    places: list[tuple[str, JobOptions]] = [("model", JobOptions(language=config.model.language))]
    places += [(f"routes.{folder}", o) for folder, o in config.routes.items() if not folder.startswith("/")]
    places += [(f"libraries[{i}]", lib) for i, lib in enumerate(config.libraries)]
    for where, options in places:
        forced = options.align if options.align is not None else config.align.enabled
        language = options.language or (config.model.language if where != "model" else None)
        if forced is True and language and _aligns(config, options) and aligner.model_name(language) is None:
            key = f"{where}.align" if options.align is not None else "align.enabled"
            raise ConfigError(f"{key}: true, but no alignment model is known for {language} "
                              f"({where}: language {language}); set align.model.{language} to a "
                              "wav2vec2 model (a hub name or a local directory)")


def _on_disk(name: str, download_dir: Path) -> bool:
    """Can `name` load without the network (a directory, or already downloaded)?"""
    if Path(name).is_dir():
        return True
    import torchaudio

    if name in torchaudio.pipelines.__all__:
        bundle = getattr(torchaudio.pipelines, name)
        return (download_dir / Path(bundle._path).name).is_file()
    return True  # a hub name: load_align_model(model_cache_only=True) never downloads


def _use_shipped_nltk_data() -> None:
    import nltk

    path = str(shipped_nltk_data())
    if path not in nltk.data.path:
        nltk.data.path.insert(0, path)
