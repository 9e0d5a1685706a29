"""Deciding `auto`: which device, compute type, batch size and thread count, and why.

`probe()` asks torch and CTranslate2 what is really there; `choose()` is a pure function of
that answer and the configuration, so every branch is tested without a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Model
from .base import EngineSettings

GIB = 1024**3
#: The user's guide: batch 16 on a GPU, 4 on the CPU.
GPU_BATCH_SIZE = 16
CPU_BATCH_SIZE = 4
#: Memory one batch item needs, as a share of the float16 weights, plus a floor (a rough
#: measure: the CUDA OOM back-off corrects it at run time).
ITEM_SHARE_OF_WEIGHTS = 0.15
ITEM_FLOOR_BYTES = 96 * 1024**2
#: Kept free for the VAD model, cuDNN workspaces and fragmentation.
HEADROOM_BYTES = int(1.5 * GIB)


@dataclass(frozen=True)
class Hardware:
    """What the process can use, as torch and CTranslate2 see it."""

    ct2_cuda_devices: int = 0
    torch_cuda: bool = False
    gpu_name: str | None = None
    total_bytes: int | None = None
    free_bytes: int | None = None
    cuda_compute_types: frozenset[str] = field(default_factory=frozenset)
    cpu_count: int = 1
    problems: tuple[str, ...] = ()


def probe(device_index: int = 0) -> Hardware:
    """Ask CTranslate2 and torch about CUDA (honours CUDA_VISIBLE_DEVICES) and count usable CPUs."""
    import ctranslate2

    problems = []
    ct2_devices = ctranslate2.get_cuda_device_count()
    compute_types: frozenset[str] = frozenset()
    if ct2_devices > device_index:
        try:
            compute_types = frozenset(ctranslate2.get_supported_compute_types("cuda", device_index))
        except (RuntimeError, ValueError) as exc:
            problems.append(f"CTranslate2: {exc}")
    torch_cuda, name, total, free = _torch_cuda(device_index, problems)
    return Hardware(ct2_devices, torch_cuda, name, total, free, compute_types, usable_cpus(), tuple(problems))


def _torch_cuda(device_index: int, problems: list[str]) -> tuple[bool, str | None, int | None, int | None]:
    import torch

    try:
        if not torch.cuda.is_available() or torch.cuda.device_count() <= device_index:
            return False, None, None, None
        free, total = torch.cuda.mem_get_info(device_index)
        return True, torch.cuda.get_device_name(device_index), total, free
    except RuntimeError as exc:
        problems.append(f"torch: {exc}")
        return False, None, None, None


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
    weights = _weights_bytes(model_path)
    compute_type = _choose_compute_type(model, hardware, device, weights, reasons)
    batch_size = _choose_batch_size(model, hardware, device, weights, compute_type, reasons)
    threads = model.cpu_threads if model.cpu_threads != "auto" else hardware.cpu_count
    reasons["cpu_threads"] = ("set in the config" if model.cpu_threads != "auto"
                              else f"{threads} CPUs usable by this process")
    return EngineSettings(model.name, str(model_path), model_source, device, model.device_index,
                          compute_type, batch_size, int(threads), reasons)


def _choose_device(model: Model, hardware: Hardware, reasons: dict[str, str]) -> str:
    cuda_seen = hardware.ct2_cuda_devices > model.device_index and hardware.torch_cuda
    if model.device != "auto":
        reasons["device"] = "set in the config"
        return model.device
    if cuda_seen:
        reasons["device"] = f"CUDA device {model.device_index} ({hardware.gpu_name}) seen by torch and CTranslate2"
        return "cuda"
    why = []
    if hardware.ct2_cuda_devices <= model.device_index:
        why.append(f"CTranslate2 sees {hardware.ct2_cuda_devices} CUDA devices")
    if not hardware.torch_cuda:
        why.append("torch sees no CUDA device")
    reasons["device"] = "no usable GPU: " + "; ".join(why + list(hardware.problems))
    return "cpu"


def _choose_compute_type(model: Model, hardware: Hardware, device: str, weights: int,
                         reasons: dict[str, str]) -> str:
    if model.compute_type != "auto":
        reasons["compute_type"] = "set in the config"
        return model.compute_type
    if device == "cpu":
        reasons["compute_type"] = "int8 is the fastest type on a CPU"
        return "int8"
    supported = hardware.cuda_compute_types
    short = hardware.free_bytes is not None and hardware.free_bytes < 2 * weights + HEADROOM_BYTES
    if short and "int8_float16" in supported:
        reasons["compute_type"] = "free GPU memory is short for float16 weights; int8_float16 halves them"
        return "int8_float16"
    if "float16" in supported or not supported:
        reasons["compute_type"] = "float16 is supported by this GPU"
        return "float16"
    reasons["compute_type"] = "this GPU has no efficient float16; float32"
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
    per_item = max(ITEM_FLOOR_BYTES, int(weights * ITEM_SHARE_OF_WEIGHTS))
    room = hardware.free_bytes - resident - HEADROOM_BYTES
    size = GPU_BATCH_SIZE
    while size > 1 and size * per_item > room:
        size //= 2
    reasons["batch_size"] = (f"{size} fits {room / GIB:.1f} GiB free after the model "
                             f"(about {per_item / GIB:.2f} GiB per item)")
    return size


def _weights_bytes(model_path: Path) -> int:
    """The float16 size of the model's weights (model.bin may be stored as float32 or int8)."""
    try:
        size = (model_path / "model.bin").stat().st_size
    except OSError:
        return 3 * GIB  # not downloaded yet: assume a large model
    return size
