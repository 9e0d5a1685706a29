"""`transcribed doctor`: can the configured setup work here, on which device, and if not, why.

One line per check, ok / warn / fail, each with what to do: the NVIDIA driver, the GPU, CUDA as
torch and CTranslate2 see it, cuDNN, the settings `auto` resolves to, the model, the folders,
and a short real transcription of a bundled clip. `warn` still works (the CPU instead of a GPU,
a model still to download); `fail` cannot, and makes the exit code 1.

The transcription runs in a child process: a CUDA or cuDNN library mismatch aborts a process
outright ("Could not load library libcudnn_ops...; Aborted"), and the doctor must live to say so.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, logs
from .config import Config, parse_config, to_plain
from .engine.base import EngineSettings
from .errors import ConfigError

OK, WARN, FAIL = "ok", "warn", "fail"
EXIT_READY, EXIT_NOT_READY = 0, 1
#: The clip every doctor transcribes (see data/doctor/README.md), and what it says.
SAMPLE = Path(__file__).parent / "data" / "doctor" / "goforward.wav"
SAMPLE_TEXT = "go forward ten meters"
#: CUDA 12 needs driver 525+; torch 2.8's CUDA 12.8 build is made for 570+.
DRIVER_MINIMUM, DRIVER_RECOMMENDED = 525, 570
#: The libraries CTranslate2 loads by name (not from torch's wheels) when it runs on a GPU.
CT2_CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn.so.9")
SAMPLE_TIMEOUT_SECONDS = 600
#: The order of the report's lines: from the hardware up to the verdict's evidence.
ORDER = ("driver", "gpu", "torch_cuda", "ct2_cuda", "cudnn", "model", "folders", "device",
         "transcription")
_NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
            "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}


@dataclass
class Check:
    """One line of the report."""

    name: str
    title: str
    status: str
    detail: str
    advice: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """Every check, and what they add up to."""

    checks: list[Check] = field(default_factory=list)
    settings: EngineSettings | None = None
    config: str = "built-in defaults"

    @property
    def ready(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    def add(self, name: str, title: str, status: str, detail: str, advice: str = "",
            **data: Any) -> Check:
        check = Check(name, title, status, detail, advice, data)
        self.checks.append(check)
        return check


def run_doctor(config: Config, as_json: bool = False) -> int:
    """Check everything, print the report (text, or one JSON object), return the exit code."""
    logs.configure(config.log.format, "warning", stream=sys.stderr)  # stdout is the report's
    report = diagnose(config)
    print(json.dumps(as_dict(report), indent=2) if as_json else render(report))
    return EXIT_READY if report.ready else EXIT_NOT_READY


def diagnose(config: Config) -> Report:
    """Run every check against `config`."""
    from .engine.whisperx_engine import keep_libraries_offline_and_private

    keep_libraries_offline_and_private()
    report = Report(config=str(config.source) if config.source else "built-in defaults")
    gpus = _check_driver(report, config)
    hardware = _check_cuda(report, config, gpus)
    model = _check_model(report, config)
    _check_settings(report, config, hardware, model)
    _check_cudnn(report)
    _check_folders(report, config)
    _check_transcription(report, config, model)
    report.checks.sort(key=lambda check: ORDER.index(check.name))
    return report


# --- the driver and the GPU ---------------------------------------------------------------------

def _check_driver(report: Report, config: Config) -> list[dict[str, str]]:
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


def _check_cuda(report: Report, config: Config, gpus: list[dict[str, str]]) -> Any:
    import ctranslate2
    import torch

    from .engine.hardware import probe

    hardware = probe(config.model.device_index)
    index = config.model.device_index
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    torch_build = f"torch {torch.__version__} (CUDA build {torch.version.cuda})" \
        if torch.version.cuda else f"torch {torch.__version__} (a CPU-only build)"
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
               f"{', '.join(sorted(hardware.cpu_compute_types))}" + (f" ({ct2_problems})" if ct2_problems else ""),
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


def _check_cudnn(report: Report) -> None:
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
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}" if version >= 10000 else str(version)


def _loadable(name: str) -> bool:
    if not sys.platform.startswith("linux"):
        return True  # Windows and macOS find these differently; the transcription check tells
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


# --- the settings, the model, the folders -------------------------------------------------------

def _check_model(report: Report, config: Config) -> Any:
    from .engine.models import resolve_model

    try:
        model = resolve_model(config.model.name, config.model.download_dir, download=False)
    except ConfigError as exc:
        report.add("model", "Model", FAIL, str(exc), "set model.name to a known size or a model folder")
        return None
    if model.source == "not downloaded yet":
        report.add("model", "Model", WARN,
                   f"{model.name} is not in {config.model.download_dir} yet: the daemon downloads "
                   "it once at its first start", "give the first start network access, or copy "
                   "the model folder there and set model.name to it", source=model.source)
        return model
    report.add("model", "Model", OK, f"{model.name}: {model.source}, {model.path}",
               source=model.source, path=str(model.path))
    return model


def _check_settings(report: Report, config: Config, hardware: Any, model: Any) -> None:
    from .engine.hardware import choose

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


def _check_folders(report: Report, config: Config) -> None:
    names = ("inbox", "outbox", "done", "failed", "state")
    problems, devices, created = [], {}, []
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
    report.add("folders", "Folders", OK,
               f"inbox, outbox, done, failed, state under {where}: writable, one filesystem{note}")


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


# --- a real transcription -----------------------------------------------------------------------

def _check_transcription(report: Report, config: Config, model: Any) -> None:
    title = "Transcription"
    if report.settings is None or model is None or model.source == "not downloaded yet":
        report.add("transcription", title, WARN, "skipped: the model or the settings are not usable "
                   "yet (see above)", "fix what is above, then run the doctor again")
        return
    request = json.dumps({"config": to_plain(config), "settings": asdict(report.settings)})
    started = time.monotonic()
    try:
        child = subprocess.run([sys.executable, "-m", "transcribed.doctor"], input=request,
                               capture_output=True, text=True, timeout=SAMPLE_TIMEOUT_SECONDS,
                               check=False)
    except subprocess.TimeoutExpired:
        report.add("transcription", title, FAIL, f"no result after {SAMPLE_TIMEOUT_SECONDS} s",
                   "the device may be hung: check `nvidia-smi`, or try model.device: cpu")
        return
    answer = _last_json_line(child.stdout)
    if child.returncode != 0 or answer is None or "error" in answer:
        report.add("transcription", title, FAIL, _child_failure(child, answer, started),
                   "a signal such as SIGABRT usually means mismatched CUDA/cuDNN libraries; "
                   "the error above names what failed")
        return
    seconds, audio = answer["transcribe_seconds"], answer["audio_seconds"]
    matched = _word_match(answer["text"], SAMPLE_TEXT)
    speed = f"{audio / seconds:.1f}x realtime" if seconds > 0 else "instant"
    detail = (f'"{answer["text"].strip()}" from {audio:.1f} s of speech in {seconds:.2f} s '
              f"({speed}; start-up and model load {answer['load_seconds']:.1f} s) on {report.settings.device} "
              f"{report.settings.compute_type}")
    if matched < 0.75:
        report.add("transcription", title, WARN, f"{detail}; expected \"{SAMPLE_TEXT}\"",
                   "the model runs but misheard a clear clip: check model.name and model.language",
                   **answer)
        return
    report.add("transcription", title, OK, detail, **answer)


def _child_failure(child: subprocess.CompletedProcess[str], answer: dict[str, Any] | None,
                   started: float) -> str:
    if answer is not None and "error" in answer:
        return f"failed: {answer['error']}"
    if child.returncode < 0:
        import signal

        name = signal.Signals(-child.returncode).name
        tail = " | ".join(child.stderr.strip().splitlines()[-3:])
        return f"the process was killed by {name} after {time.monotonic() - started:.0f} s: {tail}"
    tail = " | ".join(child.stderr.strip().splitlines()[-3:])
    return f"the process exited with {child.returncode}: {tail or 'no message'}"


def _last_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _word_match(text: str, expected: str) -> float:
    """The share of the expected words found in `text` (case, punctuation and digits normalised)."""
    words = {_NUMBERS.get(w, w) for w in re.findall(r"[a-z0-9']+", text.lower())}
    wanted = expected.split()
    return sum(w in words for w in wanted) / len(wanted)


def transcribe_sample(request: dict[str, Any]) -> dict[str, Any]:
    """In the child process: load the engine as the daemon would, transcribe the sample, time it."""
    from .audio import decode
    from .engine.base import Request
    from .engine.whisperx_engine import WhisperXEngine

    config = parse_config(request["config"])
    settings = EngineSettings(**request["settings"])
    started = time.monotonic()
    engine = WhisperXEngine(config, settings)
    engine.load()
    loaded = time.monotonic()
    audio = decode(SAMPLE)
    result = engine.transcribe(audio.samples, Request(language="en", file=SAMPLE.name),
                               settings.batch_size, lambda _percent: None)
    done = time.monotonic()
    engine.close()
    return {"text": "".join(s["text"] for s in result["segments"]).strip(),
            "audio_seconds": round(audio.seconds, 3), "load_seconds": round(loaded - started, 3),
            "transcribe_seconds": round(done - loaded, 3)}


# --- output --------------------------------------------------------------------------------------

def render(report: Report) -> str:
    """The report for people: one line per check, advice indented below it."""
    label = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}
    width = max(len(c.title) for c in report.checks)
    lines = [f"transcribed doctor {__version__} (config: {report.config})", ""]
    given: set[str] = set()
    for check in report.checks:
        lines.append(f"  {label[check.status]}  {check.title:<{width}}  {check.detail}")
        if check.advice and check.status != OK and check.advice not in given:
            lines.append(f"        {'':<{width}}  -> {check.advice}")
            given.add(check.advice)  # the same advice once, under the first check it explains
    lines += ["", _verdict(report)]
    return "\n".join(lines)


def _verdict(report: Report) -> str:
    failed = [c.title for c in report.checks if c.status == FAIL]
    if failed:
        return f"NOT READY: {len(failed)} check(s) failed: {', '.join(failed)}. Exit code 1."
    settings = report.settings
    assert settings is not None  # a failed settings check would have been counted above
    if settings.device == "cuda":
        return f"READY: transcribes on the GPU ({settings.compute_type}, batch size {settings.batch_size})."
    return f"READY: transcribes on the CPU ({settings.compute_type}), because {_why_cpu(report)}."


def _why_cpu(report: Report) -> str:
    """The root cause first: no driver explains everything after it."""
    assert report.settings is not None
    reason = report.settings.reasons.get("device", "")
    if reason == "set in the config":
        return "model.device is cpu"
    driver = next((c for c in report.checks if c.name == "driver"), None)
    if driver is not None and driver.status != OK and "nvidia-smi not found" in driver.detail:
        return f"there is no NVIDIA driver (nvidia-smi not found), so {reason.removeprefix('no usable GPU: ')}"
    return reason


def as_dict(report: Report) -> dict[str, Any]:
    """The report for machines (`--json`)."""
    settings = report.settings
    return {
        "version": __version__, "config": report.config, "ready": report.ready,
        "exit_code": EXIT_READY if report.ready else EXIT_NOT_READY,
        "device": settings.device if settings else None,
        "why": (_why_cpu(report) if settings.device == "cpu" else settings.reasons.get("device"))
    if settings else None,
        "settings": asdict(settings) if settings else None,
        "checks": [asdict(check) for check in report.checks],
    }


def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / 1024**3:.1f} GiB"


def _child_main() -> int:
    """`python -m transcribed.doctor`: the sample transcription, request on stdin, JSON on stdout."""
    logs.configure("json", "warning", stream=sys.stderr)
    try:
        answer = transcribe_sample(json.loads(sys.stdin.read()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        text = str(exc).strip().splitlines()
        answer = {"error": f"{type(exc).__name__}: {text[0] if text else ''}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
