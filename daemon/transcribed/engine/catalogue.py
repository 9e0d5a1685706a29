"""The Whisper models a daemon may run: every model its config names (`model.name`, the routes',
the libraries', `models.choices`), each found (downloaded) at start and its `auto` settings
decided for it, none but the default loaded yet; what a sidecar may choose among; which know
English only; and the memory budget the resident ones share (resident.py keeps them within it).

A model's size in memory is estimated from its weights (model.bin, stored as float16) for its
compute type, plus CTranslate2's own buffers: the budget is a bound on that estimate, and the
out-of-memory back-off on loading (resident.py) corrects what the estimate misses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..config.models import ModelChoice
from ..config.retention import parse_size
from ..errors import ConfigError
from .base import EngineSettings
from .hardware import GIB, HEADROOM_BYTES, Hardware, batch_room_bytes, choose
from .models import weights_bytes

if TYPE_CHECKING:
    from .models import ResolvedModel

#: CTranslate2's buffers beside a Whisper model's weights (its vocabulary, the decoder's caches
#: of one call at batch 1): a floor under every estimate.
MODEL_OVERHEAD_BYTES = 64 * 1024**2
#: On the CPU, `models.memory_budget: auto` leaves this much of the memory limit to the audio
#: being transcribed, the VAD and the libraries (torch alone is about 1 GB).
CPU_RESERVE_BYTES = 4 * GIB
#: How many tokens an English-only Whisper vocabulary has; a multilingual one has more (CTranslate2
#: tells them apart by this count: `is_multilingual` is vocabulary size >= 51865).
ENGLISH_ONLY_VOCABULARY = 51864


@dataclass
class Catalogue:
    """The models an engine may run, by choice, and the budget their resident copies share."""

    default: ModelChoice
    settings: dict[ModelChoice, EngineSettings]
    #: True/False where known (from the model's vocabulary, then from the loaded model); absent:
    #: not known (a name's `.en` then tells).
    multilingual: dict[ModelChoice, bool] = field(default_factory=dict)
    #: Bytes the resident Whisper models may take together, and why that figure.
    budget_bytes: int = 0
    budget_reason: str = ""
    _estimates: dict[ModelChoice, int] = field(default_factory=dict, repr=False)

    @classmethod
    def single(cls, settings: EngineSettings, model: ModelChoice | None = None) -> Catalogue:
        """One model: the engine's own (an engine built without a config's catalogue)."""
        choice = model or ModelChoice(settings.model, settings.compute_type)
        estimate = resident_bytes(settings)
        return cls(choice, {choice: settings}, budget_bytes=estimate, budget_reason="one model only")

    @property
    def several(self) -> bool:
        """Does any job run with another model than the default?"""
        return len(self.settings) > 1

    def offers(self, model: ModelChoice) -> bool:
        return model in self.settings

    def settings_for(self, model: ModelChoice | None) -> EngineSettings:
        """The settings `model` runs with (None, or one not offered: the default's)."""
        return self.settings.get(model or self.default, self.settings[self.default])

    def english_only(self, model: ModelChoice) -> bool:
        """Does `model` know English only (one not offered: the default)?"""
        model = model if model in self.settings else self.default
        known = self.multilingual.get(model)
        return not known if known is not None else model.name.endswith(".en")

    def estimate(self, model: ModelChoice) -> int:
        """The bytes `model` is expected to take while loaded (its weights' size read once)."""
        if model not in self._estimates:
            self._estimates[model] = resident_bytes(self.settings_for(model))
        return self._estimates[model]

    def describe(self) -> dict[str, object]:
        """For `models.budget`: the budget, why, and each model's estimate."""
        return {"budget_bytes": self.budget_bytes, "budget_from": self.budget_reason,
                "default": self.default.describe(),
                "models": {m.describe(): self.estimate(m) for m in self.settings}}


def resident_bytes(settings: EngineSettings) -> int:
    """The memory a loaded Whisper model takes, by its float16 weights' size for its compute type."""
    weights = weights_bytes(settings.model, Path(settings.model_path))
    compute_type = settings.compute_type
    if compute_type.startswith("int8"):
        weights //= 2
    elif compute_type == "float32":
        weights *= 2
    return weights + MODEL_OVERHEAD_BYTES


def build_catalogue(config: Config, hardware: Hardware, resolve: Callable[[str], ResolvedModel],
                    cpu_limit: int) -> Catalogue:
    """Every model the config names, found and its settings decided (a ConfigError names the key
    that names it), and the budget; the default model first."""
    settings: dict[ModelChoice, EngineSettings] = {}
    multilingual: dict[ModelChoice, bool] = {}
    for choice, key in config.named_models().items():
        with _errors_named(key):
            found = resolve(choice.name)
            model = dataclasses.replace(config.model, name=choice.name,
                                        compute_type=choice.compute_type)  # type: ignore[arg-type]
            settings[choice] = choose(model, hardware, found.path, found.source)
        known = multilingual_by_vocabulary(found.path)
        if known is not None:
            multilingual[choice] = known
    catalogue = Catalogue(config.default_model, settings, multilingual)
    catalogue.budget_bytes, catalogue.budget_reason = memory_budget(config, catalogue, hardware, cpu_limit)
    return catalogue


def memory_budget(config: Config, catalogue: Catalogue, hardware: Hardware,
                  cpu_limit: int) -> tuple[int, str]:
    """`models.memory_budget` in bytes, and why: as set, or for auto from the device's memory;
    never below the default model's own estimate (it is loaded at start whatever the budget)."""
    floor = catalogue.estimate(catalogue.default)
    setting = config.models.memory_budget
    if setting != "auto":
        return max(floor, parse_size(setting, "models.memory_budget")), "models.memory_budget"
    default = catalogue.settings_for(None)
    if default.device == "cuda":
        if hardware.free_bytes is None:
            total = sum(catalogue.estimate(m) for m in catalogue.settings)
            return total, "GPU memory unknown: every model named may stay"
        room = batch_room_bytes(default)
        budget = hardware.free_bytes - HEADROOM_BYTES - room
        return max(floor, budget), (f"{hardware.free_bytes / GIB:.1f} GiB free on the GPU at start, less "
                                    f"{HEADROOM_BYTES / GIB:.1f} GiB for the VAD and CUDA libraries and "
                                    f"{room / GIB:.1f} GiB for batches of {default.batch_size}")
    budget = cpu_limit - CPU_RESERVE_BYTES
    return max(floor, budget), (f"{cpu_limit / GIB:.1f} GiB of memory this process may use, less "
                                f"{CPU_RESERVE_BYTES / GIB:.0f} GiB for audio and the libraries")


def multilingual_by_vocabulary(path: Path) -> bool | None:
    """Does the model at `path` know more than English? CTranslate2's own rule, from the size of
    its vocabulary file (vocabulary.json or .txt); None when there is none to read."""
    json_file, text_file = path / "vocabulary.json", path / "vocabulary.txt"
    try:
        if json_file.is_file():
            count = len(json.loads(json_file.read_text(encoding="utf-8")))
        elif text_file.is_file():
            with open(text_file, encoding="utf-8") as lines:
                count = sum(1 for _ in lines)
        else:
            return None
    except (OSError, ValueError):
        return None
    return count > ENGLISH_ONLY_VOCABULARY


@contextlib.contextmanager
def _errors_named(key: str) -> Iterator[None]:
    """A ConfigError about a model (its messages name `model.name`, `model.compute_type`...)
    names the key of the place that chose it instead: `routes.talks.model.name: ...`."""
    try:
        yield
    except ConfigError as exc:
        text = str(exc)
        if key == "model.name" or not text.startswith("model."):
            raise
        if key.startswith("models.choices"):
            raise ConfigError(key + text.partition(":")[1] + text.partition(":")[2]) from None
        raise ConfigError(key + text.removeprefix("model")) from None
