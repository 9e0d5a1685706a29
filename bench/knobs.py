"""Knobs: the pyannote VAD's sliding-window step and Whisper's beam size, for speed and accuracy
together, on the English corpus clips, in one process and one run.

One pipeline is loaded as the daemon loads it; before each call the knobs are set on it:
  - VAD step: `pipe.vad_model.vad_pipeline._segmentation.step` (seconds; pyannote's default is
    10 % of its 5 s window, 0.5 s: the 5 s window is run every 0.5 s, ten times per second of
    audio). A private attribute: this script checks it is still there and what it defaults to.
  - beam size: `pipe.options.beam_size` (the batched decoder reads it on every call).
Every clip goes through every combination before the next clip, in an order that rotates from
clip to clip, so the host's noise falls on all of them alike. VAD time is measured by wrapping
the VAD pipeline; the rest of the call is ASR.

    .venv/bin/python bench/knobs.py                          # steps 0.5 1.0 2.5 x beams 5 1
    .venv/bin/python bench/knobs.py --threads 2 4            # also whisperx's default of 4 threads
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import (Item, corpus_items, corpus_wer, daemon_settings, decode, describe, load_pipeline,
                    machine, median, normalise, print_table, require_corpus, transcribe)


class TimedCall:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


@dataclasses.dataclass(frozen=True)
class Knobs:
    step: float
    beam: int
    threads: int

    def label(self) -> str:
        return f"step {self.step:g} s, beam {self.beam}, threads {self.threads}"


@dataclasses.dataclass
class Run:
    wall: float
    vad: float
    text: str


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    items = [i for i in corpus_items("en", args.max_seconds) if i.seconds >= args.min_seconds]
    items = items[: args.limit or None]
    settings = daemon_settings(args.model)
    threads = args.threads or [settings.threads]
    combos = [Knobs(s, b, t) for t in threads for s in args.steps for b in args.beams]
    baseline = Knobs(args.steps[0], args.beams[0], threads[0])
    print(f"machine: {machine()}")
    print(f"settings: {describe(settings)} (beam, step and threads varied below)")
    print(f"clips: {len(items)} English, {sum(i.seconds for i in items):.1f} s of audio; "
          f"{len(combos)} combinations; baseline {baseline.label()}")
    import torch

    pipes, vad_timers, segmentations = {}, {}, {}
    for t in threads:
        pipe = load_pipeline(dataclasses.replace(settings, threads=t))
        segmentation = pipe.vad_model.vad_pipeline._segmentation
        if t == threads[0]:
            print(f"pyannote segmentation: window {segmentation.duration:g} s, default step "
                  f"{segmentation.step:g} s, batch {segmentation.batch_size}")
        vad_timers[t] = pipe.vad_model.vad_pipeline = TimedCall(pipe.vad_model.vad_pipeline)
        pipes[t], segmentations[t] = pipe, segmentation
    runs: dict[Knobs, dict[Path, Run]] = {k: {} for k in combos}
    warm = decode(items[0].path)
    for t in threads:
        torch.set_num_threads(t)
        transcribe(pipes[t], warm, settings)  # first-call costs are nobody's
    started = time.perf_counter()
    for index, item in enumerate(items):
        samples = decode(item.path)
        for knobs in combos[index % len(combos):] + combos[: index % len(combos)]:
            runs[knobs][item.path] = _run(pipes[knobs.threads], segmentations[knobs.threads],
                                          vad_timers[knobs.threads], samples, knobs, settings, torch)
        if (index + 1) % 10 == 0 or index + 1 == len(items):
            print(f"  {index + 1}/{len(items)} clips, {time.perf_counter() - started:.0f} s", flush=True)
    _report(items, combos, baseline, runs)
    if args.save:
        _save(args.save, combos, runs)
    return 0


def _run(pipe: Any, segmentation: Any, vad: TimedCall, samples: Any, knobs: Knobs, settings: Any,
         torch: Any) -> Run:
    torch.set_num_threads(knobs.threads)  # what WhisperXEngine.load does (for the VAD's torch)
    segmentation.step = knobs.step
    pipe.options = dataclasses.replace(pipe.options, beam_size=knobs.beam)
    vad.seconds = 0.0
    started = time.perf_counter()
    result = transcribe(pipe, samples, settings)
    return Run(time.perf_counter() - started, vad.seconds, " ".join(
        s["text"].strip() for s in result["segments"]))


def _report(items: list[Item], combos: list[Knobs], baseline: Knobs, runs: dict[Knobs, dict[Path, Run]]) -> None:
    audio = sum(i.seconds for i in items)
    base = runs[baseline]
    base_wer = 100 * corpus_wer([(i, base[i.path].text) for i in items])
    long_items = [i for i in items if i.seconds >= 10]
    rows = []
    for knobs in combos:
        r = runs[knobs]
        wall = sum(x.wall for x in r.values())
        vad = sum(x.vad for x in r.values())
        wer = 100 * corpus_wer([(i, r[i.path].text) for i in items])
        libri_pairs = [(i, r[i.path].text) for i in items if i.set_name == "librispeech"]
        libri = 100 * corpus_wer(libri_pairs) if libri_pairs else float("nan")
        changed = sum(normalise(r[i.path].text, "en") != normalise(base[i.path].text, "en") for i in items)
        per_clip = median([base[i.path].wall / r[i.path].wall for i in items])
        long_speedup = (sum(base[i.path].wall for i in long_items) / sum(r[i.path].wall for i in long_items)
                        if long_items else float("nan"))
        rows.append([knobs.label(), round(wall, 1), round(vad, 1), round(100 * vad / wall, 1),
                     round(wall - vad, 1), round(audio / wall, 2), round(sum(x.wall for x in base.values()) / wall, 3),
                     round(per_clip, 3), round(long_speedup, 3), round(wer, 2), round(wer - base_wer, 2),
                     round(libri, 2), f"{changed}/{len(items)}"])
    print()
    print_table(["knobs", "wall s", "VAD s", "VAD %", "ASR s", "audio s / wall s", "speed-up (total)",
                 "speed-up (median clip)", f"speed-up (>= 10 s clips, {len(long_items)})", "WER %",
                 "WER diff", "LibriSpeech WER %", "text differs"], rows)
    print("(speed-ups and text differences against the baseline, the first row; WER corpus-level over all "
          "clips, both sides normalised with Whisper's English normaliser)")
    print("\nclips whose text differs from the baseline's (per-clip WER %, baseline -> this):")
    for knobs in combos[1:]:
        changed = [i for i in items
                   if normalise(runs[knobs][i.path].text, "en") != normalise(base[i.path].text, "en")]
        worse = sum(_wer(i, runs[knobs]) > _wer(i, base) for i in changed)
        better = sum(_wer(i, runs[knobs]) < _wer(i, base) for i in changed)
        print(f"  {knobs.label()}: {len(changed)} clips, {worse} worse, {better} better: " + ", ".join(
            f"{i.path.name} {_wer(i, base):.0f}->{_wer(i, runs[knobs]):.0f}" for i in changed))


def _wer(item: Item, runs: dict[Path, Run]) -> float:
    return 100 * corpus_wer([(item, runs[item.path].text)])


def _save(path: Path, combos: list[Knobs], runs: dict[Knobs, dict[Path, Run]]) -> None:
    """Every call's wall and VAD seconds and text, for a later look."""
    data = [{**dataclasses.asdict(k), "clips": {str(p): dataclasses.asdict(r) for p, r in runs[k].items()}}
            for k in combos]
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Speed and WER of the VAD step x beam size (x threads) combinations on the English "
        "corpus clips, interleaved in one process.")
    parser.add_argument("--steps", type=float, nargs="+", default=[0.5, 1.0, 2.5],
                        help="VAD steps in seconds; the first is the baseline (default 0.5 1.0 2.5)")
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 1],
                        help="beam sizes; the first is the baseline (default 5 1)")
    parser.add_argument("--threads", type=int, nargs="+",
                        help="CPU threads (one pipeline each; default: the usable CPUs)")
    parser.add_argument("--max-seconds", type=float, help="only clips up to this long")
    parser.add_argument("--min-seconds", type=float, default=0.0,
                        help="only clips at least this long (the step changes nothing below 5 s)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--model", type=Path, help="a CTranslate2 model dir (default: bundled tiny.en)")
    parser.add_argument("--save", type=Path, help="write every call's timings and text to this JSON file")
    return parser


if __name__ == "__main__":
    sys.exit(main())
