"""Several Whisper models in one daemon: the `model` a route, library or sidecar may choose
(`ModelOptions`), and the `models` section, which bounds the ones kept resident together.

Apart from `schema` because a model choice is both a per-file key and a daemon-wide section,
with rules of their own (every error names the key, as `.checks`' do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from .retention import parse_size

#: CTranslate2's compute types (what a device offers is checked at start: engine/hardware.py).
ComputeType = Literal["auto", "float16", "int8_float16", "int8", "int8_float32", "float32", "bfloat16",
                      "int8_bfloat16"]


@dataclass(frozen=True)
class ModelChoice:
    """Which Whisper model a job runs with: a name as `model.name` takes (a folder as an absolute
    path), and its compute type (auto: decided for the model's size and the device). Two choices
    that differ are two models in memory; the beam size is no part of it (a decoding key)."""

    name: str
    compute_type: str = "auto"

    def describe(self) -> str:
        """How logs and reports name it: `large-v3-turbo`, or `large-v3-turbo (int8_float16)`."""
        return self.name if self.compute_type == "auto" else f"{self.name} ({self.compute_type})"


@dataclass(frozen=True)
class ModelOptions:
    """The Whisper model one route, library or sidecar runs with, and the keys that go with it.

    A `name` not given is the daemon's `model.name`; with it, the daemon's `compute_type`, unless
    this names its own. Another name with no `compute_type` gets `auto` (decided for that model's
    size and the device, as `model.compute_type: auto` is)."""

    #: As `model.name`: a size (base, large-v3-turbo), an owner/name hub id or a local folder.
    name: str | None = None
    compute_type: ComputeType | None = None
    #: As `model.beam_size` (a decoding key: no second copy of a model is loaded for it).
    beam_size: int | None = None


@dataclass(frozen=True)
class Models:
    """Which Whisper models stay resident together when routes, libraries or sidecars choose
    several (docs/configuration.md#several-models). One model only: nothing here applies."""

    #: The memory the resident Whisper models may take together, by their weights' size for their
    #: compute type: bytes, or a size with its unit ("6 GiB"). auto: on a GPU, what is free there at
    #: start less room for the VAD, the batches and the CUDA libraries; on the CPU, the memory this
    #: process may use (its cgroup's limit, else the RAM) less 4 GiB for audio and the libraries.
    #: A model that needs room evicts the least recently used ones; the figure is logged at start.
    memory_budget: int | str = "auto"
    #: Models a sidecar may choose besides those the config names (`model.name`, the routes' and
    #: the libraries'): found (downloaded) at start like them, loaded only when a file asks.
    choices: tuple[str, ...] = ()
    #: Waiting files that use a loaded model go first, so that models are not switched for every
    #: file; a file that needs another one waits at most this long before it goes first anyway.
    #: 0: strictly in order of arrival (every change of model in the queue loads one).
    max_wait_seconds: float = 600.0


def check_models(models: Models) -> None:
    """A size above 0 (or auto), model names that are names, a wait of 0 or more."""
    if models.memory_budget != "auto":
        parse_size(models.memory_budget, "models.memory_budget")
    if models.max_wait_seconds < 0:
        raise ConfigError(f"models.max_wait_seconds: expected 0 or more (0: strict arrival order), "
                          f"got {models.max_wait_seconds}")
    for i, name in enumerate(models.choices):
        if not name.strip():
            raise ConfigError(f"models.choices[{i}]: expected a model name, got {name!r}")


def check_model_options(options: ModelOptions, where: str) -> None:
    """A route's, library's or sidecar's `model`: a beam of at least 1, and something set."""
    if options.beam_size is not None and options.beam_size < 1:
        raise ConfigError(f"{where}.model.beam_size: expected a positive integer, got {options.beam_size}")
    if options.name is not None and not options.name.strip():
        raise ConfigError(f"{where}.model.name: expected a model name, got {options.name!r}")


def choose_model(default: ModelChoice, beam_size: int,
                 layers: list[ModelOptions | None]) -> tuple[ModelChoice, int]:
    """The model and beam size of a job whose places say `layers` (shallow to deep: its route or
    library, then its sidecar) over the daemon's `default`. A place that names another model
    gets that model with its own compute type (auto unless it says), not the daemon's."""
    name, compute_type = default.name, default.compute_type
    for layer in layers:
        if layer is None:
            continue
        if layer.name is not None and layer.name != name:
            name, compute_type = layer.name, "auto"
        if layer.compute_type is not None:
            compute_type = layer.compute_type
        if layer.beam_size is not None:
            beam_size = layer.beam_size
    return ModelChoice(name, compute_type), beam_size
