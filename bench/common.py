"""What the bench scripts share: the recordings and their references, the shared command-line
options, the daemon's config and the engine settings it decides, a daemon to feed, process
memory, and printing tables.

The settings come from transcribed's own code (the config's defaults, resolve_model, probe and
choose), never from a copy here: what a bench measures is what the daemon would run with.
"""

from __future__ import annotations

import argparse
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
from typing import IO, Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.support: corpus, WER, DaemonProcess

from tests.support.corpus import CHARACTER_SCORED_LANGUAGES, clips, corpus_dir, normalise  # noqa: E402
from tests.support.daemon import DaemonProcess, Folders  # noqa: E402

from transcribed.config import Config, parse_config, resolve_paths  # noqa: E402
from transcribed.engine.base import EngineSettings  # noqa: E402
from transcribed.engine.hardware import usable_cpus  # noqa: E402

SAMPLE_RATE = 16_000
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".opus", ".ogg", ".m4a", ".webm", ".mp4", ".aac"}
#: Quiet, offline libraries in every process the benches start.
LIBRARY_ENV = {"PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1"}
Sections = dict[str, dict[str, Any]]


# --- the shared command-line options ---------------------------------------------------------

#: Every option more than one script takes: flags and help (the default comes from the script).
OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "files": ("--files", {"type": int, "help": "timed files (one more warms up)"}),
    "max_seconds": ("--max-seconds", {"type": float, "help": "only clips up to this long"}),
    "folder": ("--folder", {"type": Path, "help": "your own recordings instead of the corpus"}),
    "model": ("--model", {"help": "model.name: a size or a CTranslate2 model dir (default: the "
                                  "config's, the bundled tiny.en)"}),
    "engine": ("--engine", {"choices": ["whisperx", "fake"],
                            "help": "the daemon's engine (fake: the daemon's own code, no model)"}),
    "keep": ("--keep", {"type": Path, "help": "work in this folder and leave it (default: a temp dir)"}),
    "strict": ("--strict", {"action": "store_true", "help": "exit 1 when a target is missed"}),
}


def parser(doc: str | None, **defaults: Any) -> argparse.ArgumentParser:
    """A parser described by the script's docstring, with the shared options named in
    `defaults` (each with the default given there), so no script spells them out again."""
    result = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, default in defaults.items():
        flag, spec = OPTIONS[name]
        result.add_argument(flag, default=default, **spec)
    return result


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
    return [Item(c.path, c.duration_s, c.language, spoken_reference(c.path.name, c.reference), c.set_name)
            for c in clips(language=language, max_duration=max_seconds)]


def folder_items(folder: Path, max_seconds: float | None = None) -> list[Item]:
    """Every audio file under `folder` (no references), sorted by path."""
    from transcribed.transcription.audio import decode

    items = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        seconds = decode(path).seconds
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


def spoken_reference(name: str, text: str) -> str:
    # The sonnets long-form reference numbers its sonnets "1", "II", "III" (corpus README):
    # read out as one, two, three, which is what a transcript says.
    if name.startswith("en_librivox_shakespeare_sonnets"):
        words = {"1": "one", "II": "two", "III": "three"}
        return " ".join(words.get(w, w) for w in text.split())
    return text


def corpus_wer(pairs: list[tuple[Item, str]]) -> float:
    """Corpus-level WER (total errors / total reference words) after normalising both sides;
    NaN when no item has a reference."""
    import jiwer

    refs, hyps = [], []
    for item, hyp in pairs:
        ref = normalise(item.reference or "", item.language)
        if ref:
            refs.append(ref)
            hyps.append(normalise(hyp, item.language))
    if not refs:
        return float("nan")
    if pairs[0][0].language in CHARACTER_SCORED_LANGUAGES:  # callers group zh and ja by language
        return float(jiwer.cer([r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps]))
    return float(jiwer.wer(refs, hyps))


def text_of(result: dict[str, Any]) -> str:
    """A transcript's segment texts joined by spaces."""
    return " ".join(s.get("text", "").strip() for s in result.get("segments", [])).strip()


def require_corpus() -> None:
    if not (corpus_dir() / "MANIFEST.tsv").is_file():
        raise SystemExit(f"the speech corpus is not at {corpus_dir()} (set TRANSCRIBED_CORPUS)")


# --- the daemon's config and the engine's settings -------------------------------------------

def merged(*layers: Sections | None) -> Sections:
    """Config sections, later layers overriding earlier ones key by key."""
    result: Sections = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            result.setdefault(section, {}).update(values)
    return result


def override(text: str) -> Sections:
    """`section.key=value` (the value read as YAML: true, 2.5, pyannote) as config sections;
    several joined by spaces make one variant (`vad.long_method=pyannote vad.step_seconds=2.5`)."""
    return merged(*(_one_override(part) for part in text.split()))


def _one_override(text: str) -> Sections:
    key, sep, value = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise SystemExit(f"{text!r}: expected section.key=value, e.g. overlap.enabled=true")
    return {section: {name: yaml.safe_load(value)}}


def bench_sections(model: str | None = None, *overrides: Sections) -> Sections:
    """A bench daemon's config: the config's default watch timings (not the tests' fast ones),
    no alignment (so the daemon does the work of a plain whisperx loop), then the overrides."""
    watch = Config().watch
    base: Sections = {
        "watch": {"settle_seconds": watch.settle_seconds, "rescan_seconds": watch.rescan_seconds,
                  "poll_interval_seconds": watch.poll_interval_seconds},
        "align": {"enabled": False},
        # Absolute, so that every daemon, the plain loop and this process find the same models.
        "model": {"download_dir": str(REPO / "data" / "models")}}
    return merged(base, {"model": {"name": model}} if model else None, *overrides)


def checked(sections: Sections) -> Config:
    """The Config these sections make (a wrong key or value is a clear error here, before any
    daemon starts)."""
    from transcribed.errors import ConfigError

    try:
        return resolve_paths(parse_config(sections), REPO)
    except ConfigError as exc:
        raise SystemExit(f"config: {exc}") from None


def engine_settings(config: Config) -> EngineSettings:
    """What the daemon's engine would run with under `config` on this machine: the model
    resolved (no download) and every `auto` decided by transcribed's own hardware.choose."""
    from transcribed.engine.hardware import choose, probe
    from transcribed.engine.models import resolve_model
    from transcribed.errors import TranscribedError

    try:
        resolved = resolve_model(config.model.name, config.model.download_dir, download=False)
        if resolved.source == "not downloaded yet":
            raise TranscribedError(f"{config.model.name} is not in {config.model.download_dir}")
        return choose(config.model, probe(config.model.device_index), resolved.path, resolved.source)
    except TranscribedError as exc:
        raise SystemExit(f"model: {exc}") from None


def describe(config: Config, settings: EngineSettings) -> str:
    """The settings in one line (the language as the engine loads the model with it)."""
    from transcribed.engine.whisperx_setup import load_model_arguments

    language = load_model_arguments(config, settings)["language"]
    return (f"model {settings.model} ({settings.model_path}), {settings.device} "
            f"{settings.compute_type}, batch {settings.batch_size}, beam {config.model.beam_size}, "
            f"threads {settings.cpu_threads}, language {language or 'detected'}, VAD "
            f"onset {config.vad.onset} offset {config.vad.offset} step {config.vad.step_seconds}")


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


def start_daemon(root: Path, sections: Sections, engine: str = "whisperx",
                 kept: tuple[str, ...] = ("job.moved",), env: dict[str, str] | None = None,
                 ) -> tuple[Folders, DaemonProcess, Events]:
    """`python -m transcribed run` on folders under `root` with these config sections (see
    `bench_sections`), started and ready. `kept`: the events the caller waits for."""
    folders = Folders(root)
    folders.write_config(**sections)
    daemon = DaemonProcess(folders.config, engine=engine, env={**LIBRARY_ENV, **(env or {})})
    try:
        daemon.start(ready_timeout=300)
    except BaseException:
        daemon.kill()
        raise
    return folders, daemon, Events(daemon, kept)


@contextlib.contextmanager
def running_daemon(root: Path, sections: Sections | None = None, engine: str = "whisperx",
                   kept: tuple[str, ...] = ("job.moved",), env: dict[str, str] | None = None,
                   ) -> Iterator[tuple[Folders, DaemonProcess, Events]]:
    """`start_daemon` (default sections: `bench_sections()`), stopped with SIGTERM afterwards."""
    folders, daemon, events = start_daemon(root, sections or bench_sections(), engine, kept, env)
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


def gpu_mib(pid: int) -> float | None:
    """GPU memory the process holds, from nvidia-smi (None without a GPU or for none held)."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                          "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] == str(pid):
            return float(fields[1])
    return None


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
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def commit() -> str:
    """The short hash of the checkout the benchmark runs ("unknown" outside git)."""
    result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip() or "unknown"


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


def close_child(process: subprocess.Popen[str], log: IO[str]) -> None:
    """End a serving child (a loop reading paths): its stdin closed, a minute to exit, then
    killed; its log closed."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
