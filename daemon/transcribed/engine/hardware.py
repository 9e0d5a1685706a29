"""Deciding `auto`: which device, compute type, batch size and thread count, and why.

`probe()` asks torch and CTranslate2 what is really there; `choose()` is a pure function of
that answer, the configuration and the model's size, so every branch is tested without a GPU.
Settings that cannot work (cuda without CUDA, a GPU index beyond those visible, a compute type
the device lacks) are a ConfigError naming the key, not a stack trace at load time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Model
from ..errors import ConfigError
from .base import EngineSettings
from .models import weights_bytes

GIB = 1024**3
#: The user's guide: batch 16 on a GPU, 4 on the CPU.
GPU_BATCH_SIZE = 16
CPU_BATCH_SIZE = 4
#: pyannote's 5 s windows per segmentation batch on the CPU (whisperx's 32 is a GPU's size): 8
#: takes ~0.8x the time there, with the same speech (bench/pyannote_cpu.py).
CPU_VAD_BATCH_SIZE = 8
#: Memory one batch item needs, as a share of the float16 weights, plus a floor. A rough
#: measure (encoder activations and the beam's key/value caches of one 30 s window); the CUDA
#: out-of-memory back-off corrects it at run time.
ITEM_SHARE_OF_WEIGHTS = 0.15
ITEM_FLOOR_BYTES = 96 * 1024**2
#: Kept free for the VAD model, cuDNN workspaces and fragmentation.
HEADROOM_BYTES = int(1.5 * GIB)
#: What CTranslate2 offers on a CPU without asking it (the same on x86-64 and arm64).
CPU_COMPUTE_TYPES = frozenset({"int8", "int8_float32", "float32"})


@dataclass(frozen=True)
class Hardware:
    """What the process can use, as torch and CTranslate2 see it (after CUDA_VISIBLE_DEVICES)."""

    ct2_cuda_devices: int = 0
    torch_cuda_devices: int = 0
    gpu_name: str | None = None
    total_bytes: int | None = None
    free_bytes: int | None = None
    cuda_compute_types: frozenset[str] = field(default_factory=frozenset)
    cpu_compute_types: frozenset[str] = CPU_COMPUTE_TYPES
    cpu_count: int = 1
    #: $CUDA_VISIBLE_DEVICES as the process saw it (None: unset, all GPUs visible).
    visible_devices: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def torch_cuda(self) -> bool:
        """torch can use at least one CUDA device."""
        return self.torch_cuda_devices > 0

    @property
    def cuda_devices(self) -> int:
        """The GPUs both libraries can use: the Whisper model needs CTranslate2, the VAD torch."""
        return min(self.ct2_cuda_devices, self.torch_cuda_devices)


def probe(device_index: int = 0) -> Hardware:
    """Ask CTranslate2 and torch about CUDA (honours CUDA_VISIBLE_DEVICES) and count usable CPUs."""
    import ctranslate2

    problems: list[str] = []
    ct2_devices = ctranslate2.get_cuda_device_count()  # 0 without a driver; does not raise
    cuda_types: frozenset[str] = frozenset()
    if ct2_devices > device_index:
        try:
            cuda_types = frozenset(ctranslate2.get_supported_compute_types("cuda", device_index))
        except (RuntimeError, ValueError) as exc:
            problems.append(f"CTranslate2: {_first_line(exc)}")
    try:
        cpu_types = frozenset(ctranslate2.get_supported_compute_types("cpu"))
    except (RuntimeError, ValueError):
        cpu_types = CPU_COMPUTE_TYPES
    count, name, total, free = _torch_cuda(device_index, problems)
    return Hardware(ct2_devices, count, name, total, free, cuda_types, cpu_types, usable_cpus(),
                    os.environ.get("CUDA_VISIBLE_DEVICES"), tuple(problems))


def _torch_cuda(device_index: int, problems: list[str]) -> tuple[int, str | None, int | None, int | None]:
    import torch

    try:
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                problems.append("torch is a CPU-only build")
            return 0, None, None, None
        count = torch.cuda.device_count()
        if count <= device_index:
            return count, None, None, None
        free, total = torch.cuda.mem_get_info(device_index)
        return count, torch.cuda.get_device_name(device_index), int(total), int(free)
    except RuntimeError as exc:
        problems.append(f"torch: {_first_line(exc)}")
        return 0, None, None, None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as in a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def choose(model: Model, hardware: Hardware, model_path: Path, model_source: str) -> EngineSettings:
    """Resolve every `auto` in the model section from the hardware, with a reason for each choice."""
    reasons: dict[str, str] = {}
    device = _choose_device(model, hardware, reasons)
    weights = weights_bytes(model.name, model_path)
    compute_type = _choose_compute_type(model, hardware, device, weights, reasons)
    batch_size = _choose_batch_size(model, hardware, device, weights, compute_type, reasons)
    threads = model.cpu_threads if model.cpu_threads != "auto" else hardware.cpu_count
    reasons["cpu_threads"] = ("set in the config" if model.cpu_threads != "auto"
                              else f"{threads} CPUs usable by this process")
    index = model.device_index if device == "cuda" else 0
    return EngineSettings(model.name, str(model_path), model_source, device, index,
                          compute_type, batch_size, int(threads), reasons)


def _choose_device(model: Model, hardware: Hardware, reasons: dict[str, str]) -> str:
    visible = (f" (CUDA_VISIBLE_DEVICES={hardware.visible_devices})"
               if hardware.visible_devices is not None else "")
    if 0 < hardware.cuda_devices <= model.device_index and model.device != "cpu":
        raise ConfigError(
            f"model.device_index: {model.device_index}, but only {hardware.cuda_devices} CUDA "
            f"device(s) are visible{visible}, numbered from 0")
    if model.device == "cpu":
        reasons["device"] = "set in the config"
        return "cpu"
    if hardware.cuda_devices > model.device_index:
        reasons["device"] = ("set in the config; " if model.device == "cuda" else "") + (
            f"CUDA device {model.device_index} ({hardware.gpu_name}){visible} seen by torch and "
            "CTranslate2")
        return "cuda"
    why = "; ".join(_why_no_cuda(hardware, visible))
    if model.device == "cuda":
        raise ConfigError(f"model.device: cuda, but no usable CUDA device: {why}; set model.device "
                          "to auto or cpu, or run `transcribed doctor` to see what is missing")
    reasons["device"] = f"no usable GPU: {why}"
    return "cpu"


def _why_no_cuda(hardware: Hardware, visible: str) -> list[str]:
    why = []
    if hardware.visible_devices is not None and hardware.visible_devices.strip() in ("", "-1"):
        why.append(f"CUDA_VISIBLE_DEVICES={hardware.visible_devices!r} hides every GPU")
    if hardware.ct2_cuda_devices == hardware.torch_cuda_devices == 0:
        why.append(f"CTranslate2 and torch see no CUDA device{visible}")
    else:
        why.append(f"CTranslate2 sees {hardware.ct2_cuda_devices} CUDA device(s), torch "
                   f"{hardware.torch_cuda_devices}{visible}")
    return why + list(hardware.problems)


def _choose_compute_type(model: Model, hardware: Hardware, device: str, weights: int,
                         reasons: dict[str, str]) -> str:
    supported = hardware.cuda_compute_types if device == "cuda" else hardware.cpu_compute_types
    if model.compute_type != "auto":
        if supported and model.compute_type not in supported:
            raise ConfigError(
                f"model.compute_type: {model.compute_type} is not supported on the {device} "
                f"here (CTranslate2 offers {', '.join(sorted(supported))}); use auto")
        reasons["compute_type"] = "set in the config"
        return model.compute_type
    if device == "cpu":
        reasons["compute_type"] = "int8 is the fastest type on a CPU"
        return "int8"
    short = hardware.free_bytes is not None and hardware.free_bytes < 2 * weights + HEADROOM_BYTES
    if short and "int8_float16" in supported:
        reasons["compute_type"] = (f"{_gib(hardware.free_bytes)} free is short for "
                                   f"{_gib(weights)} of float16 weights; int8_float16 halves them")
        return "int8_float16"
    if "float16" in supported or not supported:
        reasons["compute_type"] = "float16 is supported by this GPU" + (
            f" and {_gib(hardware.free_bytes)} is free" if hardware.free_bytes is not None else "")
        return "float16"
    if "int8" in supported:
        reasons["compute_type"] = ("this GPU has no efficient float16; int8 (with float32) is faster "
                                   "than float32")
        return "int8"
    reasons["compute_type"] = "this GPU has neither efficient float16 nor int8; float32"
    return "float32"


def _choose_batch_size(model: Model, hardware: Hardware, device: str, weights: int,
                       compute_type: str, reasons: dict[str, str]) -> int:
    if model.batch_size != "auto":
        reasons["batch_size"] = "set in the config"
        return int(model.batch_size)
    if device == "cpu":
        reasons["batch_size"] = "4 on the CPU (larger batches gain nothing there)"
        return CPU_BATCH_SIZE
    if hardware.free_bytes is None:
        reasons["batch_size"] = "GPU memory unknown; the default 16"
        return GPU_BATCH_SIZE
    resident = weights // 2 if compute_type.startswith("int8") else weights
    if compute_type == "float32":
        resident = weights * 2
    per_item = max(ITEM_FLOOR_BYTES, int(weights * ITEM_SHARE_OF_WEIGHTS))
    room = hardware.free_bytes - resident - HEADROOM_BYTES
    size = GPU_BATCH_SIZE
    while size > 1 and size * per_item > room:
        size //= 2
    reasons["batch_size"] = (f"{size} fits {_gib(max(room, 0))} free after the model "
                             f"(about {per_item / GIB:.2f} GiB per item)")
    return size


def batch_room_bytes(settings: EngineSettings) -> int:
    """The memory a batch of `settings.batch_size` takes beside the model (as `choose` reckons)."""
    weights = weights_bytes(settings.model, Path(settings.model_path))
    return settings.batch_size * max(ITEM_FLOOR_BYTES, int(weights * ITEM_SHARE_OF_WEIGHTS))


def _gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / GIB:.1f} GiB"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
