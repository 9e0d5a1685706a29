"""The doctor's last check: a short real transcription of a bundled clip, in a child process.

A CUDA or cuDNN library mismatch aborts a process outright ("Could not load library
libcudnn_ops...; Aborted"), and the doctor must live to say so. The parent
(`check_transcription`) sends the configuration and the chosen settings as JSON on the child's
stdin; the child (`python -m transcribed.doctor`, which runs `child_main`) loads the engine as the
daemon would and answers with one JSON line on stdout: the text and its timings, or the error.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import logs
from ..config import Config, parse_config, to_plain
from ..engine.base import EngineSettings
from .report import FAIL, OK, WARN, Report

if TYPE_CHECKING:
    from ..engine.models import ResolvedModel

#: The clip every doctor transcribes (see data/doctor/README.md), and what it says.
SAMPLE = Path(__file__).parent.parent / "data" / "doctor" / "goforward.wav"
SAMPLE_TEXT = "go forward ten meters"
SAMPLE_TIMEOUT_SECONDS = 600
#: `python -m` this in the child: the package's __main__ calls `child_main`.
CHILD_MODULE = "transcribed.doctor"
#: The share of SAMPLE_TEXT's words below which the model "misheard a clear clip".
MIN_WORD_MATCH = 0.75
_NUMBERS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
            "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}


def check_transcription(report: Report, config: Config, model: ResolvedModel | None) -> None:
    """Transcribe the sample in a child process with the settings chosen above; say how it went."""
    title = "Transcription"
    settings = report.settings
    if settings is None or model is None or model.source == "not downloaded yet":
        report.add("transcription", title, WARN, "skipped: the model or the settings are not usable "
                   "yet (see above)", "fix what is above, then run the doctor again")
        return
    request = json.dumps({"config": to_plain(config), "settings": asdict(settings)})
    started = time.monotonic()
    try:
        child = subprocess.run([sys.executable, "-m", CHILD_MODULE], input=request,
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
    speed = f"{audio / seconds:.1f}x realtime" if seconds > 0 else "instant"
    detail = (f'"{answer["text"].strip()}" from {audio:.1f} s of speech in {seconds:.2f} s '
              f"({speed}; start-up and model load {answer['load_seconds']:.1f} s) "
              f"on {settings.device} {settings.compute_type}")
    if _word_match(answer["text"], SAMPLE_TEXT) < MIN_WORD_MATCH:
        report.add("transcription", title, WARN, f"{detail}; expected \"{SAMPLE_TEXT}\"",
                   "the model runs but misheard a clear clip: check model.name and model.language",
                   **answer)
        return
    report.add("transcription", title, OK, detail, **answer)


def _child_failure(child: subprocess.CompletedProcess[str], answer: dict[str, Any] | None,
                   started: float) -> str:
    if answer is not None and "error" in answer:
        return f"failed: {answer['error']}"
    tail = " | ".join(child.stderr.strip().splitlines()[-3:])
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        return f"the process was killed by {name} after {time.monotonic() - started:.0f} s: {tail}"
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


# --- the child process ---------------------------------------------------------------------------

def transcribe_sample(request: dict[str, Any]) -> dict[str, Any]:
    """In the child process: load the engine as the daemon would, transcribe the sample, time it."""
    from ..engine.base import Request
    from ..engine.whisperx_engine import WhisperXEngine
    from ..transcription.audio import decode

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


def child_main() -> int:
    """`python -m transcribed.doctor`: the request on stdin, one JSON line on stdout."""
    logs.configure("json", "warning", stream=sys.stderr)
    try:
        answer = transcribe_sample(json.loads(sys.stdin.read()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        text = str(exc).strip().splitlines()
        answer = {"error": f"{type(exc).__name__}: {text[0] if text else ''}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0
