"""Speed on a GPU, in one command: each model size through the daemon's own pipeline, then the
daemon's switches on and off side by side (the comparisons of bench/compare.py).

For every model it prints the realtime factor, seconds per minute of audio (the user's table:
tiny 5 s and large 100 s per minute of audio on an RTX 3080), the peak GPU memory, the batch
size `auto` chose and the one it ended at, and whether any out-of-memory back-off happened.
Each file goes through `Pipeline.run` with the engine and settings the daemon would use
(`hardware.choose`), so the numbers include VAD, the back-off and writing the outputs.

Then, through the harness (harness.py), with the first model, issue 16's two comparisons: the
plain whisperx loop built from the engine's settings and one daemon per variant, the baseline
with every switch off, then each switch alone, interleaved, the least of `--compare-runs` runs
per chunk; speed, ratios against the baseline and the plain loop, WER, peak RSS and GPU memory:

- recordings of up to 30 s (`--compare-files`): overlap, batching, `vad.method: silero`;
  target 1.4x the plain loop;
- short clips of up to 8 s (`--short-files`, 40): packing, batching, `vad.method: silero`;
  target 1.5x the plain loop.

Then issue 24's comparison (bench/long_recording.py): one long recording at a time (`dev`, the
clips looped for `--long-minutes`, and `heldout`, shuffled with pauses and a noise floor) through
the plain whisperx loop, faster-whisper's BatchedInferencePipeline loop and the daemon end to
end; targets 2.0x the whisperx loop, at least faster-whisper's loop, WER within 0.3 points.

Without a GPU it says so, and why, and measures the CPU (so the script is tested everywhere).
With the bundled tiny.en on a GPU the defaults take a few minutes (well under 10).

    .venv/bin/python bench/gpu.py                          # every model on disk, the English corpus
    .venv/bin/python bench/gpu.py --models tiny.en,large-v3 --download
    .venv/bin/python bench/gpu.py --max-seconds 60 --compare-files 10 --short-files 10   # a quick run
    .venv/bin/python bench/gpu.py --max-seconds 30 --compare-files 0 --short-files 0 --long-minutes 2.5 \
        --long-recordings dev --compare-runs 1                # the long comparison alone, quickly (CPU too)

Peak GPU memory is sampled every 20 ms from the driver's free-memory figure (torch's own
counters miss CTranslate2, which allocates outside torch), minus what was in use before the
model loaded: the model's weights plus its working memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.support.corpus

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

from tests.support.corpus import Clip, clips, corpus_available, corpus_dir  # noqa: E402

from transcribed import logs  # noqa: E402
from transcribed.config import Config, parse_config, resolve_paths  # noqa: E402
from transcribed.engine.hardware import Hardware, choose, probe  # noqa: E402
from transcribed.engine.models import BUNDLED_NAME, known_sizes, resolve_model  # noqa: E402
from transcribed.errors import ConfigError, TranscribedError  # noqa: E402

#: Tried with --download, smallest first (the turbo and distil variants are on request).
DOWNLOAD_SIZES = ("tiny", "base", "small", "medium", "large-v3")
#: The user's table (1 min of audio, RTX 3080): seconds per minute of audio.
USER_TABLE = {"tiny": 5.0, "large": 100.0}


@dataclass
class ModelRun:
    """What one model did with the corpus."""

    model: str
    device: str = ""
    compute_type: str = ""
    chosen_batch: int = 0
    final_batch: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    load_seconds: float = 0.0
    peak_gpu_mib: float | None = None
    backoffs: int = 0
    files: int = 0
    error: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def realtime(self) -> float | None:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else None

    @property
    def seconds_per_minute(self) -> float | None:
        return 60 * self.wall_seconds / self.audio_seconds if self.audio_seconds else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure("json", "warning", stream=sys.stderr)
    if not corpus_available():
        raise SystemExit(f"bench/gpu.py: the speech corpus is not at {corpus_dir()} "
                         "(set TRANSCRIBED_CORPUS)")
    config = resolve_paths(parse_config({"model": {"device": args.device,
                                                   "download_dir": str(args.download_dir)},
                                         "outputs": {"formats": ["json", "txt", "srt"]}}), Path.cwd())
    hardware = probe(0)
    print(_machine(hardware))
    if hardware.cuda_devices == 0:
        print(f"No GPU found: {_no_gpu_reason(config, hardware)}. "
              "Measuring the CPU only; these are not GPU figures.\n")
    items = _corpus(args.max_seconds)
    print(f"Corpus: {len(items)} English clips, {sum(c.duration_s for c in items):.0f} s of audio "
          f"from {corpus_dir()}\n")
    runs = [_bench(name, config, hardware, items, args.download) for name in _models(args, config)]
    _print_table(runs)
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__, "realtime": r.realtime,
                                          "seconds_per_minute": r.seconds_per_minute} for r in runs],
                                         indent=2))
    model = next((r.model for r in runs if not r.error), None)
    compared = [_compare(args, model, "long", ["overlap", "batching", "vad.method"], args.compare_files,
                         30.0, 1.4) if args.compare_files else 0,
                _compare(args, model, "short", ["packing", "batching", "vad.method"], args.short_files,
                         8.0, 1.5) if args.short_files else 0,
                _long(args, model) if args.long_minutes else 0]
    return 1 if any(r.error for r in runs) or any(compared) else 0


def _compare(args: argparse.Namespace, model: str | None, name: str, switches: list[str],
             files: int, max_seconds: float, target: float) -> int:
    """The switches on and off beside the plain loop, through the harness (compare.py)."""
    import compare

    argv = [arg for s in switches for arg in ("--switch", s)] + [
        "--one-at-a-time", "--plain", "--target", f"plain={target}", "--files", str(files),
        "--runs", str(args.compare_runs), "--max-seconds", str(max_seconds),
        "--set", f"model.device={args.device}", "--set", f"model.download_dir={args.download_dir}"]
    argv += ["--model", model] if model else []
    argv += ["--save", str(args.json.with_suffix(f".compare-{name}.json"))] if args.json else []
    print(f"\nComparison, {name} files (bench/compare.py {' '.join(argv)}):", flush=True)
    return compare.main(argv)


def _long(args: argparse.Namespace, model: str | None) -> int:
    """One long recording through the loops and the daemon (long_recording.py)."""
    import long_recording

    argv = ["--recordings", args.long_recordings, "--minutes", str(args.long_minutes), "--runs",
            str(args.compare_runs), "--strict", "--base", f"model.device={args.device}",
            "--base", f"model.download_dir={args.download_dir}"]
    argv += ["--model", model] if model else []
    argv += ["--save", str(args.json.with_suffix(".long-recording.json"))] if args.json else []
    print(f"\nOne long recording (bench/long_recording.py {' '.join(argv)}):", flush=True)
    return long_recording.main(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated sizes or model folders "
                        "(default: every model available without the network)")
    parser.add_argument("--download", action="store_true",
                        help=f"download what is missing (default set: {', '.join(DOWNLOAD_SIZES)})")
    parser.add_argument("--download-dir", type=Path, default=REPO / "data" / "models",
                        help="where named models are (and are downloaded to)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--max-seconds", type=float, help="stop adding clips after this much audio")
    parser.add_argument("--json", type=Path, help="also write the results here (and the comparisons "
                        "beside it, as NAME.compare-long.json and NAME.compare-short.json)")
    parser.add_argument("--compare-files", type=int, default=20,
                        help="timed recordings of up to 30 s in the on/off comparison (0: none)")
    parser.add_argument("--short-files", type=int, default=40,
                        help="timed clips of up to 8 s in the short-file comparison (0: none)")
    parser.add_argument("--compare-runs", type=int, default=2, help="runs of each chunk in the comparisons")
    parser.add_argument("--long-minutes", type=float, default=8.5,
                        help="the looped long recording's length in the long-recording comparison (0: none)")
    parser.add_argument("--long-recordings", default="dev,heldout",
                        help="the long recordings compared (long_recording.py --recordings)")
    return parser


def _models(args: argparse.Namespace, config: Config) -> list[str]:
    if args.models:
        return [m.strip() for m in args.models.split(",") if m.strip()]
    if args.download:
        return list(DOWNLOAD_SIZES)
    available = [BUNDLED_NAME]
    for name in known_sizes():
        if name != BUNDLED_NAME and resolve_model(name, config.model.download_dir,
                                                  download=False).source == "cached":
            available.append(name)
    return available


def _corpus(max_seconds: float | None) -> list[Clip]:
    chosen, total = [], 0.0
    for clip in clips(language="en", speakers=1):
        if max_seconds is not None and total + clip.duration_s > max_seconds:
            continue
        chosen.append(clip)
        total += clip.duration_s
    return chosen


def _bench(name: str, config: Config, hardware: Hardware, items: list[Clip], download: bool) -> ModelRun:
    """Load `name` as the daemon would, run every clip through the pipeline, and time it."""
    from dataclasses import replace

    from transcribed.engine.whisperx_engine import WhisperXEngine
    from transcribed.transcription.pipeline import Pipeline

    run = ModelRun(name)
    try:
        resolved = resolve_model(name, config.model.download_dir, download=download)
        if resolved.source == "not downloaded yet":
            raise TranscribedError(f"not in {config.model.download_dir}; add --download")
        model_config = replace(config, model=replace(config.model, name=name))
        settings = choose(model_config.model, hardware, resolved.path, resolved.source)
    except (ConfigError, TranscribedError) as exc:
        run.error = str(exc)
        return run
    run.device, run.compute_type, run.chosen_batch = settings.device, settings.compute_type, settings.batch_size
    run.reasons = settings.reasons
    with GpuMemory(settings.device == "cuda", settings.device_index) as memory:
        started = time.monotonic()
        engine = WhisperXEngine(model_config, settings)
        engine.load()
        run.load_seconds = time.monotonic() - started
        pipeline = Pipeline(model_config, engine, heartbeat=lambda: None, worker_name="bench")
        _one(pipeline, REPO / "daemon" / "transcribed" / "data" / "doctor" / "goforward.wav")  # warm-up
        for clip in items:
            started = time.monotonic()
            metadata = _one(pipeline, clip.path)
            run.wall_seconds += time.monotonic() - started
            run.audio_seconds += metadata["audio_seconds"]
            run.backoffs += len(metadata["oom_backoffs"])
            run.files += 1
        run.final_batch = pipeline.governor.current
        engine.close()
    run.peak_gpu_mib = memory.peak_mib
    return run


def _one(pipeline: Any, path: Path) -> dict[str, Any]:
    """One file through the real pipeline, as `transcribed transcribe` runs it; its metadata."""
    from transcribed.spool.jobs import Job

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        job = Job(id=path.stem, relpath=PurePosixPath(path.name), dir=Path(tmp), attempts=1)
        job.source.parent.mkdir()
        shutil.copyfile(path, job.source)  # a copy: the pipeline refuses a link, as the daemon does
        job.staging.mkdir()
        return dict(pipeline.run(job).metadata)


class GpuMemory:
    """Samples the GPU's used memory in a thread; `peak_mib` is the peak above the starting level."""

    def __init__(self, enabled: bool, device_index: int) -> None:
        self.enabled, self.device_index = enabled, device_index
        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = self._peak = 0

    def _used(self) -> int:
        import torch

        free, total = torch.cuda.mem_get_info(self.device_index)
        return int(total - free)

    def __enter__(self) -> GpuMemory:
        if self.enabled:
            self._baseline = self._peak = self._used()
            self._thread = threading.Thread(target=self._sample, name="gpu-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, self._used())

    def __exit__(self, *_exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (self._peak - self._baseline) / 1024**2


def _machine(hardware: Hardware) -> str:
    import ctranslate2
    import torch

    gpu = (f"{hardware.gpu_name}, {hardware.total_bytes / 1024**3:.1f} GiB"
           if hardware.gpu_name and hardware.total_bytes else "no GPU")
    return (f"Machine: {platform.processor() or platform.machine()}, {hardware.cpu_count} CPUs "
            f"usable; {gpu}; torch {torch.__version__}, CTranslate2 {ctranslate2.__version__}")


def _no_gpu_reason(config: Config, hardware: Hardware) -> str:
    try:
        return choose(config.model, hardware, config.model.download_dir, "bench").reasons["device"]
    except ConfigError as exc:
        return str(exc)


def _print_table(runs: list[ModelRun]) -> None:
    headers = ["model", "device", "compute", "batch auto -> end", "files", "audio s", "wall s",
               "x realtime", "s per audio min", "peak GPU MiB", "OOM back-offs", "load s"]
    rows = []
    for r in runs:
        if r.error:
            rows.append([r.model, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", f"error: {r.error}"])
            continue
        rows.append([r.model, r.device, r.compute_type, f"{r.chosen_batch} -> {r.final_batch}", r.files,
                     f"{r.audio_seconds:.1f}", f"{r.wall_seconds:.1f}", f"{r.realtime:.1f}",
                     f"{r.seconds_per_minute:.1f}",
                     "-" if r.peak_gpu_mib is None else f"{r.peak_gpu_mib:.0f}",
                     r.backoffs or "none", f"{r.load_seconds:.1f}"])
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + " |")
    print("\nThe user's figures for 1 min of audio on an RTX 3080: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in USER_TABLE.items()) + ".")


if __name__ == "__main__":
    sys.exit(main())
